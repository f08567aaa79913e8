/* SPDX-License-Identifier: GPL-2.0-or-later */
/* libFuzzer target: ksmd.conf parsing (config_parse_stream) on arbitrary bytes. */
#include <stdint.h>
#include <stdio.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(config_freep) Config *c = NULL;
        ConfigErrors errors = {};
        FILE *f;

        if (size == 0 || config_new(&c) < 0)
                return 0;
        f = fmemopen((void *) data, size, "r");
        if (!f)
                return 0;
        (void) config_parse_stream(c, f, "fuzz.conf", &errors);
        fclose(f);
        config_errors_clear(&errors);
        return 0;
}
