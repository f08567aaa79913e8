/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <stdbool.h>
#include <stdio.h>

#include "macro.h"
#include "stats.h"

void scan_counters_add(ScanCounters *a, const ScanCounters *b) {
        const uint64_t *src = (const uint64_t *) b;
        uint64_t *dst = (uint64_t *) a;

        /* ScanCounters is all uint64_t by design. */
        for (size_t i = 0; i < sizeof(ScanCounters) / sizeof(uint64_t); i++)
                dst[i] += src[i];
}

uint64_t stats_saving_bytes(const Stats *s) {
        return scan_counters_saving_pages(&s->last) * PAGE_SIZE_BYTES;
}

int stats_format_status(const Stats *s, bool estimate, bool paused, uint64_t total_pages, char *buf,
                        size_t size) {
        /* Regions join the index as the scan reaches them: the last full scan's size is the better total. */
        uint64_t total = s->full_scans > 0 ? MAX(total_pages, s->last.pages_scanned) : total_pages;
        unsigned percent = total ? (unsigned) MIN(100u, s->current_scan_pages * 100 / total) : 0;
        double mib = (double) stats_saving_bytes(s) / (1024.0 * 1024.0);
        char next[64];

        if (s->full_scans == 0 && total_pages == 0)
                return snprintf(buf, size, "%s: starting the first scan%s",
                                estimate ? "estimate mode (helper module not loaded), nothing is merged"
                                         : "merging",
                                paused ? "; paused" : "");
        if (s->full_scans == 0)
                return snprintf(buf, size, "%s: first scan %u%% of %llu pages%s",
                                estimate ? "estimate mode (helper module not loaded), nothing is merged"
                                         : "merging",
                                percent, (unsigned long long) total_pages, paused ? "; paused" : "");
        /* Between two scans after a quiet one: when the next starts; else how far the running one is. */
        if (s->rest_usec > 0 && s->current_scan_pages == 0)
                (void) snprintf(next, sizeof(next), "little new, next scan in %.0f s",
                                (double) s->rest_usec / 1e6);
        else
                (void) snprintf(next, sizeof(next), "scanning %u%%", percent);
        return snprintf(buf, size, "%s %.1f MiB (%llu pages) after %llu scans, last took %.1f s; %s%s%s",
                        estimate ? "estimate mode, nothing merged: merging would save" : "saving",
                        mib, (unsigned long long) (stats_saving_bytes(s) / PAGE_SIZE_BYTES),
                        (unsigned long long) s->full_scans, (double) s->last_full_scan_usec / 1e6, next,
                        paused ? "; paused" : "",
                        s->cow.holding ? "; COW guard holding: headroom below CowReserve=, no new merges" :
                                         "");
}
