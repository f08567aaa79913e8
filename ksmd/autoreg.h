/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Automatic registration: every AUTOREG_INTERVAL_USEC the daemon walks /proc
 * and registers, whole, each process whose cgroup v2 path matches a Cgroup=
 * pattern or whose executable's file name matches an Executable= pattern of
 * [AutoRegister] in ksmd.conf, so an unmodified libvirt/QEMU host is
 * deduplicated. A process is registered once, its region named after the
 * executable (cut to REGION_NAME_MAX; unnamed if not printable ASCII); its
 * region goes away with it. Patterns match the names as the kernel has them;
 * the log quotes them escaped (escape.h), since the process's owner chose them.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "macro.h"
#include "region.h"

#define AUTOREG_INTERVAL_USEC (UINT64_C(5) * 1000000)
#define AUTOREG_MAX_PATTERNS 256

typedef struct AutoRegister AutoRegister;
typedef struct Manager Manager;

/* true if cgroup_path (may be NULL) or exe_name (may be NULL) matches any pattern (fnmatch). */
bool autoreg_match(char *const *cgroup_patterns, size_t n_cgroup, char *const *exe_patterns, size_t n_exe,
                   const char *cgroup_path, const char *exe_name);

/* Copies the patterns; with none it does nothing until autoreg_set_patterns() gives some. */
int autoreg_new(Manager *m, char *const *cgroup_patterns, size_t n_cgroup, char *const *exe_patterns,
                size_t n_exe, AutoRegister **ret);
AutoRegister *autoreg_free(AutoRegister *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(AutoRegister *, autoreg_free);

/* Replaces the patterns (on reload). */
int autoreg_set_patterns(AutoRegister *a, char *const *cgroup_patterns, size_t n_cgroup,
                         char *const *exe_patterns, size_t n_exe);

/* Walks /proc now; returns the number of processes newly registered, or -errno. */
int autoreg_scan(AutoRegister *a);
