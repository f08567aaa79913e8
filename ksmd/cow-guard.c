/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cow-guard.h"
#include "macro.h"
#include "settings.h"

static int64_t clamp_signed(uint64_t v) {
        return v > (uint64_t) INT64_MAX ? INT64_MAX : (int64_t) v;
}

int cow_guard_evaluate(CowStatus *status, uint64_t reserve, const CowScope *scopes, size_t n) {
        bool was = status->holding, hold = false, resume = true;
        int64_t best_margin = INT64_MAX;

        for (size_t i = 0; i < n; i++) {
                const CowScope *c = &scopes[i];
                uint64_t want = reserve == 0 ? 0 : setting_size_or_percent_bytes(reserve, c->total_bytes);
                int64_t headroom = clamp_signed(c->available_bytes) - clamp_signed(c->debt_bytes);
                int64_t margin = headroom - clamp_signed(want);
                uint64_t hysteresis = MAX(want / 100 * COW_GUARD_HYSTERESIS_PERCENT,
                                          COW_GUARD_HYSTERESIS_MIN_BYTES);

                if (i == 0)
                        status->debt_bytes = c->debt_bytes;
                /* The scope that binds: the least headroom above its reserve; the host on a tie. */
                if (i == 0 || margin < best_margin) {
                        best_margin = margin;
                        status->available_bytes = c->available_bytes;
                        status->headroom_bytes = headroom;
                        status->reserve_bytes = want;
                        snprintf(status->cgroup, sizeof(status->cgroup), "%s", c->cgroup ?: "");
                }
                if (reserve == 0)
                        continue;
                if (margin < 0)
                        hold = true;
                if (margin < clamp_signed(hysteresis))
                        resume = false;
        }
        /* Without a reserve, or without figures, it does not hold. */
        status->holding = reserve != 0 && n > 0 && (was ? !resume : hold);
        status->budget_bytes = reserve == 0 || n == 0 ? UINT64_MAX :
                               status->holding || best_margin < 0 ? 0 : (uint64_t) best_margin;
        if (status->holding && !was) {
                status->trips++;
                return 1;
        }
        return was && !status->holding ? -1 : 0;
}

const char *cow_format_bytes(int64_t bytes, char *buf, size_t size) {
        static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
        uint64_t a = bytes < 0 ? (uint64_t) -(bytes + 1) + 1 : (uint64_t) bytes;
        double v = (double) a;
        size_t u = 0;

        if (a < 1024) {
                snprintf(buf, size, "%s%" PRIu64 " B", bytes < 0 ? "-" : "", a);
                return buf;
        }
        for (v /= 1024.0; v >= 1023.95 && u + 1 < ELEMENTSOF(units); u++)
                v /= 1024.0;
        snprintf(buf, size, "%s%.1f %s", bytes < 0 ? "-" : "", v, units[u]);
        return buf;
}
