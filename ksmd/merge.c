/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <string.h>

#include "merge.h"

struct Merger {
        HelperClient *helper;            /* borrowed; NULL in estimate mode */
        size_t max_batch;
        size_t max_queue;
        MergeResultFn fn;
        void *userdata;

        MergeRequest *queue;
        size_t n_queue;

        HelperMergeItem *items;          /* max_batch each: scratch for one request */
        HelperMergeResult *results;
        size_t *picked;

        MergeCounters counters;
};

int merger_new(HelperClient *helper, size_t max_batch, size_t max_queue, MergeResultFn fn, void *userdata,
               Merger **ret) {
        _cleanup_(merger_freep) Merger *m = NULL;

        if (max_batch == 0 || max_queue == 0 || max_queue > MERGE_QUEUE_MAX || max_batch > max_queue || !fn)
                return -EINVAL;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->helper = helper;
        m->max_batch = max_batch;
        m->max_queue = max_queue;
        m->fn = fn;
        m->userdata = userdata;

        m->queue = calloc(max_queue, sizeof(MergeRequest));
        m->items = calloc(max_batch, sizeof(HelperMergeItem));
        m->results = calloc(max_batch, sizeof(HelperMergeResult));
        m->picked = calloc(max_batch, sizeof(size_t));
        if (!m->queue || !m->items || !m->results || !m->picked)
                return -ENOMEM;

        *ret = TAKE_PTR(m);
        return 0;
}

Merger *merger_free(Merger *m) {
        if (!m)
                return NULL;
        free(m->queue);
        free(m->items);
        free(m->results);
        free(m->picked);
        free(m);
        return NULL;
}

void merger_set_estimate(Merger *m) {
        m->helper = NULL;
        m->counters.dropped += m->n_queue;
        m->n_queue = 0;
}

bool merger_is_estimate(const Merger *m) {
        return !m->helper;
}

int merger_submit(Merger *m, const MergeRequest *req) {
        if (!m->helper) {
                m->counters.estimated++;
                return 0;
        }
        if (m->n_queue >= m->max_queue) {
                m->counters.dropped++;
                return -ENOBUFS;
        }
        m->queue[m->n_queue++] = *req;
        return 0;
}

size_t merger_forget_region(Merger *m, uint32_t region_id) {
        size_t w = 0, n = m->n_queue;

        for (size_t i = 0; i < n; i++) {
                const MergeRequest *q = &m->queue[i];

                if (q->region_id == region_id ||
                    (!q->zero && q->handle == 0 && q->src_region_id == region_id))
                        continue;
                if (w != i)
                        m->queue[w] = m->queue[i];
                w++;
        }
        m->n_queue = w;
        return n - w;
}

void merger_foreach_pending(const Merger *m, void (*fn)(const MergeRequest *req, void *userdata),
                            void *userdata) {
        for (size_t i = 0; i < m->n_queue; i++)
                fn(&m->queue[i], userdata);
}

size_t merger_pending(const Merger *m) {
        return m->n_queue;
}

uint64_t merger_next_retry_usec(const Merger *m) {
        uint64_t t = UINT64_MAX;

        for (size_t i = 0; i < m->n_queue; i++)
                t = MIN(t, m->queue[i].not_before_usec);
        return t;
}

static bool result_is_transient(uint32_t result) {
        return IN_SET(result, (uint32_t) KSMD_HELPER_RESULT_BUSY, (uint32_t) KSMD_HELPER_RESULT_NO_MEMORY);
}

/* The wait before the next send of a request that had a transient result on its attempts-th send. */
static uint64_t retry_delay_usec(uint32_t result, uint8_t attempts) {
        uint64_t base = result == KSMD_HELPER_RESULT_NO_MEMORY ? MERGE_RETRY_NO_MEMORY_BASE_USEC :
                                                                 MERGE_RETRY_BASE_USEC;

        return base << attempts;
}

bool merge_error_is_transient(int r) {
        return IN_SET(r, -ENOENT, -EAGAIN, -ENOMEM, -ENOBUFS, -EINTR);
}

/* Removes the picked requests marked done (region_id == 0), keeping the queue's order. */
static void merger_compact(Merger *m, size_t n_picked) {
        size_t w = 0, p = 0;

        for (size_t i = 0; i < m->n_queue; i++) {
                if (p < n_picked && m->picked[p] == i) {
                        p++;
                        if (m->queue[i].region_id == 0)
                                continue;
                }
                if (w != i)
                        m->queue[w] = m->queue[i];
                w++;
        }
        m->n_queue = w;
}

/* Sends one batch of due requests of one kind. Returns items sent (0: none due) or -errno. */
static int flush_one(Merger *m, bool zero, uint64_t now_usec) {
        size_t n = 0;
        int r;

        for (size_t i = 0; i < m->n_queue && n < m->max_batch; i++) {
                MergeRequest *q = &m->queue[i];

                if (q->zero != zero || q->not_before_usec > now_usec)
                        continue;
                m->picked[n] = i;
                m->items[n] = (HelperMergeItem) {
                        .pidfd = q->pidfd,
                        .addr = q->addr,
                        .src_pidfd = q->src_pidfd,
                        .src_addr = q->src_addr,
                        .handle = q->handle,
                };
                n++;
        }
        if (n == 0)
                return 0;

        r = helper_client_merge(m->helper, zero, m->items, n, m->results);
        if (r < 0 && !merge_error_is_transient(r)) {
                /* Refused as a whole (malformed, permission): drop the batch;
                 * its pages are re-examined next pass. */
                for (size_t k = 0; k < n; k++)
                        m->queue[m->picked[k]].region_id = 0;
                m->counters.dropped += n;
                merger_compact(m, n);
                return r;
        }
        if (r < 0)
                return r;
        m->counters.requests++;
        m->counters.items += n;

        for (size_t k = 0; k < n; k++) {
                MergeRequest *q = &m->queue[m->picked[k]];
                const HelperMergeResult *res = &m->results[k];

                q->attempts++;
                if (result_is_transient(res->result) && q->attempts < MERGE_MAX_ATTEMPTS) {
                        q->not_before_usec = now_usec + retry_delay_usec(res->result, q->attempts);
                        m->counters.retries++;
                        continue;
                }
                if (res->result < __KSMD_HELPER_RESULT_MAX)
                        m->counters.by_result[res->result]++;
                if (result_is_transient(res->result))
                        m->counters.dropped++;
                m->fn(q, res, m->userdata);
                q->region_id = 0;        /* done: compacted away below */
        }

        merger_compact(m, n);
        return (int) n;
}

int merger_flush(Merger *m, uint64_t now_usec) {
        int total = 0;

        if (!m->helper)
                return 0;

        for (int kind = 0; kind < 2; kind++)
                for (;;) {
                        int r = flush_one(m, kind == 1, now_usec);

                        if (r < 0)
                                return r;
                        if (r == 0)
                                break;
                        total += r;
                }
        return total;
}

const MergeCounters *merger_counters(const Merger *m) {
        return &m->counters;
}
