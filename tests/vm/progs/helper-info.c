/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * helper-info: asks the ksmd_helper module for INFO over generic netlink and
 * checks the answer. Prints TAP.
 *
 *   helper-info            exit 0: the module answered a well-formed INFO
 *   helper-info --absent   exit 0: the family is not registered (module gone)
 */
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include "helper-client.h"
#include "tap.h"


int main(int argc, char *argv[]) {
        _cleanup_(helper_client_freep) HelperClient *c = NULL;
        HelperInfo info;
        struct utsname u;
        int r;

        r = helper_client_new(&c);
        if (argc > 1 && strcmp(argv[1], "--absent") == 0) {
                tap(r == -ENOENT, "the ksmd_helper family is not registered");
                goto finish;
        }
        tap(r == 0, "the ksmd_helper generic netlink family resolves");
        if (r < 0) {
                printf("# helper_client_new: %s\n", strerror(-r));
                goto finish;
        }

        r = helper_client_info(c, &info);
        tap(r == 0, "INFO request answered");
        if (r < 0) {
                printf("# helper_client_info: %s\n", strerror(-r));
                goto finish;
        }

        printf("# abi %u, module %s, kernel %s, features 0x%llx, max batch %u\n",
               info.abi_version, info.module_version, info.kernel_release,
               (unsigned long long) info.features, info.max_batch);
        for (int i = 1; i <= KSMD_HELPER_STAT_MAX; i++)
                printf("# stat[%d] = %llu\n", i, (unsigned long long) info.stats[i]);

        tap(info.abi_version == KSMD_HELPER_ABI_VERSION, "INFO reports the ABI version of our header");
        tap(strlen(info.module_version) > 0, "INFO reports a module version");
        tap(uname(&u) == 0 && strcmp(info.kernel_release, u.release) == 0,
            "INFO reports the running kernel release");
        tap(info.max_batch > 0, "INFO reports a batch limit");

finish:
        return tap_end();
}
