/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * helper-test.h: what the ksmd_helper test programs that drive worker
 * processes share: reading and writing /proc and /sys files, moving a
 * process into a cgroup, and the MERGE items that pair two workers' pages.
 * Header-only, like helper-genl.h and helper-worker.h.
 */
#ifndef HELPER_TEST_H
#define HELPER_TEST_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helper-genl.h"
#include "helper-worker.h"

/* The number after "KEY<sep>" on a line of the file at path, or -1. */
static inline long file_value(const char *path, const char *key, char sep) {
        size_t k = strlen(key);
        char line[256];
        long v = -1;
        FILE *f = fopen(path, "re");

        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, key, k) == 0 && line[k] == sep) {
                        v = strtol(line + k + 1, NULL, 10);
                        break;
                }
        fclose(f);
        return v;
}

/* "Key: N kB" files: /proc/meminfo, /proc/PID/status, smaps_rollup. */
static inline long proc_kb(const char *path, const char *key) {
        return file_value(path, key, ':');
}

/* "key N" files: memory.events, memory.stat, /proc/vmstat. */
static inline long keyed_value(const char *path, const char *key) {
        return file_value(path, key, ' ');
}

static inline long anon_huge_kb(pid_t pid) {
        char path[64];

        snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
        return proc_kb(path, "AnonHugePages");
}

static inline bool write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");
        bool ok;

        if (!f)
                return false;
        ok = fputs(text, f) >= 0;
        return fclose(f) == 0 && ok;
}

/* The number a file starts with, or -1. */
static inline long read_long(const char *path) {
        FILE *f = fopen(path, "re");
        long v = -1;

        if (f) {
                if (fscanf(f, "%ld", &v) != 1)
                        v = -1;
                fclose(f);
        }
        return v;
}

/* Moves pid into the cgroup /sys/fs/cgroup/cg. */
static inline bool join_cgroup(const char *cg, pid_t pid) {
        char path[128], text[32];

        snprintf(path, sizeof(path), "/sys/fs/cgroup/%s/cgroup.procs", cg);
        snprintf(text, sizeof(text), "%d\n", pid);
        return write_file(path, text);
}

/* MERGE items for pages [a, b) of t, each with the same page of src as its source (calloc'ed). */
static inline KgItem *pair_items(Worker *t, Worker *src, size_t a, size_t b) {
        KgItem *it = calloc(b - a, sizeof(*it));

        for (size_t i = a; i < b; i++) {
                it[i - a].pidfd = t->pidfd;
                it[i - a].addr = (uintptr_t) t->base + i * PG;
                it[i - a].src_pidfd = src->pidfd;
                it[i - a].src_addr = (uintptr_t) src->base + i * PG;
        }
        return it;
}

#endif
