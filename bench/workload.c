/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ksmd-workload: N processes holding M MiB of private anonymous memory each,
 * with chosen fractions of cross-process duplicate, zero, unique and volatile
 * (continuously rewritten) pages. The contents are a pure function of
 * (seed, process, page, generation), so every process can verify at any time
 * that it reads exactly what it last wrote.
 *
 * The parent prints one line per child, "pid PID addr 0xADDR pages N", then
 * "ready" and the expected saving, and waits. On SIGUSR1 (or when --hold
 * seconds pass, or stdin closes with --stdin) every child verifies all its
 * pages and the parent exits 0 only if every child read back exactly its
 * own content. On SIGTERM/SIGINT it ends its children, by pid, and exits.
 * On SIGUSR2 every child rewrites the first half of its duplicate pages with
 * the next generation of their contents (still the same in every process,
 * different from before) and prints "rewritten PID GEN": writes that a
 * checkpoint tool tracking dirty pages must see, to pages a deduplicator
 * merges again, while the other half stays as it was (and merged). The
 * generation a process remembers is in its own memory, which a checkpoint
 * may restore as old as the pages: with --expect-gen FILE the verification
 * takes the generation the rewritten pages must hold from FILE instead (a
 * decimal number, written by whoever sent the SIGUSR2s) and says when the
 * process remembered another.
 *
 * With --touch-procs K the first K processes also run a memory-touching
 * thread (the benchmarks' measure of the workload's own slowdown): it reads
 * a word of a random page anywhere in its memory and writes a word of a
 * random unique page back with the value it holds, so contents never change
 * and no merge is undone; with --touch-counter FILE each process adds its
 * operations to its slot of FILE (MAX_PROCS shared 64-bit counters).
 *
 * With --churn-per-s N every process also runs a churn writer: N times a
 * second (in rounds every 10 ms) it writes one word of a random duplicate or
 * zero page with the value it holds. Contents never change, so the page is a
 * duplicate again at once, but a write to a merged page undoes the merge
 * with a COW fault: what merging pages that are written soon costs. With
 * --churn-hot F sends every write to the first F of those pages instead (a hot
 * set: pages written are written again soon, the locality that lets a
 * deduplicator learn which pages not to merge). With
 * --churn-counter FILE each process keeps four shared 64-bit counters in
 * FILE (slots 4p..4p+3): the writes, the nanoseconds they took, the writer
 * thread's minor faults (getrusage RUSAGE_THREAD: COW breaks of merged pages,
 * and any write-protect fault a scanner caused, such as those that follow a
 * soft-dirty clear), and its COW breaks: writes that faulted and left the
 * page on another frame than before (/proc/self/pagemap), so the write
 * undid a merge, whoever made it (the helper's shared page, a KSM page, the
 * zero page). A write-protect fault leaves the page on its frame. Where
 * pagemap shows no frame numbers (without CAP_SYS_ADMIN) a faulting write is
 * counted in a fifth slot, breaks untold, instead.
 * Churn and SIGUSR2 do not mix: a churn write may put back a word a rewrite
 * just changed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE_BYTES 4096u
#define MAX_PROCS 256
#define MIN_U64(a, b) ((a) < (b) ? (a) : (b))
#define MAX_U64(a, b) ((a) > (b) ? (a) : (b))
#define ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

enum page_kind {
        KIND_DUP,       /* same bytes in every process */
        KIND_ZERO,      /* all zero, written so the page is present */
        KIND_UNIQUE,    /* different in every process */
        KIND_VOLATILE,  /* rewritten continuously by a writer thread */
};

static struct {
        unsigned procs;
        uint64_t pages;            /* per process */
        double dup, zero, volatile_; /* fractions; unique is the rest */
        unsigned dup_groups;       /* distinct duplicate contents (0: one per dup page) */
        bool thp;
        bool mergeable;
        uint64_t seed;
        unsigned hold_s;           /* 0: until a signal */
        bool stdin_mode;
        unsigned volatile_period_ms;
        unsigned touch_procs;
        const char *touch_counter;
        const char *expect_gen;    /* file holding the generation the rewritten pages must hold */
        unsigned churn_per_s;      /* same-value writes to duplicate and zero pages a second, per process */
        const char *churn_counter;
        double churn_hot;          /* the fraction of those pages the writes go to */
} opt = {
        .procs = 4,
        .pages = 64 * 256,
        .dup = 0.5,
        .zero = 0.25,
        .volatile_ = 0.0,
        .seed = 1,
        .volatile_period_ms = 10,
        .churn_hot = 1.0,
};

static volatile sig_atomic_t got_verify, got_stop, got_rewrite;
static uint64_t dup_gen;        /* generation of the rewritten duplicate pages' contents (SIGUSR2) */
static _Atomic uint64_t *touch_counts;   /* MAX_PROCS slots, shared with the parent and readers */

enum { CHURN_WRITES, CHURN_WRITE_NS, CHURN_FAULTS, CHURN_BREAKS, CHURN_UNTOLD, CHURN_FIGURES };
static _Atomic uint64_t *churn_counts;   /* MAX_PROCS x CHURN_FIGURES slots, shared */

static void on_signal(int sig) {
        if (sig == SIGUSR1)
                got_verify = 1;
        else if (sig == SIGUSR2)
                got_rewrite = 1;
        else
                got_stop = 1;
}

/* Fixed layout: the first dup% pages are duplicates, then zero, then volatile, then unique. */
static enum page_kind kind_of(uint64_t page) {
        uint64_t n_dup = (uint64_t) (opt.dup * opt.pages);
        uint64_t n_zero = (uint64_t) (opt.zero * opt.pages);
        uint64_t n_vol = (uint64_t) (opt.volatile_ * opt.pages);

        if (page < n_dup)
                return KIND_DUP;
        if (page < n_dup + n_zero)
                return KIND_ZERO;
        if (page < n_dup + n_zero + n_vol)
                return KIND_VOLATILE;
        return KIND_UNIQUE;
}

/* The duplicate pages SIGUSR2 rewrites: the first half of them. */
static bool dup_rewritten(uint64_t page) {
        return page < (uint64_t) (opt.dup * opt.pages) / 2;
}

static uint64_t splitmix64(uint64_t *x) {
        uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
}

/* The bytes page `page` of process `proc` must hold at generation `gen`. */
static void fill_page(uint64_t *dst, unsigned proc, uint64_t page, uint64_t gen) {
        enum page_kind k = kind_of(page);
        uint64_t state;

        if (k == KIND_ZERO) {
                memset(dst, 0, PAGE_BYTES);
                return;
        }
        if (k == KIND_DUP)
                state = opt.seed * 0x100000001b3ull ^ (opt.dup_groups ? page % opt.dup_groups : page) ^
                        ((dup_rewritten(page) ? dup_gen : 0) << 40);
        else
                state = opt.seed ^ ((uint64_t) (proc + 1) << 48) ^ page ^ (gen << 32) ^ 0x5555;
        for (unsigned i = 0; i < PAGE_BYTES / sizeof(uint64_t); i++)
                dst[i] = splitmix64(&state);
        /* Never all-zero, so a non-zero kind is never a zero-page candidate. */
        dst[0] |= 1;
}

typedef struct Child {
        unsigned proc;
        uint8_t *mem;
        _Atomic uint64_t *gen;     /* per volatile page: last generation written */
        uint64_t vol_first, vol_count;
        uint64_t uniq_first, uniq_count;
        atomic_bool stop;
} Child;

/* Reads a random word anywhere, rewrites a random unique page's word with its own value. */
static void *toucher(void *p) {
        Child *c = p;
        uint64_t x = opt.seed * 7919 + c->proc, sum = 0;

        while (!atomic_load(&c->stop)) {
                for (unsigned n = 0; n < 256; n++) {
                        uint64_t r = splitmix64(&x);
                        volatile uint64_t *w =
                                (volatile uint64_t *) (c->mem + (r % opt.pages) * PAGE_BYTES) +
                                (r >> 48) % (PAGE_BYTES / sizeof(uint64_t));

                        sum += *w;
                        if (c->uniq_count) {
                                r = splitmix64(&x);
                                w = (volatile uint64_t *) (c->mem + (c->uniq_first + r % c->uniq_count) *
                                                                    PAGE_BYTES) +
                                    (r >> 48) % (PAGE_BYTES / sizeof(uint64_t));
                                *w = *w;
                        }
                }
                if (touch_counts)
                        atomic_fetch_add(&touch_counts[c->proc], 256);
        }
        return (void *) (uintptr_t) (sum & 1);
}

static uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static uint64_t thread_minor_faults(void) {
        struct rusage ru;

        return getrusage(RUSAGE_THREAD, &ru) == 0 ? (uint64_t) ru.ru_minflt : 0;
}

/* The frame /proc/self/pagemap gives for addr: 0 if it shows none (not present, or no privilege). */
static uint64_t page_frame(int pagemap_fd, const void *addr) {
        uint64_t e;

        if (pagemap_fd < 0 ||
            pread(pagemap_fd, &e, sizeof(e), (off_t) ((uintptr_t) addr / PAGE_BYTES * sizeof(e))) !=
                    (ssize_t) sizeof(e))
                return 0;
        return e & (UINT64_C(1) << 63) ? e & ((UINT64_C(1) << 55) - 1) : 0;
}

/* --churn-per-s: same-value writes to random duplicate and zero pages, paced in 10 ms rounds. */
static void *churn_writer(void *p) {
        Child *c = p;
        uint64_t n_pages = (uint64_t) (opt.dup * opt.pages) + (uint64_t) (opt.zero * opt.pages);
        uint64_t x = opt.seed * 104729 + c->proc, round = 0, done = 0;
        int pagemap_fd = churn_counts ? open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC) : -1;
        struct timespec next;

        if (n_pages == 0)
                return NULL;
        n_pages = MAX_U64(1, (uint64_t) (opt.churn_hot * (double) n_pages));
        clock_gettime(CLOCK_MONOTONIC, &next);
        while (!atomic_load(&c->stop)) {
                uint64_t due = (round + 1) * opt.churn_per_s / 100, n = due - done;
                uint64_t write_ns = 0, faults = 0, breaks = 0, untold = 0;

                for (uint64_t i = 0; i < n; i++) {
                        uint64_t r = splitmix64(&x);
                        uint8_t *page = c->mem + (r % n_pages) * PAGE_BYTES;
                        volatile uint64_t *w = (volatile uint64_t *) page +
                                               (r >> 48) % (PAGE_BYTES / sizeof(uint64_t));
                        uint64_t frame = churn_counts ? page_frame(pagemap_fd, page) : 0, now_frame;
                        uint64_t f0 = thread_minor_faults(), t0 = now_ns(), f;

                        *w = *w;
                        write_ns += now_ns() - t0;
                        f = thread_minor_faults() - f0;
                        faults += f;
                        if (!churn_counts || f == 0)
                                continue;
                        /* Read at once: a merge of the new frame would need a scan between. */
                        now_frame = page_frame(pagemap_fd, page);

                        if (frame == 0 || now_frame == 0)
                                untold++;
                        else if (now_frame != frame)
                                breaks++;
                }
                done = due;
                round++;
                if (churn_counts) {
                        _Atomic uint64_t *slot = &churn_counts[(size_t) c->proc * CHURN_FIGURES];

                        atomic_fetch_add(&slot[CHURN_WRITES], n);
                        atomic_fetch_add(&slot[CHURN_WRITE_NS], write_ns);
                        atomic_fetch_add(&slot[CHURN_FAULTS], faults);
                        atomic_fetch_add(&slot[CHURN_BREAKS], breaks);
                        atomic_fetch_add(&slot[CHURN_UNTOLD], untold);
                }
                next.tv_nsec += 10000000L;
                if (next.tv_nsec >= 1000000000L) {
                        next.tv_sec++;
                        next.tv_nsec -= 1000000000L;
                }
                (void) clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        }
        if (pagemap_fd >= 0)
                close(pagemap_fd);
        return NULL;
}

static void *volatile_writer(void *p) {
        Child *c = p;
        uint64_t buf[PAGE_BYTES / sizeof(uint64_t)];
        struct timespec ts = {
                .tv_sec = opt.volatile_period_ms / 1000,
                .tv_nsec = (long) (opt.volatile_period_ms % 1000) * 1000000L,
        };
        uint64_t x = opt.seed + c->proc;

        while (!atomic_load(&c->stop)) {
                for (uint64_t n = 0; n < c->vol_count / 8 + 1; n++) {
                        uint64_t i = splitmix64(&x) % c->vol_count;
                        uint64_t page = c->vol_first + i;
                        uint64_t g = atomic_load(&c->gen[i]) + 1;

                        fill_page(buf, c->proc, page, g);
                        /* Publish the generation only after the bytes are written;
                         * the verifier takes the page's generation under the
                         * writer's stop, so no torn reads are judged. */
                        memcpy(c->mem + page * PAGE_BYTES, buf, PAGE_BYTES);
                        atomic_store(&c->gen[i], g);
                }
                nanosleep(&ts, NULL);
        }
        return NULL;
}

static uint64_t verify(Child *c) {
        uint64_t buf[PAGE_BYTES / sizeof(uint64_t)];
        uint64_t bad = 0;

        for (uint64_t page = 0; page < opt.pages; page++) {
                uint64_t gen = 0;

                if (kind_of(page) == KIND_VOLATILE)
                        gen = atomic_load(&c->gen[page - c->vol_first]);
                fill_page(buf, c->proc, page, gen);
                if (memcmp(buf, c->mem + page * PAGE_BYTES, PAGE_BYTES) != 0) {
                        if (bad < 5)
                                fprintf(stderr, "ksmd-workload: process %u (pid %d): page %" PRIu64
                                        " at %p does not hold what it last wrote\n",
                                        c->proc, getpid(), page, (void *) (c->mem + page * PAGE_BYTES));
                        bad++;
                }
        }
        return bad;
}

/* SIGUSR2 in a child: the rewritten half of the duplicate pages take their next generation's contents. */
static int rewrite_dups(Child *c) {
        uint64_t buf[PAGE_BYTES / sizeof(uint64_t)];
        char line[64];

        dup_gen++;
        for (uint64_t page = 0; page < opt.pages && dup_rewritten(page); page++) {
                fill_page(buf, c->proc, page, 0);
                memcpy(c->mem + page * PAGE_BYTES, buf, PAGE_BYTES);
        }
        snprintf(line, sizeof(line), "rewritten %d %" PRIu64 "\n", getpid(), dup_gen);
        return write(STDOUT_FILENO, line, strlen(line)) < 0 ? -errno : 0;
}

/* Runs in the child: allocate, fill, report, wait for verify/stop. Exit 0 if intact. */
static int child_main(unsigned proc, int report_fd) {
        size_t bytes = opt.pages * PAGE_BYTES;
        pthread_t writer, touch_thread, churn_thread;
        bool have_writer = false, have_toucher = false, have_churn = false;
        Child c = { .proc = proc };
        uint64_t bad;
        char line[128];
        sigset_t mask;
        int sig;

        c.mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (c.mem == MAP_FAILED) {
                fprintf(stderr, "ksmd-workload: process %u: mmap of %zu bytes failed: %m\n", proc, bytes);
                return 2;
        }
        if (madvise(c.mem, bytes, opt.thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) < 0 && opt.thp)
                fprintf(stderr, "ksmd-workload: MADV_HUGEPAGE failed: %m (continuing)\n");
        if (opt.mergeable && madvise(c.mem, bytes, MADV_MERGEABLE) < 0) {
                fprintf(stderr, "ksmd-workload: MADV_MERGEABLE failed: %m; is CONFIG_KSM on?\n");
                return 2;
        }

        for (uint64_t page = 0; page < opt.pages; page++) {
                if (kind_of(page) == KIND_VOLATILE && c.vol_count == 0)
                        c.vol_first = page;
                if (kind_of(page) == KIND_VOLATILE)
                        c.vol_count++;
                if (kind_of(page) == KIND_UNIQUE && c.uniq_count++ == 0)
                        c.uniq_first = page;
                fill_page((uint64_t *) (c.mem + page * PAGE_BYTES), proc, page, 0);
        }
        if (c.vol_count > 0) {
                c.gen = calloc(c.vol_count, sizeof(*c.gen));
                if (!c.gen)
                        return 2;
                if (pthread_create(&writer, NULL, volatile_writer, &c) != 0)
                        return 2;
                have_writer = true;
        }
        if (proc < opt.touch_procs) {
                if (pthread_create(&touch_thread, NULL, toucher, &c) != 0)
                        return 2;
                have_toucher = true;
        }
        if (opt.churn_per_s > 0) {
                if (pthread_create(&churn_thread, NULL, churn_writer, &c) != 0)
                        return 2;
                have_churn = true;
        }

        snprintf(line, sizeof(line), "pid %d addr %p pages %" PRIu64 "\n", getpid(), (void *) c.mem,
                 opt.pages);
        if (write(report_fd, line, strlen(line)) < 0)
                return 2;
        close(report_fd);

        sigemptyset(&mask);
        sigaddset(&mask, SIGUSR1);
        sigaddset(&mask, SIGUSR2);
        sigaddset(&mask, SIGTERM);
        while (sigwait(&mask, &sig) == 0 && sig == SIGUSR2)
                if (rewrite_dups(&c) < 0)
                        return 2;

        atomic_store(&c.stop, true);
        if (have_writer)
                pthread_join(writer, NULL);
        if (have_toucher)
                pthread_join(touch_thread, NULL);
        if (have_churn)
                pthread_join(churn_thread, NULL);
        if (sig == SIGTERM)
                return 3;
        if (opt.expect_gen) {
                uint64_t want;
                FILE *f = fopen(opt.expect_gen, "re");
                int n = f ? fscanf(f, "%" SCNu64, &want) : 0;

                if (f)
                        fclose(f);
                if (n != 1) {
                        fprintf(stderr, "ksmd-workload: process %u (pid %d): no generation in %s\n", proc,
                                getpid(), opt.expect_gen);
                        return 2;
                }
                if (want != dup_gen)
                        fprintf(stderr, "ksmd-workload: process %u (pid %d): it remembers generation "
                                "%" PRIu64 " of the rewritten pages, %s says %" PRIu64 "\n", proc, getpid(),
                                dup_gen, opt.expect_gen, want);
                dup_gen = want;
        }
        bad = verify(&c);
        if (bad)
                fprintf(stderr, "ksmd-workload: process %u (pid %d): %" PRIu64 " of %" PRIu64
                        " pages differ from what it wrote\n", proc, getpid(), bad, opt.pages);
        return bad ? 1 : 0;
}

static void usage(void) {
        printf("usage: ksmd-workload [options]\n"
               "  --procs N            processes (default 4, at most %d)\n"
               "  --mib M              MiB of private anonymous memory per process (default 64)\n"
               "  --dup F              fraction of pages identical in every process (default 0.5)\n"
               "  --dup-groups K       duplicate pages take only K distinct contents "
               "(default: all distinct)\n"
               "  --zero F             fraction of zero pages (default 0.25)\n"
               "  --volatile F         fraction rewritten continuously (default 0)\n"
               "  --volatile-period-ms writer thread pause between rounds (default 10)\n"
               "  --thp                MADV_HUGEPAGE (default MADV_NOHUGEPAGE)\n"
               "  --mergeable          MADV_MERGEABLE, for the kernel's KSM\n"
               "  --seed S             content seed (default 1)\n"
               "  --hold SECONDS       verify and exit after this long (default: on SIGUSR1)\n"
               "  --stdin              verify and exit when standard input reaches end of file\n"
               "  --touch-procs K      the first K processes run a memory-touching thread (default 0)\n"
               "  --touch-counter FILE each touching process counts its operations in FILE\n"
               "  --expect-gen FILE    on verify, the pages SIGUSR2 rewrites must hold the generation\n"
               "                       FILE holds (a number), not the one the process remembers\n"
               "  --churn-per-s N      every process writes N words a second, each to a random duplicate\n"
               "                       or zero page, with the value it holds (default 0: none)\n"
               "  --churn-hot F        the churn writes go to the first F of those pages (default 1)\n"
               "  --churn-counter FILE each process counts its churn writes, their nanoseconds, its\n"
               "                       churn thread's minor faults and the COW breaks among them\n"
               "                       (writes that moved the page to a new frame) in FILE\n"
               "                       (5 counters per process)\n"
               "  --churn-sum FILE     print the sums of such a FILE, \"writes=N write_ns=N faults=N\n"
               "                       breaks=N breaks_untold=N\", and exit\n",
               MAX_PROCS);
}

/* --churn-sum: the counters of a --churn-counter file, summed over the processes. */
static int print_churn_sum(const char *path) {
        uint64_t v[MAX_PROCS * CHURN_FIGURES] = {}, sum[CHURN_FIGURES] = {};
        FILE *f = fopen(path, "re");
        size_t n;

        if (!f) {
                fprintf(stderr, "ksmd-workload: %s: %m\n", path);
                return 2;
        }
        n = fread(v, sizeof(uint64_t), ELEMENTS(v), f);
        fclose(f);
        for (size_t i = 0; i < n; i++)
                sum[i % CHURN_FIGURES] += v[i];
        printf("writes=%" PRIu64 " write_ns=%" PRIu64 " faults=%" PRIu64 " breaks=%" PRIu64
               " breaks_untold=%" PRIu64 "\n", sum[CHURN_WRITES], sum[CHURN_WRITE_NS], sum[CHURN_FAULTS],
               sum[CHURN_BREAKS], sum[CHURN_UNTOLD]);
        return 0;
}

static int parse_fraction(const char *s, const char *name, double *ret) {
        char *end;
        double v;

        errno = 0;
        v = strtod(s, &end);
        if (errno || *end || v < 0 || v > 1) {
                fprintf(stderr, "ksmd-workload: %s: '%s' is not a fraction between 0 and 1\n", name, s);
                return -EINVAL;
        }
        *ret = v;
        return 0;
}

static int parse_args(int argc, char *argv[]) {
        static const struct option options[] = {
                { "procs", required_argument, NULL, 'p' },
                { "mib", required_argument, NULL, 'm' },
                { "dup", required_argument, NULL, 'd' },
                { "dup-groups", required_argument, NULL, 'g' },
                { "zero", required_argument, NULL, 'z' },
                { "volatile", required_argument, NULL, 'v' },
                { "volatile-period-ms", required_argument, NULL, 'P' },
                { "thp", no_argument, NULL, 't' },
                { "mergeable", no_argument, NULL, 'M' },
                { "seed", required_argument, NULL, 's' },
                { "hold", required_argument, NULL, 'H' },
                { "stdin", no_argument, NULL, 'i' },
                { "touch-procs", required_argument, NULL, 'T' },
                { "touch-counter", required_argument, NULL, 'C' },
                { "expect-gen", required_argument, NULL, 'E' },
                { "churn-per-s", required_argument, NULL, 'R' },
                { "churn-counter", required_argument, NULL, 'K' },
                { "churn-hot", required_argument, NULL, 'W' },
                { "churn-sum", required_argument, NULL, 'S' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        unsigned long v;
        char *end;
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case 'p':
                case 'm':
                case 'g':
                case 'P':
                case 'H':
                case 'T':
                case 's':
                case 'R':
                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno || *end || optarg[0] == '-') {
                                fprintf(stderr, "ksmd-workload: '%s' is not a number\n", optarg);
                                return -EINVAL;
                        }
                        if (c == 'p') {
                                if (v < 1 || v > MAX_PROCS) {
                                        fprintf(stderr, "ksmd-workload: --procs must be 1..%d\n", MAX_PROCS);
                                        return -EINVAL;
                                }
                                opt.procs = (unsigned) v;
                        } else if (c == 'm') {
                                if (v < 1 || v > (1u << 20)) {
                                        fprintf(stderr, "ksmd-workload: --mib must be 1..1048576\n");
                                        return -EINVAL;
                                }
                                opt.pages = (uint64_t) v * 256;
                        } else if (c == 'g')
                                opt.dup_groups = (unsigned) v;
                        else if (c == 'P')
                                opt.volatile_period_ms = (unsigned) v;
                        else if (c == 'H')
                                opt.hold_s = (unsigned) v;
                        else if (c == 'T')
                                opt.touch_procs = (unsigned) MIN_U64(v, MAX_PROCS);
                        else if (c == 'R') {
                                if (v > 10000000) {
                                        fprintf(stderr, "ksmd-workload: --churn-per-s: 0..10000000\n");
                                        return -EINVAL;
                                }
                                opt.churn_per_s = (unsigned) v;
                        }
                        else
                                opt.seed = v;
                        break;
                case 'd':
                        if (parse_fraction(optarg, "--dup", &opt.dup) < 0)
                                return -EINVAL;
                        break;
                case 'z':
                        if (parse_fraction(optarg, "--zero", &opt.zero) < 0)
                                return -EINVAL;
                        break;
                case 'v':
                        if (parse_fraction(optarg, "--volatile", &opt.volatile_) < 0)
                                return -EINVAL;
                        break;
                case 't':
                        opt.thp = true;
                        break;
                case 'M':
                        opt.mergeable = true;
                        break;
                case 'i':
                        opt.stdin_mode = true;
                        break;
                case 'C':
                        opt.touch_counter = optarg;
                        break;
                case 'E':
                        opt.expect_gen = optarg;
                        break;
                case 'K':
                        opt.churn_counter = optarg;
                        break;
                case 'W':
                        if (parse_fraction(optarg, "--churn-hot", &opt.churn_hot) < 0)
                                return -EINVAL;
                        if (opt.churn_hot == 0) {
                                fprintf(stderr, "ksmd-workload: --churn-hot: must be above 0\n");
                                return -EINVAL;
                        }
                        break;
                case 'S':
                        exit(print_churn_sum(optarg));
                case 'h':
                        usage();
                        exit(0);
                default:
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "ksmd-workload: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        if (opt.dup + opt.zero + opt.volatile_ > 1.0 + 1e-9) {
                fprintf(stderr, "ksmd-workload: --dup + --zero + --volatile exceed 1\n");
                return -EINVAL;
        }
        return 0;
}

/* Pages the ideal deduplicator frees: all but one copy of each duplicate content, every zero page. */
static void print_expected(void) {
        uint64_t n_dup = (uint64_t) (opt.dup * opt.pages);
        uint64_t n_zero = (uint64_t) (opt.zero * opt.pages);
        uint64_t distinct = opt.dup_groups ? MIN_U64(opt.dup_groups, n_dup) : n_dup;
        uint64_t saved = n_dup * opt.procs - distinct + n_zero * opt.procs;

        printf("expected dup_pages %" PRIu64 " distinct_dup %" PRIu64 " zero_pages %" PRIu64
               " saved_pages %" PRIu64 " saved_kib %" PRIu64 "\n",
               n_dup * opt.procs, distinct, n_zero * opt.procs, saved, saved * (PAGE_BYTES / 1024));
}

/* n shared 64-bit counters in the file at path, made anew at 0; NULL (said on stderr) if that fails. */
static _Atomic uint64_t *map_counters(const char *path, size_t n) {
        size_t bytes = n * sizeof(uint64_t);
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        void *p;

        if (fd < 0 || ftruncate(fd, (off_t) bytes) < 0) {
                fprintf(stderr, "ksmd-workload: %s: %m\n", path);
                if (fd >= 0)
                        close(fd);
                return NULL;
        }
        p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (p == MAP_FAILED) {
                fprintf(stderr, "ksmd-workload: mmap of %s: %m\n", path);
                return NULL;
        }
        return p;
}

int main(int argc, char *argv[]) {
        pid_t pids[MAX_PROCS], parent = getpid();
        struct sigaction sa = { .sa_handler = on_signal };
        sigset_t mask;
        int failed = 0;

        if (parse_args(argc, argv) < 0)
                return 2;
        if (opt.churn_counter) {
                churn_counts = map_counters(opt.churn_counter, (size_t) MAX_PROCS * CHURN_FIGURES);
                if (!churn_counts)
                        return 2;
        }
        if (opt.touch_counter) {
                touch_counts = map_counters(opt.touch_counter, MAX_PROCS);
                if (!touch_counts)
                        return 2;
        }

        /* Children wait for these with sigwait(), so block them before fork. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGUSR1);
        sigaddset(&mask, SIGUSR2);
        sigaddset(&mask, SIGTERM);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        for (unsigned p = 0; p < opt.procs; p++) {
                int fds[2];
                char line[128] = {};
                ssize_t n;

                if (pipe(fds) < 0)
                        return 2;
                pids[p] = fork();
                if (pids[p] < 0) {
                        fprintf(stderr, "ksmd-workload: fork failed: %m\n");
                        return 2;
                }
                if (pids[p] == 0) {
                        /* SIGTERM is blocked until sigwait(): a parent that dies early still ends us. */
                        prctl(PR_SET_PDEATHSIG, SIGTERM);
                        if (getppid() != parent)
                                _exit(3);
                        close(fds[0]);
                        _exit(child_main(p, fds[1]));
                }
                close(fds[1]);
                n = read(fds[0], line, sizeof(line) - 1);
                close(fds[0]);
                if (n <= 0) {
                        fprintf(stderr, "ksmd-workload: process %u did not start\n", p);
                        for (unsigned q = 0; q <= p; q++)
                                kill(pids[q], SIGTERM);
                        return 2;
                }
                fputs(line, stdout);
        }
        print_expected();
        printf("ready\n");
        fflush(stdout);

        sigaction(SIGUSR1, &sa, NULL);
        sigaction(SIGUSR2, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sigprocmask(SIG_UNBLOCK, &mask, NULL);

        for (time_t end = opt.hold_s ? time(NULL) + opt.hold_s : 0; !got_verify && !got_stop;) {
                struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
                char buf[256];

                if (end && time(NULL) >= end)
                        break;
                if (got_rewrite) {
                        got_rewrite = 0;
                        for (unsigned p = 0; p < opt.procs; p++)
                                kill(pids[p], SIGUSR2);
                }
                if (opt.stdin_mode) {
                        if (poll(&pfd, 1, 200) > 0 && read(STDIN_FILENO, buf, sizeof(buf)) <= 0)
                                break;
                } else
                        (void) poll(NULL, 0, 200);
        }

        for (unsigned p = 0; p < opt.procs; p++)
                kill(pids[p], got_stop ? SIGTERM : SIGUSR1);
        for (unsigned p = 0; p < opt.procs; p++) {
                int status;

                while (waitpid(pids[p], &status, 0) < 0 && errno == EINTR)
                        ;
                if (!WIFEXITED(status) || WEXITSTATUS(status) != (got_stop ? 3 : 0))
                        failed++;
        }
        if (got_stop)
                return 3;
        printf("verified %u processes: %s\n", opt.procs, failed ? "CONTENT LOST" : "every page intact");
        return failed ? 1 : 0;
}
