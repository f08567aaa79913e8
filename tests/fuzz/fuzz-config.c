/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target: ksmd.conf parsing (config_parse_stream) on arbitrary bytes.
 * Every error message must be escaped text (escape.h): valid UTF-8 without
 * control characters, since it goes to the log and out over D-Bus.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "escape.h"

static void check_message(const char *m) {
        size_t n = strlen(m);

        if (!utf8_is_valid(m, n))
                abort();
        for (size_t i = 0; i < n; i++)
                if ((uint8_t) m[i] < 0x20 || m[i] == 0x7f ||
                    ((uint8_t) m[i] == 0xc2 && i + 1 < n && (uint8_t) m[i + 1] < 0xa0))
                        abort();
}

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
        for (size_t i = 0; i < errors.n; i++)
                check_message(errors.messages[i]);
        config_errors_clear(&errors);
        return 0;
}
