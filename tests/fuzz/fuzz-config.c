/* SPDX-License-Identifier: GPL-2.0-or-later */
/* libFuzzer target: ksmd.conf parsing (config_parse_stream) on arbitrary bytes. */
#include <stdint.h>
#include <stdio.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(settings_done) Settings s = {};
        ConfigErrors errors = {};
        FILE *f;

        if (size == 0 || settings_init(&s) < 0)
                return 0;
        f = fmemopen((void *) data, size, "r");
        if (!f)
                return 0;
        (void) config_parse_stream(&s, f, "fuzz.conf", &errors);
        fclose(f);
        config_errors_clear(&errors);
        return 0;
}
