/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * DOC: the metrics
 *
 * ksmctl stats --format=openmetrics|prometheus writes every statistic the
 * daemon gives (GetStatistics, ListDomains, ListRegions) as metrics, in one
 * of two expositions that differ only in their metadata:
 *  - OpenMetrics 1.0: per family a HELP, a TYPE and, for sizes and times, a
 *    UNIT line, its samples, and "# EOF" at the end; a counter family is
 *    named without "_total", which only its samples carry; the version and
 *    mode are an info family, ksmd, whose sample is ksmd_info.
 *  - the Prometheus text format 0.0.4, which node_exporter's textfile
 *    collector and promtool read: HELP and TYPE, a counter typed under its
 *    "_total" name, ksmd_info a gauge, no UNIT or EOF.
 * The samples, their names and their labels are the same in both.
 * Names follow Prometheus's conventions:
 * ksmd_ for the host, ksmd_domain_ and ksmd_region_ for one domain or
 * region, base units (bytes, seconds), _total for counters. The statistic
 * a family comes from is named in openmetrics.c's table; a statistic of a
 * newer daemon that the table does not know is left out, so the names stay
 * stable.
 *
 * Label values come from outside (region names, domains): they are escaped
 * text first (escape.h: valid UTF-8, no control characters), then escaped
 * as the exposition format wants (backslash, double quote, newline).
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include "macro.h"

typedef enum MetricScope {
        METRIC_HOST,                     /* GetStatistics: ksmd_... */
        METRIC_DOMAIN,                   /* a ListDomains entry: ksmd_domain_..., labelled domain */
        METRIC_REGION,                   /* a ListRegions entry: ksmd_region_..., region, name, pid */
        _METRIC_SCOPE_MAX,
        _METRIC_SCOPE_INVALID = -1,
} MetricScope;

typedef struct MetricSet MetricSet;

int metric_set_new(MetricSet **ret);
MetricSet *metric_set_free(MetricSet *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(MetricSet *, metric_set_free);

/*
 * Adds one statistic (a key of the daemon's a{st}) of an entity of scope, whose labels are labels
 * (made with metric_labels_append(); "" for the host). -ENOMEM.
 */
int metric_set_add(MetricSet *s, MetricScope scope, const char *labels, const char *key, uint64_t value);

/* Adds ksmd_info{version,mode} 1 and ksmd_paused. -ENOMEM. */
int metric_set_add_info(MetricSet *s, const char *version, const char *mode, int paused);

typedef enum MetricFormat {
        METRIC_FORMAT_OPENMETRICS,       /* OpenMetrics 1.0 text */
        METRIC_FORMAT_PROMETHEUS,        /* Prometheus text 0.0.4 (node_exporter's textfile collector) */
        _METRIC_FORMAT_MAX,
        _METRIC_FORMAT_INVALID = -EINVAL,
} MetricFormat;

/* "openmetrics", "prometheus"; and back (_METRIC_FORMAT_INVALID). */
const char *metric_format_to_string(MetricFormat f);
MetricFormat metric_format_from_string(const char *s);

/* Writes the exposition in format, every family with a sample (the DOC). -EIO if f failed. */
int metric_set_write(const MetricSet *s, MetricFormat format, FILE *f);

/*
 * The sample name of the i-th metric family of any scope ("ksmd_region_saving_bytes"), for the
 * man-page test; NULL past the last.
 */
const char *metric_family_sample_name(size_t i, char *buf, size_t size);

/*
 * Appends name="value" (with a comma before it if *labels is not empty) to the malloc'ed *labels
 * (NULL: a new one); value is escaped as the DOC says. -ENOMEM.
 */
int metric_labels_append(char **labels, const char *name, const char *value);
