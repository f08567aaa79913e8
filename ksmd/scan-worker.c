/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "memory-reader.h"
#include "page-hash.h"
#include "pidfd-util.h"
#include "proc-reader.h"
#include "scan-worker.h"

enum {
        JOB_QUEUED = 1,
        JOB_RUNNING,
        JOB_DONE,
};

typedef struct ScanWorker {
        ScanPool *pool;
        pthread_t thread;
        bool started;
        void *buf;                       /* SCAN_JOB_MAX_PAGES pages */
} ScanWorker;

struct ScanPool {
        pthread_mutex_t lock;
        pthread_cond_t queued;           /* a job was queued, or the pool stops */
        pthread_cond_t done;             /* a job is done */
        ScanJob *head, *tail;            /* queued jobs, oldest first */
        bool stopping;
        unsigned n_workers;
        ScanWorker workers[];
};

void scan_job_run(ScanJob *j, void *buf) {
        uint64_t addrs[SCAN_JOB_MAX_PAGES];
        uint32_t which[SCAN_JOB_MAX_PAGES];
        size_t n_read = 0, done = 0;
        int k;

        j->pagemap_error = j->read_error = 0;
        j->n_read = 0;
        for (size_t i = 0; i < j->n_pages; i++)
                j->status[i] = SCAN_JOB_PAGE_NOT_READ;

        k = proc_pagemap_read(j->pagemap_fd, j->start, j->n_pages, j->pagemap);
        if (k >= 0 && j->pagemap_scan)
                k = proc_pagemap_mark_zero_pages(j->pagemap_fd, j->start, j->n_pages, j->pagemap);
        if (k < 0) {
                j->pagemap_error = k;
                return;
        }

        for (size_t i = 0; i < j->n_pages; i++)
                if (j->filter(j, i)) {
                        addrs[n_read] = j->start + i * PAGE_SIZE_BYTES;
                        which[n_read++] = (uint32_t) i;
                }

        /* As the scanner always read: a batch ends at a page that vanished, which is skipped. */
        while (done < n_read) {
                size_t got = 0, batch = j->single_page_reads ? 1 : n_read - done;

                k = memory_read_pages(j->pid, addrs + done, batch, buf, &got);
                /* The pid might have been reused between pagemap and the read: data only from the living. */
                if (k >= 0 && pidfd_is_alive(j->pidfd) <= 0)
                        k = -ESRCH;
                if (k < 0) {
                        j->status[which[done]] = SCAN_JOB_PAGE_FAILED;
                        j->read_error = k;
                        return;
                }
                for (size_t g = 0; g < got; g++) {
                        const uint8_t *page = (const uint8_t *) buf + g * PAGE_SIZE_BYTES;
                        size_t i = which[done + g];

                        j->zero[i] = page_is_zero(page);
                        j->hash[i] = j->zero[i] ? 0 : page_hash(page, j->hash_seed);
                        j->status[i] = SCAN_JOB_PAGE_READ;
                }
                j->n_read += got;
                done += got;
                if (got < batch)
                        j->status[which[done++]] = SCAN_JOB_PAGE_UNREADABLE;
        }
}

static void *worker_main(void *userdata) {
        ScanWorker *w = userdata;
        ScanPool *p = w->pool;

        pthread_mutex_lock(&p->lock);
        for (;;) {
                ScanJob *j;

                while (!p->head && !p->stopping)
                        pthread_cond_wait(&p->queued, &p->lock);
                if (p->stopping)
                        break;
                j = p->head;
                p->head = j->queue_next;
                if (!p->head)
                        p->tail = NULL;
                j->state = JOB_RUNNING;
                pthread_mutex_unlock(&p->lock);

                scan_job_run(j, w->buf);

                pthread_mutex_lock(&p->lock);
                j->state = JOB_DONE;
                pthread_cond_broadcast(&p->done);
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

unsigned scan_threads_default(uint64_t max_cpu_percent, long online_cpus) {
        uint64_t n = (max_cpu_percent + 99) / 100;

        if (online_cpus > 0)
                n = MIN(n, (uint64_t) online_cpus);
        return (unsigned) MAX(MIN(n, (uint64_t) SCAN_THREADS_MAX), (uint64_t) 1);
}

int scan_pool_new(unsigned n_threads, ScanPool **ret) {
        _cleanup_(scan_pool_freep) ScanPool *p = NULL;
        int r;

        if (n_threads == 0 || n_threads > SCAN_THREADS_MAX)
                return -EINVAL;
        p = calloc(1, sizeof(*p) + n_threads * sizeof(ScanWorker));
        if (!p)
                return -ENOMEM;
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->queued, NULL);
        pthread_cond_init(&p->done, NULL);
        for (unsigned i = 0; i < n_threads; i++) {
                ScanWorker *w = &p->workers[i];

                p->n_workers++;
                w->pool = p;
                w->buf = aligned_alloc(PAGE_SIZE_BYTES, (size_t) SCAN_JOB_MAX_PAGES * PAGE_SIZE_BYTES);
                if (!w->buf)
                        return -ENOMEM;
                r = pthread_create(&w->thread, NULL, worker_main, w);
                if (r != 0)
                        return -r;
                w->started = true;
        }
        *ret = TAKE_PTR(p);
        return 0;
}

ScanPool *scan_pool_free(ScanPool *p) {
        if (!p)
                return NULL;
        pthread_mutex_lock(&p->lock);
        p->stopping = true;
        pthread_cond_broadcast(&p->queued);
        pthread_mutex_unlock(&p->lock);
        for (unsigned i = 0; i < p->n_workers; i++) {
                if (p->workers[i].started)
                        (void) pthread_join(p->workers[i].thread, NULL);
                free(p->workers[i].buf);
        }
        pthread_cond_destroy(&p->done);
        pthread_cond_destroy(&p->queued);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
}

unsigned scan_pool_threads(const ScanPool *p) {
        return p->n_workers;
}

void scan_pool_submit(ScanPool *p, ScanJob *j) {
        pthread_mutex_lock(&p->lock);
        j->queue_next = NULL;
        j->state = JOB_QUEUED;
        if (p->tail)
                p->tail->queue_next = j;
        else
                p->head = j;
        p->tail = j;
        pthread_cond_signal(&p->queued);
        pthread_mutex_unlock(&p->lock);
}

void scan_pool_wait(ScanPool *p, ScanJob *j) {
        pthread_mutex_lock(&p->lock);
        while (j->state != JOB_DONE)
                pthread_cond_wait(&p->done, &p->lock);
        pthread_mutex_unlock(&p->lock);
}
