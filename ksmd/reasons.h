/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * DOC: why a page is not merged
 *
 * Every page of a region is counted, each full scan, under exactly one
 * reason, decided where the scanner decides what to do with the page
 * (scanner.c) or, for pages it never visits, when it enters the region. The
 * reasons of a region add up to its pages: for a range, every page of the
 * range; for a whole process, every page of its private anonymous mappings.
 * A page the helper refused is counted under the helper's result from the
 * next full scan on (the result comes back after the page was counted).
 *
 * The keys go out over D-Bus as "reason_KEY" statistics, into the metrics as
 * reason="KEY", and ksmctl explain prints each with its hint. A key, once
 * published, keeps its name; new reasons are added at the end.
 */

#include <stdbool.h>
#include <stdint.h>

typedef enum PageReason {
        PAGE_REASON_DUPLICATE,           /* merged into an identical page (estimate mode: would be) */
        PAGE_REASON_SHARED_COPY,         /* the one copy its merged duplicates map (KSM's pages_shared) */
        PAGE_REASON_ZERO,                /* maps the zero page, or is all zero and merged into it */
        PAGE_REASON_UNIQUE,              /* held still, no identical page in its merge domain */
        PAGE_REASON_NEW,                 /* read once: a candidate once it reads the same again */
        PAGE_REASON_VOLATILE,            /* changed since the last read, or skipped while it backs off */
        PAGE_REASON_NOT_PRESENT,         /* never touched, or dropped: no memory behind it */
        PAGE_REASON_SWAPPED,             /* swapped out */
        PAGE_REASON_SHARED_ELSEWHERE,    /* not exclusively mapped: fork COW, the kernel's KSM */
        PAGE_REASON_HUGE_PAGE,           /* in a transparent huge page the helper could not split */
        PAGE_REASON_HELPER_BUSY,         /* the helper found it pinned or locked, after every retry */
        PAGE_REASON_HELPER_NO_MEMORY,    /* the helper had no memory for it, after every retry */
        PAGE_REASON_HELPER_NO_ACCESS,    /* the kernel's ptrace read check refused the process */
        PAGE_REASON_HELPER_BAD_PIDFD,    /* the helper took no pidfd for the process (a ksmd bug) */
        PAGE_REASON_HELPER_REFUSED,      /* refused for another reason (the kernel's KSM owns it, ...) */
        PAGE_REASON_MAPPING,             /* in a mapping that cannot be merged: shared, file-backed,
                                          * locked, hugetlb, PFN mappings */
        PAGE_REASON_NOT_MAPPED,          /* a range's page that no mapping covers */
        PAGE_REASON_OVER_BUDGET,         /* not tracked: MaxPagesPerOwner= or MaxMetadata= is reached */
        PAGE_REASON_RETRY,               /* its merge waits for a retry (helper busy, queue full) */
        PAGE_REASON_COW_GUARD,           /* a duplicate held back while the COW guard holds (CowReserve=) */
        PAGE_REASON_UNREADABLE,          /* could not be read (no access, or it went away while read) */
        _PAGE_REASON_MAX,
        _PAGE_REASON_INVALID = -1,
} PageReason;

/* "duplicate", "not_present", ...: the key in statistics and metrics. */
const char *page_reason_to_string(PageReason r);
/* The reason whose key is s, or _PAGE_REASON_INVALID. */
PageReason page_reason_from_string(const char *s);
/* What the reason means, a few words for a table ("in a huge page not yet split"). */
const char *page_reason_description(PageReason r);
/* One line: what the operator can do about it. */
const char *page_reason_hint(PageReason r);
/* true for the merged reasons: DUPLICATE, SHARED_COPY, ZERO (all but the copy are the saving). */
static inline bool page_reason_is_merged(PageReason r) {
        return r == PAGE_REASON_DUPLICATE || r == PAGE_REASON_SHARED_COPY || r == PAGE_REASON_ZERO;
}

/* The reason a final helper result that refuses a page stands for (enum ksmd_helper_result, _reason). */
PageReason page_reason_of_refusal(uint32_t result, uint32_t reason);
