/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "openmetrics.h"

typedef struct MetricSample {
        MetricScope scope;
        char *labels;
        char *key;
        uint64_t value;
} MetricSample;

struct MetricSet {
        MetricSample *samples;
        size_t n_samples;
};

/*
 * A family: the statistic key it shows, or with label set a key prefix whose
 * rest becomes that label's value (pages_ -> kind="scanned"). The name comes
 * after ksmd_, ksmd_domain_ or ksmd_region_ by scope; counters end in _total.
 */
typedef struct MetricFamily {
        unsigned scopes;                 /* 1 << MetricScope */
        const char *name;
        const char *type;                /* "gauge" or "counter" */
        const char *unit;                /* "bytes", "seconds", or NULL */
        const char *key;
        const char *label;               /* NULL: key is exact */
        uint64_t divisor;                /* the value is key's / divisor (usec -> seconds); 0: 1 */
        const char *help;
} MetricFamily;

#define ALL (1u << METRIC_HOST | 1u << METRIC_DOMAIN | 1u << METRIC_REGION)
#define HOST (1u << METRIC_HOST)
#define REGION (1u << METRIC_REGION)
#define DOMAIN (1u << METRIC_DOMAIN)

static const MetricFamily families[] = {
        { ALL, "saving_bytes", "gauge", "bytes", "saving_bytes", NULL, 0,
          "Memory merging saves (estimate mode: would save), as the last full scan found it." },
        { ALL, "reason_pages", "gauge", NULL, "reason_", "reason", 0,
          "Pages by why they are (not) merged, as the last full scan found them (ksmctl explain)." },
        { ALL, "scan_pages", "gauge", NULL, "pages_", "kind", 0,
          "Pages the last full scan found, by what it found (scanned, read, zero, sharing, ...)." },
        { HOST | DOMAIN, "regions", "gauge", NULL, "regions", NULL, 0, "Regions registered." },
        { DOMAIN | REGION, "anonymous_pages", "gauge", NULL, "pages", NULL, 0,
          "Pages in the private anonymous mappings the regions cover, tracked or not." },
        { REGION, "registered_bytes", "gauge", "bytes", "registered_bytes", NULL, 0,
          "Memory registered: a range's length, or a whole process's private anonymous memory." },
        { REGION, "domain_id", "gauge", NULL, "domain_id", NULL, 0, "The merge domain of the region." },
        { HOST, "tracked_pages", "gauge", NULL, "tracked_pages", NULL, 0,
          "Pages tracked in the index (each costs at most 16 bytes of metadata)." },
        { HOST, "metadata_bytes", "gauge", "bytes", "metadata_bytes", NULL, 0,
          "Memory the daemon's page index takes." },
        { HOST, "full_scans_total", "counter", NULL, "full_scans", NULL, 0, "Full scans completed." },
        { HOST, "last_full_scan_seconds", "gauge", "seconds", "last_full_scan_usec", NULL, 1000000,
          "How long the last full scan took." },
        { HOST, "current_scan_pages", "gauge", NULL, "current_scan_pages", NULL, 0,
          "Pages examined so far in the running full scan." },
        { HOST, "batch_pages", "gauge", NULL, "batch_pages", NULL, 0,
          "Pages scanned per batch (PagesToScan=, or adapted)." },
        { HOST, "batch_sleep_seconds", "gauge", "seconds", "batch_sleep_usec", NULL, 1000000,
          "Pause between batches (Sleep=, or adapted)." },
        { HOST, "merge_requests_total", "counter", NULL, "merge_requests", NULL, 0,
          "Requests sent to the helper module." },
        { HOST, "merge_items_total", "counter", NULL, "merge_items", NULL, 0,
          "Pages sent to the helper module to merge." },
        { HOST, "merge_retries_total", "counter", NULL, "merge_retries", NULL, 0,
          "Merges queued again after the helper was busy or short of memory." },
        { HOST, "merge_estimated_total", "counter", NULL, "merge_estimated", NULL, 0,
          "Estimate mode: merges that would have been sent." },
        { HOST | REGION, "merge_results_total", "counter", NULL, "merge_", "result", 0,
          "Pages the helper module answered, by its result." },
        { ALL, "cow_breaks_total", "counter", NULL, "cow_breaks", NULL, 0,
          "Merged pages found written again (a COW break each, the merge undone) since ksmd started." },
        { HOST, "helper_owned_pages", "gauge", NULL, "helper_owned_pages", NULL, 0,
          "Merged pages the helper owns: memory nothing can swap out or migrate (last full scan)." },
        { HOST, "helper_mapped_pages", "gauge", NULL, "helper_mapped_pages", NULL, 0,
          "Page table entries mapping the helper's merged pages (last full scan)." },
        { HOST, "helper_saved_bytes", "gauge", "bytes", "helper_saved_bytes", NULL, 0,
          "What the helper's merges save since it loaded, zero pages included (last full scan)." },
        { HOST, "helper_no_memory_items_total", "counter", NULL, "helper_no_memory_items", NULL, 0,
          "Merges the helper answered no-memory since it loaded, retries included." },
        { HOST, "helper_pool_blocks", "gauge", NULL, "helper_pool_blocks_node", "node", 0,
          "Pageblocks (2 MiB on x86-64) the helper holds for merged pages, by NUMA node (last full scan)." },
        { HOST, "helper_pool_used_pages", "gauge", NULL, "helper_pool_used_node", "node", 0,
          "Merged pages in the helper's pageblocks, by NUMA node (last full scan)." },
        { HOST, "helper_pool_free_pages", "gauge", NULL, "helper_pool_free_node", "node", 0,
          "Free pages in the helper's pageblocks, held and charged to no cgroup (last full scan)." },
        { HOST, "helper_pool_single_pages", "gauge", NULL, "helper_pool_single_node", "node", 0,
          "Merged pages the helper took one by one, outside its pageblocks (last full scan)." },
        { HOST, "helper_pool_blocks_taken_total", "counter", NULL, "helper_pool_blocks_taken_node", "node",
          0, "Pageblocks the helper took since it loaded, by NUMA node." },
        { HOST, "helper_pool_blocks_returned_total", "counter", NULL, "helper_pool_blocks_returned_node",
          "node", 0, "Pageblocks the helper gave back since it loaded, by NUMA node." },
        { HOST, "helper_pool_reused_pages_total", "counter", NULL, "helper_pool_reused_node", "node", 0,
          "Merged pages the helper put in a pageblock slot freed before, by NUMA node." },
        { HOST, "helper_pool_fallbacks_total", "counter", NULL, "helper_pool_fallbacks_node", "node", 0,
          "Merged pages the helper took one by one because no pageblock could be had, by NUMA node." },
        { HOST, "cow_debt_bytes", "gauge", "bytes", "cow_debt_bytes", NULL, 0,
          "Unmerge debt: the memory writing every merged page would take back." },
        { HOST, "cow_available_bytes", "gauge", "bytes", "cow_available_bytes", NULL, 0,
          "What the host has for it: MemAvailable, or less where a memory cgroup limits regions." },
        { HOST, "cow_headroom_bytes", "gauge", "bytes", "cow_headroom_bytes", NULL, 0,
          "Headroom: available memory minus the unmerge debt (negative reads as 0)." },
        { HOST, "cow_reserve_bytes", "gauge", "bytes", "cow_reserve_bytes", NULL, 0,
          "The headroom CowReserve= keeps; 0: the guard is off." },
        { HOST, "cow_guard_holding", "gauge", NULL, "cow_guard_holding", NULL, 0,
          "1 while the COW guard holds new merges back (headroom below CowReserve=)." },
        { HOST, "cow_guard_trips_total", "counter", NULL, "cow_guard_trips", NULL, 0,
          "Times the COW guard started holding merges back." },
};

static const char *const scope_prefix[_METRIC_SCOPE_MAX] = {
        [METRIC_HOST] = "ksmd_",
        [METRIC_DOMAIN] = "ksmd_domain_",
        [METRIC_REGION] = "ksmd_region_",
};

int metric_set_new(MetricSet **ret) {
        MetricSet *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

MetricSet *metric_set_free(MetricSet *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_samples; i++) {
                free(s->samples[i].labels);
                free(s->samples[i].key);
        }
        free(s->samples);
        free(s);
        return NULL;
}

int metric_set_add(MetricSet *s, MetricScope scope, const char *labels, const char *key, uint64_t value) {
        MetricSample *l, *x;

        l = reallocarray(s->samples, s->n_samples + 1, sizeof(MetricSample));
        if (!l)
                return -ENOMEM;
        s->samples = l;
        x = &s->samples[s->n_samples];
        *x = (MetricSample) { .scope = scope, .labels = strdup(labels ?: ""), .key = strdup(key),
                              .value = value };
        if (!x->labels || !x->key) {
                free(x->labels);
                free(x->key);
                return -ENOMEM;
        }
        s->n_samples++;
        return 0;
}

int metric_labels_append(char **labels, const char *name, const char *value) {
        _cleanup_free_ char *escaped = escape_text_dup(value);
        size_t n = *labels ? strlen(*labels) : 0, k = 0;
        char *l;

        if (!escaped)
                return -ENOMEM;
        /* name="...", each byte at most doubled, a comma, the NUL. */
        l = realloc(*labels, n + strlen(name) + 2 * strlen(escaped) + 5);
        if (!l)
                return -ENOMEM;
        *labels = l;
        l += n;
        if (n > 0)
                l[k++] = ',';
        k += (size_t) sprintf(l + k, "%s=\"", name);
        for (const char *p = escaped; *p; p++) {
                if (*p == '\\' || *p == '"')
                        l[k++] = '\\';
                if (*p == '\n') {
                        l[k++] = '\\';
                        l[k++] = 'n';
                        continue;
                }
                l[k++] = *p;
        }
        l[k++] = '"';
        l[k] = 0;
        return 0;
}

/* Whether key belongs to family f: exactly, or by its prefix unless another family of the scope has it. */
static const char *family_label_value(const MetricFamily *f, MetricScope scope, const char *key) {
        size_t n;

        if (!f->label)
                return streq(key, f->key) ? "" : NULL;
        n = strlen(f->key);
        if (strncmp(key, f->key, n) != 0 || key[n] == 0)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(families); i++)
                if ((families[i].scopes & (1u << scope)) && !families[i].label &&
                    streq(families[i].key, key))
                        return NULL;
        return key + n;
}

static void write_value(FILE *f, uint64_t value, uint64_t divisor) {
        if (divisor > 1)
                fprintf(f, " %" PRIu64 ".%06" PRIu64 "\n", value / divisor,
                        (value % divisor) * 1000000 / divisor);
        else
                fprintf(f, " %" PRIu64 "\n", value);
}

static const char *const metric_format_table[_METRIC_FORMAT_MAX] = {
        [METRIC_FORMAT_OPENMETRICS] = "openmetrics",
        [METRIC_FORMAT_PROMETHEUS] = "prometheus",
};

const char *metric_format_to_string(MetricFormat f) {
        return f >= 0 && f < _METRIC_FORMAT_MAX ? metric_format_table[f] : NULL;
}

MetricFormat metric_format_from_string(const char *s) {
        for (int i = 0; i < _METRIC_FORMAT_MAX; i++)
                if (streq(s, metric_format_table[i]))
                        return (MetricFormat) i;
        return _METRIC_FORMAT_INVALID;
}

/*
 * The name of fam's metadata lines: its samples' name, but in OpenMetrics a counter family has no
 * "_total" and the info family no "_info" (the DOC).
 */
static void family_meta_name(const MetricFamily *fam, MetricScope scope, MetricFormat format, char *buf,
                             size_t size) {
        const char *suffix = streq(fam->type, "counter") ? "_total" :
                             streq(fam->type, "info") ? "_info" : NULL;
        size_t n;

        snprintf(buf, size, "%s%s", scope_prefix[scope], fam->name);
        n = strlen(buf);
        if (format == METRIC_FORMAT_OPENMETRICS && suffix && endswith(buf, suffix))
                buf[n - strlen(suffix)] = 0;
}

static void write_family(const MetricSet *s, const MetricFamily *fam, MetricScope scope, MetricFormat format,
                         FILE *f) {
        bool header = false;
        char meta[128];

        for (size_t i = 0; i < s->n_samples; i++) {
                const MetricSample *x = &s->samples[i];
                const char *lv;
                _cleanup_free_ char *labels = NULL;

                if (x->scope != scope || !(lv = family_label_value(fam, scope, x->key)))
                        continue;
                if (!header) {
                        family_meta_name(fam, scope, format, meta, sizeof(meta));
                        fprintf(f, "# HELP %s %s\n", meta, fam->help);
                        /* The text format 0.0.4 has no info type: there it is a gauge of value 1. */
                        fprintf(f, "# TYPE %s %s\n", meta,
                                format == METRIC_FORMAT_PROMETHEUS && streq(fam->type, "info") ? "gauge" :
                                                                                               fam->type);
                        if (fam->unit && format == METRIC_FORMAT_OPENMETRICS)
                                fprintf(f, "# UNIT %s %s\n", meta, fam->unit);
                        header = true;
                }
                if (x->labels[0])
                        labels = strdup(x->labels);
                if (fam->label && metric_labels_append(&labels, fam->label, lv) < 0)
                        continue;
                fprintf(f, "%s%s", scope_prefix[scope], fam->name);
                if (labels && labels[0])
                        fprintf(f, "{%s}", labels);
                write_value(f, x->value, fam->divisor);
        }
}

const char *metric_family_sample_name(size_t i, char *buf, size_t size) {
        static const char *const info[] = { "ksmd_info", "ksmd_paused" };

        if (i < ELEMENTSOF(info)) {
                snprintf(buf, size, "%s", info[i]);
                return buf;
        }
        i -= ELEMENTSOF(info);
        for (size_t f = 0; f < ELEMENTSOF(families); f++)
                for (int scope = 0; scope < _METRIC_SCOPE_MAX; scope++) {
                        if (!(families[f].scopes & (1u << scope)))
                                continue;
                        if (i-- == 0) {
                                snprintf(buf, size, "%s%s", scope_prefix[scope], families[f].name);
                                return buf;
                        }
                }
        return NULL;
}

int metric_set_add_info(MetricSet *s, const char *version, const char *mode, int paused) {
        _cleanup_free_ char *labels = NULL;
        int r;

        r = metric_labels_append(&labels, "version", version);
        if (r >= 0)
                r = metric_labels_append(&labels, "mode", mode);
        if (r >= 0)
                r = metric_set_add(s, METRIC_HOST, labels, "info", 1);
        if (r >= 0)
                r = metric_set_add(s, METRIC_HOST, "", "paused", paused ? 1 : 0);
        return r;
}

int metric_set_write(const MetricSet *s, MetricFormat format, FILE *f) {
        static const MetricFamily info[] = {
                { HOST, "info", "info", NULL, "info", NULL, 0,
                  "The daemon's version and mode (merge or estimate)." },
                { HOST, "paused", "gauge", NULL, "paused", NULL, 0, "1 while scanning is paused." },
        };

        for (size_t i = 0; i < ELEMENTSOF(info); i++)
                write_family(s, &info[i], METRIC_HOST, format, f);
        for (int scope = 0; scope < _METRIC_SCOPE_MAX; scope++)
                for (size_t i = 0; i < ELEMENTSOF(families); i++)
                        if (families[i].scopes & (1u << scope))
                                write_family(s, &families[i], (MetricScope) scope, format, f);
        if (format == METRIC_FORMAT_OPENMETRICS)
                fputs("# EOF\n", f);
        return fflush(f) == 0 && !ferror(f) ? 0 : -EIO;
}
