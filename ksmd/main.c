/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ksmd: the daemon's main. It parses the command line and runs the Manager,
 * which owns everything else (manager.h).
 */
#include <stdlib.h>

#include "cmdline.h"
#include "log.h"
#include "manager.h"

static int run(int argc, char *argv[]) {
        _cleanup_(cmdline_done) CommandLine cmdline = {};
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        r = cmdline_parse(argc, argv, &cmdline);
        if (r <= 0)
                return r;
        if (cmdline.check_config)
                return manager_check_config(&cmdline.args);

        r = manager_new(&cmdline.args, &m);
        if (r < 0)
                return r;
        r = manager_run(m);
        if (r < 0)
                return r;
        if (cmdline.args.exit_after_scans > 0)
                manager_print_stats(m);
        return 0;
}

int main(int argc, char *argv[]) {
        int r;

        log_setup();
        r = run(argc, argv);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
