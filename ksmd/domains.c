/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "domains.h"

struct DomainTable {
        Domain *domains;                 /* ascending by id */
        size_t n;
        uint32_t next_id;
};

int domain_table_new(DomainTable **ret) {
        DomainTable *t = calloc(1, sizeof(*t));

        if (!t)
                return -ENOMEM;
        t->next_id = 1;
        *ret = t;
        return 0;
}

DomainTable *domain_table_free(DomainTable *t) {
        if (!t)
                return NULL;
        free(t->domains);
        free(t);
        return NULL;
}

bool domain_name_is_valid(const char *name) {
        size_t n;

        if (!name)
                return false;
        n = strlen(name);
        return n > 0 && n <= DOMAIN_NAME_MAX &&
               strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@-") == n;
}

static size_t lower_bound(const DomainTable *t, uint32_t id) {
        return LOWER_BOUND(t->n, id, t->domains[_i_].id);
}

const Domain *domain_table_find(const DomainTable *t, uint32_t id) {
        size_t i = lower_bound(t, id);

        return i < t->n && t->domains[i].id == id ? &t->domains[i] : NULL;
}

const Domain *domain_table_get(const DomainTable *t, size_t i) {
        return i < t->n ? &t->domains[i] : NULL;
}

size_t domain_table_count(const DomainTable *t) {
        return t->n;
}

int domain_table_ref(DomainTable *t, const char *name, uint32_t *ret_id) {
        Domain *l;

        if (!domain_name_is_valid(name))
                return -EINVAL;
        for (size_t i = 0; i < t->n; i++)
                if (strcmp(t->domains[i].name, name) == 0) {
                        t->domains[i].n_regions++;
                        *ret_id = t->domains[i].id;
                        return 0;
                }
        if (t->next_id == UINT32_MAX)
                return -ENOSPC;
        l = reallocarray(t->domains, t->n + 1, sizeof(Domain));
        if (!l)
                return -ENOMEM;
        t->domains = l;
        /* Ids only grow, so the array stays sorted by id. */
        t->domains[t->n] = (Domain) { .id = t->next_id++, .n_regions = 1 };
        strcpy(t->domains[t->n].name, name);
        *ret_id = t->domains[t->n++].id;
        return 0;
}

void domain_table_unref(DomainTable *t, uint32_t id) {
        size_t i = lower_bound(t, id);

        if (i >= t->n || t->domains[i].id != id)
                return;
        if (--t->domains[i].n_regions > 0)
                return;
        memmove(&t->domains[i], &t->domains[i + 1], (t->n - i - 1) * sizeof(Domain));
        t->n--;
}
