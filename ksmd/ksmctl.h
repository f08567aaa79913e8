/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * What ksmctl's files share: the options, the calls to the daemon and the
 * ways of printing. ksmctl.c holds main(), the connection and the small
 * commands; ksmctl-regions.c the views of regions (list, explain);
 * ksmctl-metrics.c stats --format=openmetrics.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-bus.h>

/* A string from the daemon shown on a terminal is cut to this many bytes. */
#define TEXT_MAX 2048

/* A command's arguments, checked before ksmctl connects to the daemon. */
typedef struct Args {
        uint64_t pid;
        bool range;
        uint64_t start, length;          /* bytes, with range */
        uint32_t id;                     /* a region */
} Args;

extern bool arg_json;
extern bool arg_verbose;
extern const char *arg_output;
extern int arg_format;             /* MetricFormat of stats --format=, or -1 */

/* Calls a method; on failure prints the daemon's error and returns -errno (-EACCES: access denied). */
int call(sd_bus *bus, const char *method, sd_bus_message **reply, const char *types, ...);
/* Reads a property of type 's' (a malloc'ed string) or a trivial type; prints why not, -errno. */
int get_property(sd_bus *bus, const char *name, char type, void *ret);
/* Prints s as a JSON string. */
void print_json_string(const char *s);
/* "0 B", "512 B", "4.0 KiB", "1.5 GiB": binary units, one decimal. */
const char *format_size(uint64_t bytes, char *buf, size_t size);

/* One statistic of an a{st}. */
typedef struct Stat {
        char *key;
        uint64_t value;
} Stat;

/* Reads an a{st} (not yet entered) of reply into a malloc'ed array. -EBADMSG, -ENOMEM. */
int stats_read(sd_bus_message *reply, Stat **ret, size_t *ret_n);
void stats_free(Stat *stats, size_t n);
/* {"key":value,...}, in the daemon's order. */
void print_stats_json(const Stat *stats, size_t n);

/* A region as ListRegions gives it. Strings are escaped text from the daemon. */
typedef struct RegionRow {
        uint32_t id, pid;
        char *name, *note, *merge_note;
        bool whole;
        uint64_t start, length;          /* bytes; length 0 for a whole process */
        Stat *stats;
        size_t n_stats;
} RegionRow;

/* ListRegions, read whole. -EBADMSG on a malformed reply (said on stderr), or the call's -errno. */
int regions_load(sd_bus *bus, RegionRow **ret, size_t *ret_n);
void regions_free(RegionRow *rows, size_t n);
/* The statistic key of the region; 0 if the daemon did not give it. */
uint64_t region_row_get(const RegionRow *r, const char *key);
/* The region's registered pages: what its reasons add up to, or before a scan its range or areas. */
uint64_t region_row_registered_pages(const RegionRow *r);

int cmd_list(sd_bus *bus, const Args *a);
int cmd_explain(sd_bus *bus, const Args *a);
/* stats --format=FORMAT, on stdout or atomically into arg_output. */
int cmd_stats_metrics(sd_bus *bus, const Args *a);
