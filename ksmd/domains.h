/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * DOC: merge domains
 *
 * Pages merge, and count as duplicates in every statistic and estimate,
 * only with pages of their own domain; zero pages merge in any domain (the
 * kernel's zero page is the same for everyone). A domain is named: "host",
 * "uid:1000" or "region:17", as DomainPolicy= and the rule for callers
 * other than root make them, or any name root gives with the Domain
 * registration option. Each domain has an id, never reused while the daemon
 * runs, and the id is part of every page's key in the index (index.h,
 * page_key()): a lookup from one domain cannot find a page of another, so a
 * match across domains cannot happen, whatever the contents.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

/* 1..DOMAIN_NAME_MAX characters of [A-Za-z0-9._:@-]. */
#define DOMAIN_NAME_MAX 64u

typedef struct Domain {
        uint32_t id;                     /* > 0, never reused */
        char name[DOMAIN_NAME_MAX + 1];
        size_t n_regions;                /* the domain is forgotten when its last region goes */
} Domain;

typedef struct DomainTable DomainTable;

int domain_table_new(DomainTable **ret);
DomainTable *domain_table_free(DomainTable *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(DomainTable *, domain_table_free);

bool domain_name_is_valid(const char *name);

/*
 * The domain called name for one more region: made (with a new id) if no
 * region is in it now. -EINVAL for a name domain_name_is_valid() refuses,
 * -ENOMEM.
 */
int domain_table_ref(DomainTable *t, const char *name, uint32_t *ret_id);
/* One region fewer in the domain; at none it is forgotten. */
void domain_table_unref(DomainTable *t, uint32_t id);

/* The domain with this id, or NULL. */
const Domain *domain_table_find(const DomainTable *t, uint32_t id);
/* The i-th domain (0..domain_table_count() - 1), in the order they were made. */
const Domain *domain_table_get(const DomainTable *t, size_t i);
size_t domain_table_count(const DomainTable *t);
