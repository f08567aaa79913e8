/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <assert.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autoreg.h"
#include "escape.h"
#include "ledger.h"
#include "log.h"
#include "manager.h"
#include "proc-process.h"

struct AutoRegister {
        Manager *manager;
        sd_event_source *timer;
        uid_t over_quota_logged;         /* the owner last said to be over MaxRegionsPerClient= */
};

static bool any_match(char *const *patterns, size_t n, const char *s) {
        /* A star crosses slashes (no FNM_PATHNAME), so "/machine.slice/ *" without the blank matches every
         * guest. */
        for (size_t i = 0; s && i < n; i++)
                if (fnmatch(patterns[i], s, 0) == 0)
                        return true;
        return false;
}

static bool id_in(const uint32_t *ids, size_t n, uint32_t id) {
        for (size_t i = 0; i < n; i++)
                if (ids[i] == id)
                        return true;
        return false;
}

static bool owner_qualifies(const Settings *s, const AutoregProcess *p) {
        if (!p->ids_known)
                return false;
        return (id_in(s->users, s->n_users, p->uid) && id_in(s->users, s->n_users, p->euid)) ||
               (id_in(s->groups, s->n_groups, p->gid) && id_in(s->groups, s->n_groups, p->egid));
}

bool autoreg_match(const Settings *s, const AutoregProcess *p) {
        bool owners = s->n_users > 0 || s->n_groups > 0;

        if (any_match(s->cgroup_patterns, s->n_cgroup_patterns, p->cgroup) && p->cgroup_root_owned &&
            (!owners || owner_qualifies(s, p)))
                return true;
        return owners && any_match(s->executable_patterns, s->n_executable_patterns, p->exe) &&
               owner_qualifies(s, p);
}

static int hex_value(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int autoreg_guest_name(const char *cgroup, char *ret, size_t size) {
        static const char prefix[] = "machine-", suffix[] = ".scope";
        const char *scope = NULL, *p, *end;
        char name[256];
        size_t n = 0, len = 0, skip = 0;

        assert(size > REGION_NAME_MAX);
        /* The first component that is a machine scope. */
        for (p = cgroup; p && *p; p += len) {
                p += strspn(p, "/");
                len = strcspn(p, "/");
                if (len > strlen(prefix) + strlen(suffix) && strncmp(p, prefix, strlen(prefix)) == 0 &&
                    strncmp(p + len - strlen(suffix), suffix, strlen(suffix)) == 0) {
                        scope = p;
                        break;
                }
        }
        if (!scope)
                return -ENOENT;

        /* Undo systemd's unit name escaping: only "\xNN", never a NUL. */
        end = scope + len - strlen(suffix);
        for (p = scope + strlen(prefix); p < end; p++) {
                char c = *p;

                if (c == '\\') {
                        int hi, lo;

                        if (end - p < 4 || p[1] != 'x' || (hi = hex_value(p[2])) < 0 ||
                            (lo = hex_value(p[3])) < 0 || (hi | lo) == 0)
                                return -EINVAL;
                        c = (char) (hi << 4 | lo);
                        p += 3;
                }
                if (n >= sizeof(name) - 1)
                        return -EINVAL;
                name[n++] = c;
        }
        name[n] = 0;

        /* libvirt's machine names are "DRIVER-ID-NAME"; its QEMU driver's "qemu-ID-". */
        if (strncmp(name, "qemu-", 5) == 0) {
                size_t digits = strspn(name + 5, "0123456789");

                if (digits > 0 && name[5 + digits] == '-' && name[6 + digits])
                        skip = 6 + digits;
        }
        n -= skip;
        if (n > REGION_NAME_MAX)
                n = REGION_NAME_MAX;
        memmove(name, name + skip, n);
        name[n] = 0;
        if (!region_name_is_valid(name))
                return -EINVAL;
        memcpy(ret, name, n + 1);
        return 0;
}

/* What the rules need of pid; false if it is gone or a kernel thread (no executable, no memory). */
static bool read_process(pid_t pid, AutoregProcess *p, char *cgroup, size_t cgroup_size, char *exe,
                         size_t exe_size) {
        TargetIds ids;

        *p = (AutoregProcess) {};
        if (proc_read_exe_name(pid, exe, exe_size) < 0)
                return false;
        p->exe = exe;
        if (proc_read_cgroup(pid, cgroup, cgroup_size) >= 0) {
                p->cgroup = cgroup;
                p->cgroup_root_owned = proc_cgroup_is_root_owned(cgroup) > 0;
        }
        if (proc_read_target_ids(pid, &ids) >= 0) {
                p->ids_known = true;
                p->uid = ids.uid;
                p->euid = ids.euid;
                p->gid = ids.gid;
                p->egid = ids.egid;
        }
        return true;
}

static int register_process(AutoRegister *a, pid_t pid, const AutoregProcess *p) {
        Manager *m = a->manager;
        /* Owners named in User=/Group= are the operator's choice; others count against their own limits. */
        uid_t owner = owner_qualifies(&m->settings, p) ? 0 : p->uid;
        char name[REGION_NAME_MAX + 1];
        int r;

        if (ledger_check_region_quota(m->registry, owner, m->settings.max_regions_per_client) < 0) {
                if (a->over_quota_logged != owner)
                        log_warning("Automatic registration of processes of uid %u stops at "
                                    "MaxRegionsPerClient=%" PRIu64 ".",
                                    (unsigned) owner, m->settings.max_regions_per_client);
                a->over_quota_logged = owner;
                return -EDQUOT;
        }
        /* Named after its guest, else after its executable when that makes a valid name (cut to the
         * limit). */
        if (autoreg_guest_name(p->cgroup, name, sizeof(name)) < 0) {
                memcpy(name, p->exe, strnlen(p->exe, REGION_NAME_MAX));
                name[strnlen(p->exe, REGION_NAME_MAX)] = 0;
        }
        r = manager_register(m,
                             &(RegionRequest) { .pid = pid, .whole = true, .owner_uid = owner,
                                                .name = region_name_is_valid(name) ? name : NULL },
                             NULL);
        if (r >= 0) {
                /* The owner of the process chose both: escaped for the log. */
                char exe_text[ESCAPE_SIZE_MAX(255)], cgroup_text[1024];
                char name_text[ESCAPE_SIZE_MAX(REGION_NAME_MAX)] = "unnamed";
                bool named = region_name_is_valid(name);

                if (named)
                        (void) escape_str(name, name_text, sizeof(name_text));
                log_info("Registered %s (pid %d, uid %u%s%s) automatically as %s%s%s ([AutoRegister] in "
                         "ksmd.conf).",
                         escape_str(p->exe, exe_text, sizeof(exe_text)), (int) pid, (unsigned) p->uid,
                         p->cgroup ? ", cgroup " : "",
                         escape_str(p->cgroup, cgroup_text, sizeof(cgroup_text)),
                         named ? "\"" : "", name_text, named ? "\"" : "");
        }
        return r;
}

int autoreg_scan(AutoRegister *a) {
        const Settings *s = &a->manager->settings;
        _cleanup_free_ pid_t *pids = NULL;
        pid_t self = getpid();
        size_t n = 0;
        int r, added = 0;

        if (!autoreg_has_rules(s))
                return 0;
        r = proc_list_pids(&pids, &n);
        if (r < 0)
                return r;

        for (size_t i = 0; i < n; i++) {
                char cgroup[1024], exe[256];
                AutoregProcess p;
                int k;

                if (pids[i] == self || region_registry_find_whole(a->manager->registry, pids[i]) ||
                    !read_process(pids[i], &p, cgroup, sizeof(cgroup), exe, sizeof(exe)) ||
                    !autoreg_match(s, &p))
                        continue;
                k = register_process(a, pids[i], &p);
                if (k == -ENOSPC) {
                        char exe_text[ESCAPE_SIZE_MAX(sizeof(exe) - 1)];

                        log_warning("Automatic registration of %s (pid %d) refused: MaxRegions= reached.",
                                    escape_str(exe, exe_text, sizeof(exe_text)), (int) pids[i]);
                        break;
                }
                /* Else exited meanwhile, already registered as ranges or over its owner's quota: said. */
                if (k >= 0)
                        added++;
        }
        return added;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        AutoRegister *a = userdata;
        int r;

        r = autoreg_scan(a);
        if (r < 0)
                log_warning_errno(r, "Automatic registration could not list processes: %m");
        /* Without rules nothing walks: the timer sleeps until a reload brings some
         * (autoreg_rules_changed()). */
        if (!autoreg_has_rules(&a->manager->settings))
                return sd_event_source_set_enabled(s, SD_EVENT_OFF);
        r = sd_event_source_set_time_relative(s, AUTOREG_INTERVAL_USEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        if (r < 0)
                log_warning_errno(r, "Automatic registration stopped: cannot re-arm its timer: %m");
        return 0;
}

void autoreg_rules_changed(AutoRegister *a) {
        int r;

        if (!a)
                return;
        if (!autoreg_has_rules(&a->manager->settings)) {
                (void) sd_event_source_set_enabled(a->timer, SD_EVENT_OFF);
                return;
        }
        r = sd_event_source_set_time_relative(a->timer, 0);
        if (r >= 0)
                r = sd_event_source_set_enabled(a->timer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_warning_errno(r, "Automatic registration stopped: cannot re-arm its timer: %m");
}

int autoreg_new(Manager *m, AutoRegister **ret) {
        _cleanup_(autoreg_freep) AutoRegister *a = NULL;
        int r;

        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->manager = m;
        a->over_quota_logged = (uid_t) -1;
        /* The first walk runs as soon as the loop starts. */
        r = sd_event_add_time_relative(m->event, &a->timer, CLOCK_MONOTONIC, 0, 0, on_timer, a);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(a);
        return 0;
}

AutoRegister *autoreg_free(AutoRegister *a) {
        if (!a)
                return NULL;
        sd_event_source_disable_unref(a->timer);
        free(a);
        return NULL;
}
