/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Batched reads of another process's pages with process_vm_readv. Runs of
 * adjacent addresses become one remote iovec, so a batch of contiguous pages
 * costs one system call and one page-table walk per run.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Hard limit on pages per call (the kernel accepts at most IOV_MAX = 1024 iovecs). */
#define MEMORY_READ_MAX_PAGES 1024u

/*
 * Reads the n pages at page-aligned addrs[] (ascending) of pid into buf
 * (n * PAGE_SIZE_BYTES bytes). Returns 0 and *ret_n_read, the number of
 * leading pages read in full: a page that cannot be read (unmapped meanwhile)
 * ends the batch there, and the caller decides what to do with the rest.
 * -ESRCH when the process is gone, -EINVAL for n > MEMORY_READ_MAX_PAGES.
 */
int memory_read_pages(pid_t pid, const uint64_t *addrs, size_t n, void *buf, size_t *ret_n_read);

/* Reads exactly len bytes at addr of pid with process_vm_readv. -EFAULT if not all are readable, -ESRCH. */
int memory_read(pid_t pid, uint64_t addr, void *buf, size_t len);

/*
 * Reads exactly len bytes at addr through an open /proc/PID/mem file (pread).
 * -EFAULT if not all are readable: also once the file's process has exited
 * or executed another program (its old memory is gone).
 */
int memory_read_fd(int fd, uint64_t addr, void *buf, size_t len);
