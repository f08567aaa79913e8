/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The adaptive rate: instead of fixed pages_per_batch/sleep, the operator
 * gives a target full-scan time and a CPU cap; the daemon measures its own
 * CPU cost per page and picks both knobs. Pure logic, no clock access.
 */

#include <stdbool.h>
#include <stdint.h>

#define RATE_BATCH_CPU_USEC 10000u       /* aim for about 10 ms of CPU per batch */
#define RATE_MIN_BATCH_PAGES 64u
#define RATE_MAX_BATCH_PAGES 65536u
#define RATE_MAX_CPU_PERCENT 6400u       /* 64 cores */

typedef struct RateDecision {
        uint64_t pages_per_batch;
        uint64_t sleep_usec;
        bool cpu_capped;                 /* the target is out of reach under the CPU cap */
} RateDecision;

/*
 * tracked_pages: pages in one full scan; target_scan_usec > 0; cpu_cap_percent
 * 1..RATE_MAX_CPU_PERCENT, of one core, all threads together;
 * cost_nsec_per_page: measured CPU per page, all threads together (0:
 * unknown yet, a conservative 2000 ns is assumed); busy_nsec_per_page: the
 * measured wall time per page a batch takes (0: unknown, taken as the CPU
 * cost). Batches scanned by several threads take less wall time than CPU
 * time; the sleep after a batch makes up the difference, so that CPU time
 * over wall time stays within the cap. Returns -EINVAL for out-of-range input.
 */
int rate_decide(uint64_t tracked_pages, uint64_t target_scan_usec, unsigned cpu_cap_percent,
                uint64_t cost_nsec_per_page, uint64_t busy_nsec_per_page, RateDecision *ret);

/* Exponentially weighted moving average of the cost per page (weight 1/4 for the new sample). */
uint64_t rate_update_cost(uint64_t old_nsec_per_page, uint64_t batch_cpu_nsec, uint64_t batch_pages);
