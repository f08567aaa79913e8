/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * DOC: scan workers (ScanThreads=)
 *
 * The expensive part of scanning a chunk of pages, the pagemap read, the
 * process_vm_readv of its pages and their zero test and hash, is a ScanJob:
 * plain data in, plain data out, touching none of the scanner's state. The
 * scanner (scanner.c) fills a job for each chunk on the event-loop thread,
 * with a copy of the chunk's page slots, submits it, and consumes the results
 * strictly in the order it submitted them. The index, the slots and the merge
 * queue stay the event-loop thread's alone: no lock guards them, and the
 * scan (its counters, its estimate, its merges) is the same whatever the
 * number of threads.
 *
 * With one thread a job runs on the event-loop thread when it is consumed,
 * exactly where the scanner read the chunk itself before threads existed.
 * With n >= 2 threads, n workers run the jobs while the event-loop thread
 * consumes the results: reading and hashing, which is most of the cost,
 * runs in parallel; the index operations are serial.
 *
 * Which pages a worker reads is the scanner's decision, given as a filter on
 * the pagemap entry and the slot copy (ScanJobFilter). The scanner decides
 * again when it consumes the results, with the slots as they are then; a
 * page it wants that the worker did not read (its slot changed meanwhile, a
 * merge result came in) it reads itself, a page read that it does not want
 * is ignored: the filter spares work, it decides nothing.
 *
 * A read that does not return (a process that maps a FUSE file it never
 * answers, or holds its own mmap_lock) holds its worker, not the daemon: the
 * scanner waits for a job only up to a deadline, then abandons it. The pool
 * then owns the job, frees it (and closes its pagemap fd) when the read
 * returns, if ever, and starts a new worker in place of the stuck one; the
 * scanner skips the job's region until then (scanner.c). With one thread
 * there is no worker to abandon: the event-loop thread waits, as it always did.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "index.h"
#include "macro.h"

#define SCAN_JOB_MAX_PAGES 512u
#define SCAN_THREADS_MAX 64u

typedef enum ScanJobPage {
        SCAN_JOB_PAGE_NOT_READ,          /* filtered out, or after a failed read */
        SCAN_JOB_PAGE_READ,              /* zero[] and hash[] hold its content */
        SCAN_JOB_PAGE_UNREADABLE,        /* vanished between pagemap and the read */
        SCAN_JOB_PAGE_FAILED,            /* the read failed here with read_error; the rest is NOT_READ */
} ScanJobPage;

typedef struct ScanJob ScanJob;

/* Whether page i of job is worth reading, from job->pagemap[i] and job->slots[i]. Runs on a worker. */
typedef bool (*ScanJobFilter)(const ScanJob *job, size_t i);

struct ScanJob {
        /* In: set by the submitter, read only by the worker. */
        pid_t pid;
        int pidfd;                       /* the process's; the data is trusted only if it is alive after */
        int pagemap_fd;                  /* the job's own: closed by scan_job_free() */
        uint64_t start;                  /* address of page 0, page aligned */
        size_t n_pages;                  /* 1..SCAN_JOB_MAX_PAGES */
        bool pagemap_scan;               /* mark zero pages with PAGEMAP_SCAN (proc-reader.h) */
        bool single_page_reads;          /* one page per process_vm_readv */
        uint64_t hash_seed;
        ScanJobFilter filter;
        const void *filter_data;         /* the submitter's, constant while the job runs */
        uint64_t passes;                 /* for the filter: the scanner's full scans started */
        bool soft_dirty_tracking;        /* for the filter: the region's soft-dirty bits are ours */
        PageSlot slots[SCAN_JOB_MAX_PAGES]; /* for the filter: the pages' slots when submitted */

        /* The submitter's bookkeeping, not touched by the pool. */
        uint32_t region_id;
        size_t area_pos;
        uint64_t first_page;             /* index of page 0 in its area */

        /* Out: valid once the job is done. */
        int pagemap_error;               /* < 0: pagemap could not be read, nothing else is valid */
        int read_error;                  /* of the page marked SCAN_JOB_PAGE_FAILED */
        uint64_t pagemap[SCAN_JOB_MAX_PAGES];
        uint8_t status[SCAN_JOB_MAX_PAGES]; /* ScanJobPage */
        bool zero[SCAN_JOB_MAX_PAGES];
        uint64_t hash[SCAN_JOB_MAX_PAGES]; /* page_hash() with hash_seed, of the pages read and not zero */
        size_t n_read;                   /* pages read */

        /* The pool's. */
        ScanJob *queue_next;
        int state;
        uint64_t started_usec;           /* CLOCK_MONOTONIC, when a worker took it */
        void *worker;
};

/* A job with no fd (pagemap_fd = -EBADF). NULL without memory. */
ScanJob *scan_job_new(void);
/* Closes its pagemap fd and frees it. */
ScanJob *scan_job_free(ScanJob *job);
DEFINE_TRIVIAL_CLEANUP_FUNC(ScanJob *, scan_job_free);

/*
 * Runs job on the calling thread, reading into buf (SCAN_JOB_MAX_PAGES pages,
 * page aligned). Errors are in the job's results.
 */
void scan_job_run(ScanJob *job, void *buf);

typedef struct ScanPool ScanPool;

/*
 * n_threads workers (1..SCAN_THREADS_MAX). -EINVAL, -ENOMEM, or what
 * pthread_create() returned, negated.
 */
int scan_pool_new(unsigned n_threads, ScanPool **ret);
/*
 * Stops the workers and joins them once their jobs are done. Jobs still
 * queued are not run. Workers stuck in an abandoned job are left to finish
 * it; the last of them frees what remains of the pool.
 */
ScanPool *scan_pool_free(ScanPool *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(ScanPool *, scan_pool_free);

unsigned scan_pool_threads(const ScanPool *p);

/* Queues job (first in, first out); it must stay valid until scan_pool_wait() returned for it. */
void scan_pool_submit(ScanPool *p, ScanJob *job);
/*
 * Waits until job is done: 0. One thread at a time may wait (the pool wakes
 * only the waiter of the job it waits for). If a worker has run it for
 * deadline_usec (UINT64_MAX: no deadline; 0: do not wait) without finishing, or it is still
 * queued and deadline_usec is 0, the job is abandoned: -ETIMEDOUT, and the
 * pool owns it from then on (see the DOC above). A job abandoned while
 * running gets its worker replaced; -EAGAIN instead if no new thread could
 * be started (the job is abandoned all the same).
 */
int scan_pool_wait(ScanPool *p, ScanJob *job, uint64_t deadline_usec);

/*
 * The region_id of each abandoned job that a worker has since returned from
 * (or never started), once each, up to max of them into ids. Returns how many.
 */
size_t scan_pool_reap(ScanPool *p, uint32_t *ids, size_t max);

/* Workers stuck in an abandoned job, not counted in scan_pool_threads(). */
unsigned scan_pool_stuck(ScanPool *p);

/*
 * The default number of scan threads: the CPUs the adaptive rate may use in
 * total (max_cpu_percent / 100, rounded up), at most the online CPUs, at least 1.
 */
unsigned scan_threads_default(uint64_t max_cpu_percent, long online_cpus);
