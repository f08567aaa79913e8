/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ksmctl's views of regions: list (a table, one line per region, as virsh
 * list and systemctl list-units; --verbose every counter; --json as the
 * daemon gives them) and explain (why the pages of one region are, or are
 * not, merged).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "ksmctl.h"
#include "macro.h"
#include "reasons.h"

void regions_free(RegionRow *rows, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(rows[i].name);
                free(rows[i].note);
                free(rows[i].merge_note);
                stats_free(rows[i].stats, rows[i].n_stats);
        }
        free(rows);
}

static int region_row_read(sd_bus_message *reply, RegionRow *row) {
        const char *name, *note, *merge_note;
        int whole, r;

        r = sd_bus_message_read(reply, "uusbttss", &row->id, &row->pid, &name, &whole, &row->start,
                                &row->length, &note, &merge_note);
        if (r < 0)
                return r;
        row->whole = whole;
        row->name = strdup(name);
        row->note = strdup(note);
        row->merge_note = strdup(merge_note);
        if (!row->name || !row->note || !row->merge_note)
                return -ENOMEM;
        return stats_read(reply, &row->stats, &row->n_stats);
}

int regions_load(sd_bus *bus, RegionRow **ret, size_t *ret_n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        RegionRow *rows = NULL;
        size_t n = 0;
        int r;

        r = call(bus, "ListRegions", &reply, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(uusbttssa{st})");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'r', "uusbttssa{st}")) > 0) {
                RegionRow *l = reallocarray(rows, n + 1, sizeof(RegionRow));

                if (!l) {
                        r = -ENOMEM;
                        break;
                }
                rows = l;
                rows[n] = (RegionRow) {};
                r = region_row_read(reply, &rows[n++]);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r < 0) {
                regions_free(rows, n);
                fprintf(stderr, "ksmctl: malformed reply: %s\n", strerror(-r));
                return -EBADMSG;
        }
        *ret = rows;
        *ret_n = n;
        return 0;
}

uint64_t region_row_get(const RegionRow *r, const char *key) {
        for (size_t i = 0; i < r->n_stats; i++)
                if (streq(r->stats[i].key, key))
                        return r->stats[i].value;
        return 0;
}

uint64_t region_row_registered_pages(const RegionRow *r) {
        uint64_t sum = 0;

        for (size_t i = 0; i < r->n_stats; i++)
                if (startswith(r->stats[i].key, "reason_"))
                        sum += r->stats[i].value;
        if (sum > 0)
                return sum;
        return r->whole ? region_row_get(r, "pages") : r->length / PAGE_SIZE_BYTES;
}

static uint64_t region_row_saving(const RegionRow *r) {
        return region_row_get(r, "saving_bytes");
}

/* The reason most of the region's pages that are not a saving are counted under; -1 if none. */
static PageReason region_row_top_reason(const RegionRow *r, uint64_t *ret_pages) {
        PageReason top = _PAGE_REASON_INVALID;
        uint64_t most = 0;

        for (size_t i = 0; i < r->n_stats; i++) {
                const char *key = startswith(r->stats[i].key, "reason_");
                PageReason k = key ? page_reason_from_string(key) : _PAGE_REASON_INVALID;

                if (k < 0 || page_reason_is_merged(k) || r->stats[i].value <= most)
                        continue;
                most = r->stats[i].value;
                top = k;
        }
        *ret_pages = most;
        return top;
}

static int cmp_by_saving(const void *a, const void *b) {
        const RegionRow *x = a, *y = b;
        uint64_t sx = region_row_saving(x), sy = region_row_saving(y);

        if (sx != sy)
                return sx > sy ? -1 : 1;
        return x->id < y->id ? -1 : x->id > y->id;
}

/* --verbose: every counter, one per line, as ksmctl list printed before 0.2. */
static void print_region_verbose(const RegionRow *row) {
        char text[TEXT_MAX];

        printf("region %u%s%s%s: process %u, ", row->id, row->name[0] ? " (" : "",
               escape_text(row->name, text, sizeof(text)), row->name[0] ? ")" : "", row->pid);
        if (row->whole)
                printf("all private anonymous memory\n");
        else
                printf("0x%" PRIx64 "-0x%" PRIx64 "\n", row->start, row->start + row->length);
        if (row->note[0])
                printf("    note: %s\n", escape_text(row->note, text, sizeof(text)));
        if (row->merge_note[0])
                printf("    helper: %s\n", escape_text(row->merge_note, text, sizeof(text)));
        for (size_t i = 0; i < row->n_stats; i++)
                printf("    %-24s %" PRIu64 "\n", escape_text(row->stats[i].key, text, sizeof(text)),
                       row->stats[i].value);
}

static void print_region_json(const RegionRow *row, bool first) {
        printf("%s{\"id\":%u,\"pid\":%u,\"name\":", first ? "" : ",", row->id, row->pid);
        print_json_string(row->name);
        printf(",\"whole_process\":%s,\"start\":%" PRIu64 ",\"length\":%" PRIu64 ",\"note\":",
               row->whole ? "true" : "false", row->start, row->length);
        print_json_string(row->note);
        printf(",\"merge_note\":");
        print_json_string(row->merge_note);
        printf(",\"stats\":");
        print_stats_json(row->stats, row->n_stats);
        putchar('}');
}

/* The cells of one line of the table, escaped for the terminal. */
typedef struct ListLine {
        char id[16], name[TEXT_MAX], pid[16], size[32], saving[32], shared[24], zero[24], why[160];
} ListLine;

static void list_line_make(const RegionRow *row, ListLine *l) {
        uint64_t pages = region_row_registered_pages(row), top_pages;
        PageReason top = region_row_top_reason(row, &top_pages);

        snprintf(l->id, sizeof(l->id), "%u", row->id);
        escape_text(row->name[0] ? row->name : "-", l->name, sizeof(l->name));
        snprintf(l->pid, sizeof(l->pid), "%u", row->pid);
        format_size(pages * PAGE_SIZE_BYTES, l->size, sizeof(l->size));
        format_size(region_row_saving(row), l->saving, sizeof(l->saving));
        snprintf(l->shared, sizeof(l->shared), "%" PRIu64, region_row_get(row, "pages_sharing"));
        snprintf(l->zero, sizeof(l->zero), "%" PRIu64, region_row_get(row, "pages_zero"));
        if (top < 0)
                snprintf(l->why, sizeof(l->why), "%s", pages > 0 ? "-" : "not scanned yet");
        else
                snprintf(l->why, sizeof(l->why), "%s (%" PRIu64 "%%)", page_reason_description(top),
                         pages > 0 ? top_pages * 100 / pages : 0);
}

/* The table: one line per region, by saving, sizes in binary units, columns as wide as their cells. */
static void print_region_table(RegionRow *rows, size_t n) {
        static const char *const heads[] = { "ID", "NAME", "PID", "SIZE", "SAVING", "SHARED", "ZERO",
                                             "TOP REASON NOT MERGED" };
        int w[ELEMENTSOF(heads)];
        ListLine *lines = calloc(n, sizeof(ListLine));
        uint64_t total_size = 0, total_saving = 0;
        char a[32], b[32];

        if (!lines)
                return;
        for (size_t c = 0; c < ELEMENTSOF(heads); c++)
                w[c] = (int) strlen(heads[c]);
        qsort(rows, n, sizeof(RegionRow), cmp_by_saving);
        for (size_t i = 0; i < n; i++) {
                ListLine *l = &lines[i];
                const char *cells[] = { l->id, l->name, l->pid, l->size, l->saving, l->shared, l->zero };

                list_line_make(&rows[i], l);
                total_size += region_row_registered_pages(&rows[i]) * PAGE_SIZE_BYTES;
                total_saving += region_row_saving(&rows[i]);
                for (size_t c = 0; c < ELEMENTSOF(cells); c++)
                        w[c] = MAX(w[c], (int) strlen(cells[c]));
        }
        /* Numbers to the right, words to the left. */
        printf("%*s %-*s %*s %*s %*s %*s %*s %s\n", w[0], heads[0], w[1], heads[1], w[2], heads[2], w[3],
               heads[3], w[4], heads[4], w[5], heads[5], w[6], heads[6], heads[7]);
        for (size_t i = 0; i < n; i++) {
                const ListLine *l = &lines[i];

                printf("%*s %-*s %*s %*s %*s %*s %*s %s\n", w[0], l->id, w[1], l->name, w[2], l->pid, w[3],
                       l->size, w[4], l->saving, w[5], l->shared, w[6], l->zero, l->why);
        }
        printf("\n%zu region%s, %s registered, %s saved.\n", n, n == 1 ? "" : "s",
               format_size(total_size, a, sizeof(a)), format_size(total_saving, b, sizeof(b)));
        free(lines);
}

int cmd_list(sd_bus *bus, const Args *args) {
        RegionRow *rows = NULL;
        size_t n = 0;
        int r;

        r = regions_load(bus, &rows, &n);
        if (r < 0)
                return r;
        if (arg_json) {
                putchar('[');
                for (size_t i = 0; i < n; i++)
                        print_region_json(&rows[i], i == 0);
                printf("]\n");
        } else if (n == 0)
                printf("No regions registered.\n");
        else if (arg_verbose)
                for (size_t i = 0; i < n; i++)
                        print_region_verbose(&rows[i]);
        else
                print_region_table(rows, n);
        regions_free(rows, n);
        return 0;
}

static void print_explain_json(const RegionRow *row) {
        bool first = true;

        printf("{\"id\":%u,\"pid\":%u,\"name\":", row->id, row->pid);
        print_json_string(row->name);
        printf(",\"pages\":%" PRIu64 ",\"reasons\":[", region_row_registered_pages(row));
        for (int k = 0; k < _PAGE_REASON_MAX; k++) {
                char key[64];
                uint64_t v;

                snprintf(key, sizeof(key), "reason_%s", page_reason_to_string((PageReason) k));
                v = region_row_get(row, key);
                if (v == 0)
                        continue;
                printf("%s{\"reason\":\"%s\",\"pages\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"hint\":",
                       first ? "" : ",", page_reason_to_string((PageReason) k), v, v * PAGE_SIZE_BYTES);
                print_json_string(page_reason_hint((PageReason) k));
                putchar('}');
                first = false;
        }
        printf("]}\n");
}

/* explain ID: every reason with pages, most pages first, with what the operator can do. */
static void print_explain(const RegionRow *row) {
        uint64_t pages = region_row_registered_pages(row), count[_PAGE_REASON_MAX];
        int order[_PAGE_REASON_MAX], n = 0, w = (int) strlen("REASON");
        char text[TEXT_MAX], size[32];

        printf("region %u%s%s%s, process %u: %s registered", row->id, row->name[0] ? " (" : "",
               escape_text(row->name, text, sizeof(text)), row->name[0] ? ")" : "", row->pid,
               format_size(pages * PAGE_SIZE_BYTES, size, sizeof(size)));
        printf(", %s saved\n", format_size(region_row_saving(row), size, sizeof(size)));
        for (int k = 0; k < _PAGE_REASON_MAX; k++) {
                char key[64];

                snprintf(key, sizeof(key), "reason_%s", page_reason_to_string((PageReason) k));
                count[k] = region_row_get(row, key);
                if (count[k] == 0)
                        continue;
                /* Insertion by count, most first; ties keep the reasons' order. */
                int i = n++;
                for (; i > 0 && count[order[i - 1]] < count[k]; i--)
                        order[i] = order[i - 1];
                order[i] = k;
                w = MAX(w, (int) strlen(page_reason_description((PageReason) k)));
        }
        if (n == 0) {
                printf("Not scanned yet: the reasons come with its first full scan.\n");
                return;
        }
        printf("\n%-*s %10s %10s %5s  %s\n", w, "REASON", "PAGES", "SIZE", "SHARE", "WHAT YOU CAN DO");
        for (int i = 0; i < n; i++) {
                PageReason k = (PageReason) order[i];

                printf("%-*s %10" PRIu64 " %10s %4" PRIu64 "%%  %s\n", w, page_reason_description(k),
                       count[k],
                       format_size(count[k] * PAGE_SIZE_BYTES, size, sizeof(size)),
                       pages > 0 ? count[k] * 100 / pages : 0, page_reason_hint(k));
        }
        printf("%-*s %10" PRIu64 " %10s %4s\n", w, "total", pages,
               format_size(pages * PAGE_SIZE_BYTES, size, sizeof(size)), "100%");
        if (row->note[0])
                printf("\nnote: %s\n", escape_text(row->note, text, sizeof(text)));
        if (row->merge_note[0])
                printf("%shelper: %s\n", row->note[0] ? "" : "\n",
                       escape_text(row->merge_note, text, sizeof(text)));
}

int cmd_explain(sd_bus *bus, const Args *a) {
        RegionRow *rows = NULL;
        size_t n = 0;
        int r;

        r = regions_load(bus, &rows, &n);
        if (r < 0)
                return r;
        r = -ENOENT;
        for (size_t i = 0; i < n; i++) {
                if (rows[i].id != a->id)
                        continue;
                if (arg_json)
                        print_explain_json(&rows[i]);
                else
                        print_explain(&rows[i]);
                r = 0;
        }
        if (r < 0)
                fprintf(stderr, "ksmctl: no region %u of yours is registered (see ksmctl list)\n", a->id);
        regions_free(rows, n);
        return r;
}
