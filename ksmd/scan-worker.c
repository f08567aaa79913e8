/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "memory-reader.h"
#include "page-hash.h"
#include "pidfd-util.h"
#include "proc-reader.h"
#include "scan-worker.h"

/* Returned region ids of abandoned jobs kept for scan_pool_reap(); more are dropped (their regions
 * are then skipped until the pool is made anew, by a change of ScanThreads=). */
#define REAPED_MAX 1024u

enum {
        JOB_QUEUED = 1,
        JOB_RUNNING,
        JOB_DONE,
        JOB_ABANDONED,
};

typedef struct ScanWorker {
        ScanPool *pool;
        pthread_t thread;
        bool stuck;                      /* its job was abandoned: it exits when the job returns */
        void *buf;                       /* SCAN_JOB_MAX_PAGES pages */
} ScanWorker;

struct ScanPool {
        pthread_mutex_t lock;
        pthread_cond_t queued;           /* a job was queued, or the pool stops */
        pthread_cond_t done;             /* the awaited job is done */
        ScanJob *awaited;                /* the job scan_pool_wait() sleeps on; NULL: none */
        ScanJob *head, *tail;            /* queued jobs, oldest first */
        bool stopping;                   /* scan_pool_free() was called */
        unsigned n_stuck;                /* workers in an abandoned job, detached */
        uint32_t reaped[REAPED_MAX];
        size_t n_reaped;
        unsigned n_workers;
        ScanWorker *workers[SCAN_THREADS_MAX];
};

static uint64_t monotonic_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

ScanJob *scan_job_new(void) {
        ScanJob *j = calloc(1, sizeof(*j));

        if (j)
                j->pagemap_fd = -EBADF;
        return j;
}

ScanJob *scan_job_free(ScanJob *j) {
        if (!j)
                return NULL;
        safe_close(j->pagemap_fd);
        free(j);
        return NULL;
}

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
                /* The pid might have been reused between pagemap and the read: data only from the living.
                 * (An abandoned job's pidfd may be closed, its number another file's, by now: a poll
                 * of it does no harm, and its result goes nowhere.) */
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

static void pool_destroy(ScanPool *p) {
        pthread_cond_destroy(&p->done);
        pthread_cond_destroy(&p->queued);
        pthread_mutex_destroy(&p->lock);
        free(p);
}

/* Under the lock: an abandoned job the pool frees, its region remembered for scan_pool_reap(). */
static void pool_drop_abandoned(ScanPool *p, ScanJob *j) {
        if (p->n_reaped < REAPED_MAX)
                p->reaped[p->n_reaped++] = j->region_id;
        scan_job_free(j);
}

static void *worker_main(void *userdata) {
        ScanWorker *w = userdata;
        ScanPool *p = w->pool;
        bool last = false;

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
                if (j->state == JOB_ABANDONED) {
                        pool_drop_abandoned(p, j);
                        continue;
                }
                j->state = JOB_RUNNING;
                j->worker = w;
                /* A waiter's deadline starts now; it looks at this when its own timeout comes. */
                j->started_usec = monotonic_usec();
                pthread_mutex_unlock(&p->lock);

                scan_job_run(j, w->buf);

                pthread_mutex_lock(&p->lock);
                if (j->state == JOB_ABANDONED) {
                        /* Replaced while it ran: this worker is no longer the pool's. */
                        pool_drop_abandoned(p, j);
                        p->n_stuck--;
                        last = p->stopping && p->n_stuck == 0 && p->n_workers == 0;
                        break;
                }
                j->state = JOB_DONE;
                /* Only the waiter of this very job is woken: a wakeup per job done, and none for a
                 * job done before the event-loop thread asks for it. */
                if (p->awaited == j)
                        pthread_cond_signal(&p->done);
        }
        pthread_mutex_unlock(&p->lock);
        if (w->stuck) {
                free(w->buf);
                free(w);
                if (last)
                        pool_destroy(p);
        }
        return NULL;
}

unsigned scan_threads_default(uint64_t max_cpu_percent, long online_cpus) {
        uint64_t n = (max_cpu_percent + 99) / 100;

        if (online_cpus > 0)
                n = MIN(n, (uint64_t) online_cpus);
        return (unsigned) MAX(MIN(n, (uint64_t) SCAN_THREADS_MAX), (uint64_t) 1);
}

/* Starts one more worker. Under the lock, or before the pool is shared. -ENOMEM, -EAGAIN. */
static int pool_add_worker(ScanPool *p) {
        ScanWorker *w;
        int r;

        assert(p->n_workers < SCAN_THREADS_MAX);
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->pool = p;
        w->buf = aligned_alloc(PAGE_SIZE_BYTES, (size_t) SCAN_JOB_MAX_PAGES * PAGE_SIZE_BYTES);
        if (!w->buf) {
                free(w);
                return -ENOMEM;
        }
        r = pthread_create(&w->thread, NULL, worker_main, w);
        if (r != 0) {
                free(w->buf);
                free(w);
                return -r;
        }
        p->workers[p->n_workers++] = w;
        return 0;
}

int scan_pool_new(unsigned n_threads, ScanPool **ret) {
        _cleanup_(scan_pool_freep) ScanPool *p = NULL;
        pthread_condattr_t attr;
        int r;

        if (n_threads == 0 || n_threads > SCAN_THREADS_MAX)
                return -EINVAL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->queued, NULL);
        /* Deadlines are on the monotonic clock. */
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&p->done, &attr);
        pthread_condattr_destroy(&attr);
        for (unsigned i = 0; i < n_threads; i++) {
                r = pool_add_worker(p);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(p);
        return 0;
}

ScanPool *scan_pool_free(ScanPool *p) {
        unsigned n;
        bool orphan;

        if (!p)
                return NULL;
        pthread_mutex_lock(&p->lock);
        p->stopping = true;
        pthread_cond_broadcast(&p->queued);
        n = p->n_workers;
        pthread_mutex_unlock(&p->lock);
        for (unsigned i = 0; i < n; i++) {
                (void) pthread_join(p->workers[i]->thread, NULL);
                free(p->workers[i]->buf);
                free(p->workers[i]);
        }
        pthread_mutex_lock(&p->lock);
        p->n_workers = 0;
        while (p->head) {
                ScanJob *j = p->head;

                p->head = j->queue_next;
                if (j->state == JOB_ABANDONED)
                        scan_job_free(j);
        }
        orphan = p->n_stuck > 0;
        pthread_mutex_unlock(&p->lock);
        if (!orphan)
                pool_destroy(p);
        return NULL;
}

unsigned scan_pool_threads(const ScanPool *p) {
        return p->n_workers;
}

unsigned scan_pool_stuck(ScanPool *p) {
        unsigned n;

        pthread_mutex_lock(&p->lock);
        n = p->n_stuck;
        pthread_mutex_unlock(&p->lock);
        return n;
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

/* Under the lock: gives up job j, and the worker running it, if any, to a replacement. */
static int pool_abandon(ScanPool *p, ScanJob *j) {
        ScanWorker *w = j->worker;

        if (j->state == JOB_QUEUED) {
                /* The worker that dequeues it frees it. */
                j->state = JOB_ABANDONED;
                return 0;
        }
        j->state = JOB_ABANDONED;
        for (unsigned i = 0; i < p->n_workers; i++)
                if (p->workers[i] == w) {
                        p->workers[i] = p->workers[--p->n_workers];
                        break;
                }
        w->stuck = true;
        p->n_stuck++;
        (void) pthread_detach(w->thread);
        return pool_add_worker(p) < 0 ? -EAGAIN : 0;
}

int scan_pool_wait(ScanPool *p, ScanJob *j, uint64_t deadline_usec) {
        int r = 0;

        pthread_mutex_lock(&p->lock);
        for (;;) {
                uint64_t end, now;
                struct timespec ts;

                if (j->state == JOB_DONE)
                        break;
                /* Every worker replaced and none could start: nobody would ever run it. */
                if (j->state == JOB_QUEUED && p->n_workers == 0 && pool_add_worker(p) < 0) {
                        (void) pool_abandon(p, j);
                        r = -EAGAIN;
                        break;
                }
                now = deadline_usec == UINT64_MAX ? 0 : monotonic_usec();
                if (deadline_usec == 0 ||
                    (j->state == JOB_RUNNING && deadline_usec != UINT64_MAX &&
                     now - j->started_usec >= deadline_usec)) {
                        r = pool_abandon(p, j);
                        r = r < 0 ? r : -ETIMEDOUT;
                        break;
                }
                p->awaited = j;
                if (deadline_usec == UINT64_MAX) {
                        pthread_cond_wait(&p->done, &p->lock);
                        continue;
                }
                /*
                 * Workers do not wake us when a job starts: a queued job's deadline cannot have
                 * passed before now + deadline_usec, so that is when to look again.
                 */
                end = (j->state == JOB_RUNNING ? j->started_usec : now) + deadline_usec;
                ts = (struct timespec) { .tv_sec = (time_t) (end / 1000000),
                                         .tv_nsec = (long) (end % 1000000) * 1000 };
                (void) pthread_cond_timedwait(&p->done, &p->lock, &ts);
        }
        p->awaited = NULL;
        pthread_mutex_unlock(&p->lock);
        return r;
}

size_t scan_pool_reap(ScanPool *p, uint32_t *ids, size_t max) {
        size_t n;

        pthread_mutex_lock(&p->lock);
        n = MIN(max, p->n_reaped);
        memcpy(ids, p->reaped, n * sizeof(uint32_t));
        memmove(p->reaped, p->reaped + n, (p->n_reaped - n) * sizeof(uint32_t));
        p->n_reaped -= n;
        pthread_mutex_unlock(&p->lock);
        return n;
}
