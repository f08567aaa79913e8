/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The workload's ranges that the bench's guest programs (vm-compare-sampler,
 * examine-cost) take as PID ADDR PAGES triples at the end of their command
 * line, each with its /proc/PID/pagemap open. Header-only: each program is
 * one file.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#include "proc-reader.h"

#define RANGES_MAX 64

typedef struct WorkloadRange {
        pid_t pid;
        uint64_t addr, pages;
        int fd;                          /* its /proc/PID/pagemap */
} WorkloadRange;

static WorkloadRange ranges[RANGES_MAX];
static size_t n_ranges;

/* Whether n arguments are whole triples, at least one and at most RANGES_MAX. */
static inline bool ranges_args_valid(int n) {
        return n > 0 && n % 3 == 0 && (size_t) n / 3 <= RANGES_MAX;
}

/* Takes the n arguments (see ranges_args_valid()) into ranges[] and opens each pagemap; on a failure
 * says which, as prog, and returns -1. */
static inline int ranges_parse(const char *prog, int n, char **args) {
        for (int i = 0; i < n; i += 3) {
                WorkloadRange *r = &ranges[n_ranges];

                r->pid = (pid_t) atoi(args[i]);
                r->addr = strtoull(args[i + 1], NULL, 0);
                r->pages = strtoull(args[i + 2], NULL, 0);
                if (proc_pagemap_open(r->pid, &r->fd) < 0) {
                        fprintf(stderr, "%s: cannot open the pagemap of %s\n", prog, args[i]);
                        return -1;
                }
                n_ranges++;
        }
        return 0;
}
