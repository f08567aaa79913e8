/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdbool.h>

#include "macro.h"
#include "rate.h"

#define RATE_DEFAULT_COST_NSEC 2000u

int rate_decide(uint64_t tracked_pages, uint64_t target_scan_usec, unsigned cpu_cap_percent,
                uint64_t cost_nsec_per_page, uint64_t busy_nsec_per_page, RateDecision *ret) {
        uint64_t batch, batch_cpu_usec, batch_busy_usec, period_usec, min_period_usec, min_sleep_usec,
                n_batches;
        RateDecision d = {};

        if (target_scan_usec == 0 || cpu_cap_percent == 0 || cpu_cap_percent > RATE_MAX_CPU_PERCENT)
                return -EINVAL;
        if (cost_nsec_per_page == 0)
                cost_nsec_per_page = RATE_DEFAULT_COST_NSEC;
        /* One thread's batch takes at least its CPU time: as before threads, only less counts. */
        if (busy_nsec_per_page == 0 || busy_nsec_per_page > cost_nsec_per_page)
                busy_nsec_per_page = cost_nsec_per_page;

        batch = (uint64_t) RATE_BATCH_CPU_USEC * 1000 / cost_nsec_per_page;
        batch = MAX(MIN(batch, (uint64_t) RATE_MAX_BATCH_PAGES), (uint64_t) RATE_MIN_BATCH_PAGES);
        batch_cpu_usec = batch * cost_nsec_per_page / 1000;
        batch_busy_usec = batch * busy_nsec_per_page / 1000;

        /* Spread the batches of one full scan evenly over the target time. */
        n_batches = MAX(DIV_ROUND_UP(tracked_pages, batch), (uint64_t) 1);
        period_usec = target_scan_usec / n_batches;
        d.sleep_usec = period_usec > batch_busy_usec ? period_usec - batch_busy_usec : 0;

        /* The cap: cpu / (busy + sleep) <= cap. */
        min_period_usec = batch_cpu_usec * 100 / cpu_cap_percent;
        min_sleep_usec = min_period_usec > batch_busy_usec ? min_period_usec - batch_busy_usec : 0;
        if (d.sleep_usec < min_sleep_usec) {
                d.sleep_usec = min_sleep_usec;
                d.cpu_capped = true;
        }
        d.pages_per_batch = batch;
        *ret = d;
        return 0;
}

uint64_t rate_update_cost(uint64_t old_nsec_per_page, uint64_t batch_cpu_nsec, uint64_t batch_pages) {
        uint64_t sample;

        if (batch_pages == 0)
                return old_nsec_per_page;
        sample = batch_cpu_nsec / batch_pages;
        if (old_nsec_per_page == 0)
                return MAX(sample, (uint64_t) 1);
        return MAX((old_nsec_per_page * 3 + sample) / 4, (uint64_t) 1);
}
