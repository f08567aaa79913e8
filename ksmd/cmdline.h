/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * ksmd's command line. Every setting of settings_table[] is an option named
 * after its key (PagesToScan= is --pages-to-scan=, written as in ksmd.conf),
 * applied after the files and again after each reload; the other options
 * say where the files are, what to register and how to run.
 */

#include <stdbool.h>
#include <stddef.h>

#include "manager.h"

typedef struct CommandLine {
        ManagerArgs args;                /* points into the fields below */
        bool check_config;
        char **overrides;                /* "Key=Value" */
        size_t n_overrides;
        ManagerRegistration *registrations;
        size_t n_registrations;
} CommandLine;

/*
 * Parses argv into *ret. Returns 1 to run, 0 when there is nothing more to
 * do (--help, --version; printed), or -EINVAL after saying what is wrong.
 * Release with cmdline_done() in every case.
 */
int cmdline_parse(int argc, char *argv[], CommandLine *ret);
void cmdline_done(CommandLine *c);
