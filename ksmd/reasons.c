/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <string.h>

#include <linux/ksmd_helper.h>

#include "macro.h"
#include "reasons.h"

static const struct {
        const char *key;
        const char *description;
        const char *hint;
} reasons[_PAGE_REASON_MAX] = {
        [PAGE_REASON_DUPLICATE] = { "duplicate", "duplicate, merged",
                                    "this is the saving" },
        [PAGE_REASON_SHARED_COPY] = { "shared_copy", "the copy duplicates share",
                                      "nothing to do: one copy of each merged content stays" },
        [PAGE_REASON_ZERO] = { "zero", "zero page",
                               "this is the saving: all-zero pages share the kernel's zero page" },
        [PAGE_REASON_UNIQUE] = { "unique", "unique content",
                                 "nothing to do: no identical page in its merge domain (DomainPolicy=)" },
        [PAGE_REASON_NEW] = { "new", "read once, not yet stable",
                              "wait: a page is merged once it reads the same in two full scans" },
        [PAGE_REASON_VOLATILE] = { "volatile", "changing (backing off)",
                                   "nothing to do: pages that keep changing are read less often" },
        [PAGE_REASON_NOT_PRESENT] = { "not_present", "not present",
                                      "nothing to do: no memory is behind these pages" },
        [PAGE_REASON_SWAPPED] = { "swapped", "swapped out",
                                  "ksmd does not fault pages in; they are merged once swapped back in" },
        [PAGE_REASON_SHARED_ELSEWHERE] = { "shared_elsewhere", "shared already (fork, kernel KSM)",
                                           "nothing to do, or turn the kernel's KSM off for this process" },
        [PAGE_REASON_HUGE_PAGE] = { "huge_page", "in a huge page not yet split",
                                    "set transparent_hugepage to madvise, or let the guest free memory" },
        [PAGE_REASON_HELPER_BUSY] = { "helper_busy", "pinned or locked (helper: busy)",
                                      "pinned pages (VFIO, RDMA, io_uring buffers) cannot be merged" },
        [PAGE_REASON_HELPER_NO_MEMORY] = { "helper_no_memory", "refused (helper: no memory)",
                                           "the host is short of memory: free some, merging resumes" },
        [PAGE_REASON_HELPER_NO_ACCESS] = { "helper_no_access", "refused (helper: no access)",
                                           "ksmd needs CAP_SYS_PTRACE; check the process's ptrace policy" },
        [PAGE_REASON_HELPER_BAD_PIDFD] = { "helper_bad_pidfd", "refused (helper: bad pidfd)",
                                           "a ksmd bug: report it with the log" },
        [PAGE_REASON_HELPER_REFUSED] = { "helper_refused", "refused by the helper",
                                         "see the region's helper note (ksmctl list --verbose)" },
        [PAGE_REASON_MAPPING] = { "unmergeable_mapping", "in a mapping that cannot be merged",
                                  "register private anonymous memory; see the region's note" },
        [PAGE_REASON_NOT_MAPPED] = { "not_mapped", "not mapped",
                                     "the range holds no mapping there: register what is mapped" },
        [PAGE_REASON_OVER_BUDGET] = { "over_budget", "over the tracked-page budget",
                                      "raise MaxMetadata= or MaxPagesPerOwner=, or register less" },
        [PAGE_REASON_RETRY] = { "retry", "waiting for a retry",
                                "wait: the helper was busy or the merge queue full" },
        [PAGE_REASON_COW_GUARD] = { "cow_guard", "held back by the COW guard",
                                    "the host lacks headroom for the unmerge debt (CowReserve=): "
                                    "free memory" },
        [PAGE_REASON_UNREADABLE] = { "unreadable", "unreadable",
                                     "check ksmd's privileges and the region's note" },
};

const char *page_reason_to_string(PageReason r) {
        return r >= 0 && r < _PAGE_REASON_MAX ? reasons[r].key : NULL;
}

PageReason page_reason_from_string(const char *s) {
        for (int i = 0; i < _PAGE_REASON_MAX; i++)
                if (streq(s, reasons[i].key))
                        return (PageReason) i;
        return _PAGE_REASON_INVALID;
}

const char *page_reason_description(PageReason r) {
        return r >= 0 && r < _PAGE_REASON_MAX ? reasons[r].description : NULL;
}

const char *page_reason_hint(PageReason r) {
        return r >= 0 && r < _PAGE_REASON_MAX ? reasons[r].hint : NULL;
}

PageReason page_reason_of_refusal(uint32_t result, uint32_t reason) {
        switch (result) {
        case KSMD_HELPER_RESULT_BUSY:
                return PAGE_REASON_HELPER_BUSY;
        case KSMD_HELPER_RESULT_NO_MEMORY:
                return PAGE_REASON_HELPER_NO_MEMORY;
        case KSMD_HELPER_RESULT_NO_ACCESS:
                return PAGE_REASON_HELPER_NO_ACCESS;
        case KSMD_HELPER_RESULT_BAD_PIDFD:
                return PAGE_REASON_HELPER_BAD_PIDFD;
        case KSMD_HELPER_RESULT_UNSUPPORTED:
                switch (reason) {
                case KSMD_HELPER_REASON_THP:
                        return PAGE_REASON_HUGE_PAGE;
                case KSMD_HELPER_REASON_NOT_ANON:
                case KSMD_HELPER_REASON_HUGETLB:
                case KSMD_HELPER_REASON_PFNMAP:
                case KSMD_HELPER_REASON_LOCKED_VMA:
                        return PAGE_REASON_MAPPING;
                default:
                        return PAGE_REASON_HELPER_REFUSED;
                }
        default:
                return PAGE_REASON_HELPER_REFUSED;
        }
}
