/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Automatic registration: every AUTOREG_INTERVAL_USEC the daemon walks /proc
 * and registers, whole, each process that a rule of [AutoRegister] in
 * ksmd.conf matches, so an unmodified libvirt/QEMU host is deduplicated.
 * A rule trusts no name alone:
 *
 *   Cgroup=      the process's cgroup v2 path matches the pattern, and that
 *                cgroup and every one above it is root's and writable by no
 *                one else (so no user made it, or had it delegated); with
 *                User= or Group= the process's owner must be one of them too
 *   Executable=  the file name of its executable matches, and its owner is
 *                one of User= or Group= (the configuration refuses
 *                Executable= without them: anyone can name a program
 *                qemu-system-x86_64)
 *
 * The owner qualifies when its real and effective uid are in User=, or its
 * real and effective gid in Group=. A process is registered once and put in
 * the merge domain DomainPolicy= says; its region goes away with it. The
 * region is named after its guest when the process lives in a systemd
 * machine scope (autoreg_guest_name()), else after its executable (cut to
 * REGION_NAME_MAX; unnamed if not printable ASCII). A process of an owner named in User=/Group= is
 * the operator's choice and counts as root's; one that a Cgroup= rule alone
 * brings in counts against its owner's MaxRegionsPerClient= and
 * MaxPagesPerOwner= (ledger.h). The rules are the Manager's settings, read
 * anew on every walk. Patterns match the names as the kernel has them; the
 * log quotes them escaped (escape.h), since the process's owner chose them.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "macro.h"
#include "region.h"
#include "settings.h"

#define AUTOREG_INTERVAL_USEC (UINT64_C(5) * 1000000)

typedef struct AutoRegister AutoRegister;
typedef struct Manager Manager;

/* What the rules look at, as /proc and /sys/fs/cgroup tell it. */
typedef struct AutoregProcess {
        const char *cgroup;              /* cgroup v2 path, NULL if unknown */
        bool cgroup_root_owned;          /* see proc_cgroup_is_root_owned() */
        const char *exe;                 /* file name of the executable, NULL if unknown */
        bool ids_known;
        uid_t uid, euid;
        gid_t gid, egid;
} AutoregProcess;

/* true if a rule of s matches p (see above). */
bool autoreg_match(const Settings *s, const AutoregProcess *p);

/*
 * The name of the guest whose systemd machine scope holds the cgroup v2 path
 * cgroup: the first component "machine-NAME.scope" (systemd-machined's, in
 * machine.slice or a slice below it), NAME with systemd's \xNN escapes undone
 * and libvirt's "qemu-ID-" prefix removed, cut to REGION_NAME_MAX:
 * "/machine.slice/machine-qemu\x2d1\x2dguest1.scope/libvirt/emulator" gives
 * "guest1". Writes it to ret (size > REGION_NAME_MAX) and returns 0;
 * -ENOENT if no component is a machine scope, -EINVAL if its name is
 * malformed (a backslash not followed by x and two hex digits, an escaped
 * NUL) or not a valid region name (region_name_is_valid()). ret is
 * untouched on failure.
 */
int autoreg_guest_name(const char *cgroup, char *ret, size_t size);

static inline bool autoreg_has_rules(const Settings *s) {
        return s->n_cgroup_patterns + s->n_executable_patterns > 0;
}

/*
 * Walks /proc on m's event loop from the first iteration on, with the rules in m's settings, every
 * AUTOREG_INTERVAL_USEC while there are rules; without any its timer sleeps.
 */
int autoreg_new(Manager *m, AutoRegister **ret);
/* After new settings: walks at once if they have rules, else sleeps until they do. */
void autoreg_rules_changed(AutoRegister *a);
AutoRegister *autoreg_free(AutoRegister *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(AutoRegister *, autoreg_free);

/* Walks /proc now; returns the number of processes newly registered, or -errno. */
int autoreg_scan(AutoRegister *a);
