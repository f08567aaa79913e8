/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ksmctl stats --format=openmetrics|prometheus: the host's, every domain's and every
 * region's statistics as the daemon gives them to this caller (root sees
 * the host; a caller other than root its own regions), written with
 * openmetrics.h, on stdout or, with --output=FILE, atomically into FILE
 * (written beside it and renamed over it), as node_exporter's textfile
 * collector wants.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ksmctl.h"
#include "macro.h"
#include "openmetrics.h"

static int add_stats(MetricSet *set, MetricScope scope, const char *labels, const Stat *stats, size_t n) {
        for (size_t i = 0; i < n; i++) {
                int r = metric_set_add(set, scope, labels, stats[i].key, stats[i].value);

                if (r < 0)
                        return r;
        }
        return 0;
}

static int collect_host(sd_bus *bus, MetricSet *set) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *version = NULL, *mode = NULL;
        Stat *stats = NULL;
        size_t n = 0;
        int paused = 0, r;

        if ((r = get_property(bus, "Version", 's', &version)) < 0 ||
            (r = get_property(bus, "Mode", 's', &mode)) < 0 ||
            (r = get_property(bus, "Paused", 'b', &paused)) < 0)
                return r;
        r = metric_set_add_info(set, version, mode, paused);
        if (r < 0)
                return r;
        r = call(bus, "GetStatistics", &reply, NULL);
        if (r < 0)
                return r;
        r = stats_read(reply, &stats, &n);
        if (r >= 0)
                r = add_stats(set, METRIC_HOST, "", stats, n);
        stats_free(stats, n);
        return r;
}

static int collect_domains(sd_bus *bus, MetricSet *set) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = call(bus, "ListDomains", &reply, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(usa{st})");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'r', "usa{st}")) > 0) {
                _cleanup_free_ char *labels = NULL;
                Stat *stats = NULL;
                const char *name;
                size_t n = 0;
                uint32_t id;

                r = sd_bus_message_read(reply, "us", &id, &name);
                if (r >= 0)
                        r = metric_labels_append(&labels, "domain", name);
                if (r >= 0)
                        r = stats_read(reply, &stats, &n);
                if (r >= 0)
                        r = add_stats(set, METRIC_DOMAIN, labels, stats, n);
                stats_free(stats, n);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        return r;
}

static int collect_regions(sd_bus *bus, MetricSet *set) {
        RegionRow *rows = NULL;
        size_t n = 0;
        int r;

        r = regions_load(bus, &rows, &n);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_free_ char *labels = NULL;
                char id[16], pid[16];

                snprintf(id, sizeof(id), "%u", rows[i].id);
                snprintf(pid, sizeof(pid), "%u", rows[i].pid);
                r = metric_labels_append(&labels, "region", id);
                if (r >= 0)
                        r = metric_labels_append(&labels, "name", rows[i].name);
                if (r >= 0)
                        r = metric_labels_append(&labels, "pid", pid);
                if (r >= 0)
                        r = add_stats(set, METRIC_REGION, labels, rows[i].stats, rows[i].n_stats);
                if (r >= 0)
                        r = metric_set_add(set, METRIC_REGION, labels, "registered_bytes",
                                           region_row_registered_pages(&rows[i]) * PAGE_SIZE_BYTES);
        }
        if (rows)
                regions_free(rows, n);
        return r;
}

/* Writes set into arg_output through a file beside it, renamed over it once complete. */
static int write_atomically(const MetricSet *set) {
        _cleanup_free_ char *tmp = NULL;
        FILE *f;
        int fd, r;

        if (asprintf(&tmp, "%s.XXXXXX", arg_output) < 0)
                return -ENOMEM;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                fprintf(stderr, "ksmctl: cannot create %s: %s\n", tmp, strerror(-r));
                return r;
        }
        f = fdopen(fd, "w");
        if (!f) {
                r = -errno;
                close(fd);
                goto fail;
        }
        r = metric_set_write(set, (MetricFormat) arg_format, f);
        /* Readable by node_exporter, which does not run as root. */
        if (r >= 0 && (fchmod(fd, 0644) < 0 || fsync(fd) < 0))
                r = -errno;
        if (fclose(f) != 0 && r >= 0)
                r = -errno;
        if (r >= 0 && rename(tmp, arg_output) < 0)
                r = -errno;
        if (r >= 0)
                return 0;
fail:
        fprintf(stderr, "ksmctl: cannot write %s: %s\n", arg_output, strerror(-r));
        (void) unlink(tmp);
        return r;
}

int cmd_stats_metrics(sd_bus *bus, const Args *a) {
        _cleanup_(metric_set_freep) MetricSet *set = NULL;
        int r;

        r = metric_set_new(&set);
        if (r < 0)
                return r;
        r = collect_host(bus, set);
        if (r >= 0)
                r = collect_domains(bus, set);
        if (r >= 0)
                r = collect_regions(bus, set);
        if (r == -EBADMSG || r == -ENXIO || r == -ENOMEM)
                fprintf(stderr, "ksmctl: cannot read the statistics: %s\n", strerror(-r));
        if (r < 0)
                return r;
        if (arg_output)
                return write_atomically(set);
        r = metric_set_write(set, (MetricFormat) arg_format, stdout);
        if (r < 0)
                fprintf(stderr, "ksmctl: cannot write the metrics: %s\n", strerror(-r));
        return r;
}
