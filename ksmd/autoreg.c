/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autoreg.h"
#include "escape.h"
#include "log.h"
#include "manager.h"
#include "proc-process.h"
#include "strv.h"

struct AutoRegister {
        Manager *manager;
        sd_event_source *timer;
        char **cgroup_patterns;
        size_t n_cgroup;
        char **exe_patterns;
        size_t n_exe;
};

bool autoreg_match(char *const *cgroup_patterns, size_t n_cgroup, char *const *exe_patterns, size_t n_exe,
                   const char *cgroup_path, const char *exe_name) {
        /* A star crosses slashes (no FNM_PATHNAME), so "/machine.slice/ *"
         * without the blank matches every guest. */
        for (size_t i = 0; cgroup_path && i < n_cgroup; i++)
                if (fnmatch(cgroup_patterns[i], cgroup_path, 0) == 0)
                        return true;
        for (size_t i = 0; exe_name && i < n_exe; i++)
                if (fnmatch(exe_patterns[i], exe_name, 0) == 0)
                        return true;
        return false;
}

int autoreg_set_patterns(AutoRegister *a, char *const *cgroup_patterns, size_t n_cgroup,
                         char *const *exe_patterns, size_t n_exe) {
        char **cg = NULL, **ex = NULL;
        int r;

        if (n_cgroup > AUTOREG_MAX_PATTERNS || n_exe > AUTOREG_MAX_PATTERNS)
                return -E2BIG;
        r = strv_copy_n(cgroup_patterns, n_cgroup, &cg);
        if (r < 0)
                return r;
        r = strv_copy_n(exe_patterns, n_exe, &ex);
        if (r < 0) {
                strv_free_n(cg, n_cgroup);
                return r;
        }
        strv_free_n(a->cgroup_patterns, a->n_cgroup);
        strv_free_n(a->exe_patterns, a->n_exe);
        a->cgroup_patterns = cg;
        a->n_cgroup = n_cgroup;
        a->exe_patterns = ex;
        a->n_exe = n_exe;
        return 0;
}

int autoreg_scan(AutoRegister *a) {
        _cleanup_free_ pid_t *pids = NULL;
        pid_t self = getpid();
        size_t n = 0;
        int r, added = 0;

        if (a->n_cgroup == 0 && a->n_exe == 0)
                return 0;
        r = proc_list_pids(&pids, &n);
        if (r < 0)
                return r;

        for (size_t i = 0; i < n; i++) {
                char cgroup[1024], exe[256], name[REGION_NAME_MAX + 1];
                char exe_text[ESCAPE_SIZE_MAX(sizeof(exe) - 1)], cgroup_text[1024];
                bool have_cgroup, have_exe;
                int k;

                if (pids[i] == self || region_registry_find_whole(a->manager->registry, pids[i]))
                        continue;
                have_exe = proc_read_exe_name(pids[i], exe, sizeof(exe)) >= 0;
                if (!have_exe)
                        continue; /* kernel threads have no memory of their own; gone processes neither */
                have_cgroup = proc_read_cgroup(pids[i], cgroup, sizeof(cgroup)) >= 0;
                if (!autoreg_match(a->cgroup_patterns, a->n_cgroup, a->exe_patterns, a->n_exe,
                                   have_cgroup ? cgroup : NULL, exe))
                        continue;

                /* The owner of the process chose both: escaped for the log. */
                escape_str(exe, exe_text, sizeof(exe_text));
                escape_str(have_cgroup ? cgroup : "", cgroup_text, sizeof(cgroup_text));

                /* Named after its executable, when that makes a valid name (cut to the limit). */
                memcpy(name, exe, strnlen(exe, REGION_NAME_MAX));
                name[strnlen(exe, REGION_NAME_MAX)] = 0;
                k = manager_register(a->manager,
                                     &(RegionRequest) { .pid = pids[i], .whole = true,
                                                        .name = region_name_is_valid(name) ? name : NULL },
                                     NULL);
                if (k == -ENOSPC) {
                        log_warning("Automatic registration of %s (pid %d) refused: MaxRegions= reached.",
                                    exe_text, (int) pids[i]);
                        break;
                }
                if (k < 0)
                        continue; /* exited meanwhile, or already registered as ranges:
                                   * the manager said why */
                log_info("Registered %s (pid %d%s%s) automatically ([AutoRegister] in ksmd.conf).",
                         exe_text, (int) pids[i], have_cgroup ? ", cgroup " : "", cgroup_text);
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
        r = sd_event_source_set_time_relative(s, AUTOREG_INTERVAL_USEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        if (r < 0)
                log_warning_errno(r, "Automatic registration stopped: cannot re-arm its timer: %m");
        return 0;
}

int autoreg_new(Manager *m, char *const *cgroup_patterns, size_t n_cgroup, char *const *exe_patterns,
                size_t n_exe, AutoRegister **ret) {
        _cleanup_(autoreg_freep) AutoRegister *a = NULL;
        int r;

        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->manager = m;
        r = autoreg_set_patterns(a, cgroup_patterns, n_cgroup, exe_patterns, n_exe);
        if (r < 0)
                return r;
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
        strv_free_n(a->cgroup_patterns, a->n_cgroup);
        strv_free_n(a->exe_patterns, a->n_exe);
        free(a);
        return NULL;
}
