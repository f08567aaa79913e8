/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ksmctl: the command-line client of ksmd's D-Bus API (org.ksmd.Manager1),
 * spoken peer-to-peer over the daemon's private socket.
 *
 * Exit codes: 0 success; 1 the request failed; 2 bad usage; 3 the daemon is
 * not running (no socket, or nobody listening); 4 access denied.
 *
 * Strings from the daemon are escaped text already (escape.h); before a
 * terminal shows one, escape_text() makes sure of it, so that an escape
 * sequence from a daemon of another version, or from a bug, is shown, not
 * obeyed. JSON output escapes them as JSON does.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "build-config.h"
#include "bus-api.h"
#include "escape.h"
#include "ksmctl.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "openmetrics.h"
#include "parse-util.h"
#include "pidfd-util.h"
#include "proc-process.h"
#include "scanner.h"

/* Everything inside returns -errno; main() alone turns it into one of these. */
enum {
        EXIT_FAILED = 1,
        EXIT_USAGE = 2,
        EXIT_NOT_RUNNING = 3,
        EXIT_DENIED = 4,
};

#define KSMCTL_CONNECT_TIMEOUT_USEC (30 * USEC_PER_SEC)

static const char *arg_socket = "/run/ksmd/ksmd.sock";
bool arg_json;
bool arg_verbose;
const char *arg_output;
int arg_format = -1;
static uint64_t arg_scans = 3;
static const char *arg_name;
static const char *arg_domain;

static void help(void) {
        printf("ksmctl [OPTIONS] COMMAND ...\n\n"
               "Control the ksmd memory deduplication daemon.\n\n"
               "Commands:\n"
               "  status                        Mode, helper version, rate and savings\n"
               "  stats                         Global statistics, under headings\n"
               "  list                          Registered regions, one line each, by saving\n"
               "  explain ID                    Why the pages of a region are, or are not, merged\n"
               "  register [--name=NAME] [--domain=DOMAIN] PID [START LENGTH]\n"
               "                                Register a process, or a range of it "
               "(bytes; 0x... allowed),\n"
               "                                labelled NAME (1..64 printable ASCII characters) in list\n"
               "  domains                       Merge domains and what each saves\n"
               "  unregister ID                 Unregister a region\n"
               "  unmerge ID                    Make every merged page of a region private again "
               "and unregister it\n"
               "  pause | resume                Stop or restart scanning\n"
               "  reload                        Re-read /etc/ksmd/ksmd.conf\n"
               "  estimate PID...               Scan these processes here, without the daemon, and print\n"
               "                                what merging would save (merges nothing; needs root)\n\n"
               "Options:\n"
               "  --socket=PATH   The daemon's socket (default %s)\n"
               "  --json          Machine-readable output for status, stats, list, explain and estimate\n"
               "  -v --verbose    list: every statistic of every region, one per line\n"
               "  --format=openmetrics|prometheus\n"
               "                  stats: every statistic of the host, domains and regions as metrics\n"
               "                  (OpenMetrics 1.0, or the text format node_exporter reads)\n"
               "  --output=FILE   stats --format=: replace FILE atomically instead of stdout\n"
               "  --scans=N       Full scans for estimate (default 3; the first counts the duplicates it\n"
               "                  reads, the later ones leave out pages that change)\n"
               "  --name=NAME     A label for the region register makes, such as a VM's name\n"
               "  --domain=NAME   The merge domain of the region register makes (root only)\n"
               "  -h --help       Show this help\n"
               "     --version    Show the version\n\n"
               "Exit status: 0 success, 1 request failed, 2 bad usage, "
               "3 daemon not running, 4 access denied.\n",
               arg_socket);
}

/* The message of a failed call, as a terminal may show it. */
static const char *error_text(const sd_bus_error *e, int r, char *buf, size_t size) {
        if (!sd_bus_error_is_set(e))
                return strerror(-r);
        return escape_text(e->message ?: e->name, buf, size);
}

/* -EACCES for the daemon's AccessDenied, else -errno of the call. */
static int errno_of_bus_error(const sd_bus_error *e, int r) {
        if (sd_bus_error_has_name(e, BUS_ERROR_ACCESS_DENIED))
                return -EACCES;
        return r < 0 ? r : -EIO;
}

/* Runs bus until authentication is done: 0, -ENOTCONN if the daemon closed the connection, or -errno. */
static int wait_ready(sd_bus *bus) {
        int r;

        while ((r = sd_bus_is_ready(bus)) == 0) {
                if (sd_bus_is_open(bus) <= 0)
                        return -ENOTCONN;
                r = sd_bus_process(bus, NULL);
                if (r == 0)
                        r = sd_bus_wait(bus, KSMCTL_CONNECT_TIMEOUT_USEC);
                if (r == 0)
                        return -ETIMEDOUT;
                if (r < 0)
                        return r;
        }
        return r < 0 ? r : 0;
}

static int connect_daemon(sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *address = NULL;
        int r;

        if (access(arg_socket, F_OK) < 0) {
                fprintf(stderr, "ksmctl: %s does not exist: is ksmd running? (systemctl status ksmd)\n",
                        arg_socket);
                return -ENOENT;
        }
        if (asprintf(&address, "unix:path=%s", arg_socket) < 0)
                return -ENOMEM;

        r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, address);
        if (r >= 0)
                r = sd_bus_negotiate_fds(bus, true);
        if (r >= 0)
                r = sd_bus_start(bus);
        /* Authentication first: a daemon that does not admit this user closes the connection then. */
        if (r >= 0)
                r = wait_ready(bus);
        if (r == -ECONNREFUSED || r == -ENOENT) {
                fprintf(stderr, "ksmctl: nobody listens on %s: is ksmd running? (systemctl status ksmd)\n",
                        arg_socket);
                return -ECONNREFUSED;
        }
        if (r == -EACCES) {
                fprintf(stderr, "ksmctl: may not connect to %s: only root and the members of its group "
                        "(SocketGroup= in ksmd.conf) may\n", arg_socket);
                return r;
        }
        if (IN_SET(r, -ENOTCONN, -ECONNRESET, -EPIPE)) {
                fprintf(stderr,
                        "ksmctl: ksmd closed the connection: uid %u may not call it (root and members of "
                        "AllowGroups= or OperatorGroups= in ksmd.conf may),\n"
                        "        or holds as many connections as it may (MaxConnectionsPerUser=, "
                        "MaxConnections=)\n",
                        (unsigned) geteuid());
                return -EACCES;
        }
        if (r < 0) {
                fprintf(stderr, "ksmctl: cannot connect to %s: %s\n", arg_socket, strerror(-r));
                return r;
        }
        *ret = TAKE_PTR(bus);
        return 0;
}

/* Sends m (-errno r if building it failed); on failure prints the daemon's error, as call() does. */
static int call_message(sd_bus *bus, sd_bus_message *m, int r, sd_bus_message **reply) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char text[TEXT_MAX];

        if (r >= 0)
                r = sd_bus_call(bus, m, 0, &error, reply);
        if (r >= 0)
                return 0;
        fprintf(stderr, "ksmctl: %s failed: %s\n", sd_bus_message_get_member(m),
                error_text(&error, r, text, sizeof(text)));
        r = errno_of_bus_error(&error, r);
        sd_bus_error_free(&error);
        return r;
}

int call(sd_bus *bus, const char *method, sd_bus_message **reply, const char *types, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, NULL, BUS_OBJECT_PATH, BUS_INTERFACE, method);
        if (r < 0) {
                fprintf(stderr, "ksmctl: %s failed: %s\n", method, strerror(-r));
                return r;
        }
        if (types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
        }
        return call_message(bus, m, r, reply);
}

int get_property(sd_bus *bus, const char *name, char type, void *ret) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char text[TEXT_MAX];
        int r;

        if (type == 's')
                r = sd_bus_get_property_string(bus, NULL, BUS_OBJECT_PATH, BUS_INTERFACE, name, &error, ret);
        else
                r = sd_bus_get_property_trivial(bus, NULL, BUS_OBJECT_PATH, BUS_INTERFACE, name, &error,
                                                type, ret);
        if (r < 0) {
                fprintf(stderr, "ksmctl: reading %s failed: %s\n", name,
                        error_text(&error, r, text, sizeof(text)));
                r = errno_of_bus_error(&error, r);
        }
        sd_bus_error_free(&error);
        return r;
}

/*
 * A JSON string. Control characters (C0, DEL and C1) are \u escapes, valid JSON that a terminal does
 * not obey either. A byte that is not part of valid UTF-8 would make the output invalid JSON: none
 * comes over D-Bus (sd-bus refuses it) and estimate escapes the names it reads, but should one come,
 * it is written as the text \xNN, as escape.h writes it.
 */
void print_json_string(const char *s) {
        size_t n = strlen(s);

        putchar('"');
        for (size_t i = 0, k; i < n; i += k) {
                unsigned char ch = (unsigned char) s[i];

                k = utf8_char_size(s + i, n - i);
                if (k == 0) {
                        printf("\\\\x%02x", ch);
                        k = 1;
                } else if (ch == '"' || ch == '\\')
                        printf("\\%c", ch);
                else if (ch < 0x20 || ch == 0x7f)
                        printf("\\u%04x", ch);
                else if (ch == 0xc2 && (unsigned char) s[i + 1] < 0xa0)
                        printf("\\u%04x", (unsigned char) s[i + 1]); /* U+0080..U+009F */
                else
                        fwrite(s + i, 1, k, stdout);
        }
        putchar('"');
}

const char *format_size(uint64_t bytes, char *buf, size_t size) {
        static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
        double v = (double) bytes;
        size_t u = 0;

        if (bytes < 1024) {
                snprintf(buf, size, "%" PRIu64 " B", bytes);
                return buf;
        }
        for (v /= 1024.0; v >= 1023.95 && u + 1 < ELEMENTSOF(units); u++)
                v /= 1024.0;
        snprintf(buf, size, "%.1f %s", v, units[u]);
        return buf;
}

/* The values of keys[] in GetStatistics' a{st}; a key the daemon did not give stays UINT64_MAX. */
static int get_statistics(sd_bus *bus, const char *const *keys, uint64_t *values, size_t n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *k;
        uint64_t v;
        int r;

        r = call(bus, "GetStatistics", &reply, NULL);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                values[i] = UINT64_MAX;
        r = sd_bus_message_enter_container(reply, 'a', "{st}");
        while (r >= 0 && (r = sd_bus_message_read(reply, "{st}", &k, &v)) > 0)
                for (size_t i = 0; i < n; i++)
                        if (strcmp(k, keys[i]) == 0)
                                values[i] = v;
        return r < 0 ? -EBADMSG : 0;
}

/* The Status line, or NULL where the daemon keeps it from a caller other than root. */
static char *get_status_line(sd_bus *bus) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *status = NULL;

        (void) sd_bus_get_property_string(bus, NULL, BUS_OBJECT_PATH, BUS_INTERFACE, "Status", &error,
                                          &status);
        sd_bus_error_free(&error);
        return status;
}

/* One answer of HostKernel: what the daemon found the kernel does, asked at start. */
typedef struct HostAnswerText {
        const char *name, *answer, *seen, *instead; /* borrowed from the reply */
} HostAnswerText;

#define HOST_ANSWERS_MAX 32

/* HostKernel, a(ssss), into at most HOST_ANSWERS_MAX answers borrowed from *ret_reply. */
static int get_host_kernel(sd_bus *bus, sd_bus_message **ret_reply, HostAnswerText *ret, size_t *ret_n) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char text[TEXT_MAX];
        size_t n = 0;
        int r;

        r = sd_bus_get_property(bus, NULL, BUS_OBJECT_PATH, BUS_INTERFACE, "HostKernel", &error, ret_reply,
                                "a(ssss)");
        if (r < 0) {
                fprintf(stderr, "ksmctl: reading HostKernel failed: %s\n",
                        error_text(&error, r, text, sizeof(text)));
                r = errno_of_bus_error(&error, r);
                sd_bus_error_free(&error);
                return r;
        }
        r = sd_bus_message_enter_container(*ret_reply, 'a', "(ssss)");
        while (r >= 0 && n < HOST_ANSWERS_MAX &&
               (r = sd_bus_message_read(*ret_reply, "(ssss)", &ret[n].name, &ret[n].answer, &ret[n].seen,
                                        &ret[n].instead)) > 0)
                n++;
        *ret_n = n;
        return r < 0 ? -EBADMSG : 0;
}

/*
 * The kernel's release, the features it has on one line, then one line for
 * each it lacks or the daemon could not ask about, with what ksmd does
 * instead.
 */
static void print_host_kernel(const char *release, const HostAnswerText *h, size_t n) {
        char text[TEXT_MAX], seen[TEXT_MAX], instead[TEXT_MAX];
        bool any = false;

        printf("     kernel: %s\n        has:", escape_text(release, text, sizeof(text)));
        for (size_t i = 0; i < n; i++)
                if (streq(h[i].answer, "yes")) {
                        printf("%s %s", any ? "," : "", escape_text(h[i].name, text, sizeof(text)));
                        any = true;
                }
        printf("%s\n", any ? "" : " none of what ksmd probes");
        for (size_t i = 0; i < n; i++)
                if (!streq(h[i].answer, "yes"))
                        printf("%11s %s: %s; instead, %s\n",
                               streq(h[i].answer, "no") ? "missing" : "untested",
                               escape_text(h[i].name, text, sizeof(text)),
                               escape_text(h[i].seen, seen, sizeof(seen)),
                               escape_text(h[i].instead, instead, sizeof(instead)));
}

static void print_host_kernel_json(const char *release, const HostAnswerText *h, size_t n) {
        printf(",\"kernel_release\":");
        print_json_string(release);
        printf(",\"host_kernel\":[");
        for (size_t i = 0; i < n; i++) {
                printf("%s{\"name\":", i > 0 ? "," : "");
                print_json_string(h[i].name);
                printf(",\"answer\":");
                print_json_string(h[i].answer);
                printf(",\"seen\":");
                print_json_string(h[i].seen);
                printf(",\"instead\":");
                print_json_string(h[i].instead);
                printf("}");
        }
        printf("]");
}

/*
 * Settings and state from properties; figures from GetStatistics, which
 * gives a caller other than root those of its own regions only.
 */
static int cmd_status(sd_bus *bus, const Args *a) {
        static const char *const keys[] = { "batch_pages", "batch_sleep_usec", "full_scans", "saving_bytes",
                                            "metadata_bytes", "regions", "cow_debt_bytes",
                                            "cow_available_bytes", "cow_headroom_bytes", "cow_reserve_bytes",
                                            "cow_guard_holding" };
        enum { BATCH_PAGES, BATCH_SLEEP, SCANS, SAVING, METADATA, REGIONS, COW_DEBT, COW_AVAILABLE,
               COW_HEADROOM, COW_RESERVE, COW_HOLDING };
        _cleanup_free_ char *version = NULL, *mode = NULL, *helper = NULL, *status = NULL, *release = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *host_reply = NULL;
        HostAnswerText host[HOST_ANSWERS_MAX];
        size_t n_host = 0;
        uint64_t pages_to_scan = 0, sleep_usec = 0, v[ELEMENTSOF(keys)];
        char sb[32], mb[32], version_text[TEXT_MAX], mode_text[TEXT_MAX], helper_text[TEXT_MAX],
                status_text[TEXT_MAX];
        int paused = 0, r;

        if ((r = get_property(bus, "Version", 's', &version)) < 0 ||
            (r = get_property(bus, "Mode", 's', &mode)) < 0 ||
            (r = get_property(bus, "HelperVersion", 's', &helper)) < 0 ||
            (r = get_property(bus, "Paused", 'b', &paused)) < 0 ||
            (r = get_property(bus, "PagesToScan", 't', &pages_to_scan)) < 0 ||
            (r = get_property(bus, "SleepUSec", 't', &sleep_usec)) < 0 ||
            (r = get_property(bus, "KernelRelease", 's', &release)) < 0 ||
            (r = get_host_kernel(bus, &host_reply, host, &n_host)) < 0 ||
            (r = get_statistics(bus, keys, v, ELEMENTSOF(keys))) < 0)
                return r;
        status = get_status_line(bus);

        if (arg_json) {
                printf("{\"version\":");
                print_json_string(version);
                printf(",\"mode\":");
                print_json_string(mode);
                printf(",\"helper_version\":");
                print_json_string(helper);
                printf(",\"paused\":%s,\"pages_to_scan\":%" PRIu64 ",\"sleep_usec\":%" PRIu64
                       ",\"batch_pages\":%" PRIu64 ",\"batch_sleep_usec\":%" PRIu64
                       ",\"full_scans\":%" PRIu64 ",\"saving_bytes\":%" PRIu64 ",\"regions\":%" PRIu64,
                       paused ? "true" : "false", pages_to_scan, sleep_usec, v[BATCH_PAGES], v[BATCH_SLEEP],
                       v[SCANS], v[SAVING], v[REGIONS]);
                if (v[METADATA] != UINT64_MAX)
                        printf(",\"metadata_bytes\":%" PRIu64, v[METADATA]);
                if (v[COW_DEBT] != UINT64_MAX)
                        printf(",\"cow_debt_bytes\":%" PRIu64 ",\"cow_available_bytes\":%" PRIu64
                               ",\"cow_headroom_bytes\":%" PRIu64 ",\"cow_reserve_bytes\":%" PRIu64
                               ",\"cow_guard_holding\":%s",
                               v[COW_DEBT], v[COW_AVAILABLE], v[COW_HEADROOM], v[COW_RESERVE],
                               v[COW_HOLDING] == 1 ? "true" : "false");
                if (status) {
                        printf(",\"status\":");
                        print_json_string(status);
                }
                print_host_kernel_json(release, host, n_host);
                printf("}\n");
                return 0;
        }

        format_size(v[SAVING], sb, sizeof(sb));
        format_size(v[METADATA], mb, sizeof(mb));
        printf("       ksmd: %s\n", escape_text(version, version_text, sizeof(version_text)));
        printf("       mode: %s%s\n", escape_text(mode, mode_text, sizeof(mode_text)),
               strcmp(mode, "estimate") == 0 ?
                       " (nothing is merged; the figures say what merging would save)" : "");
        printf("     helper: %s\n", helper[0] ? escape_text(helper, helper_text, sizeof(helper_text)) :
                                               "not loaded");
        printf("      state: %s\n", paused ? "paused" : "scanning");
        printf("       rate: %" PRIu64 " pages every %" PRIu64 " ms\n", v[BATCH_PAGES],
               v[BATCH_SLEEP] / 1000);
        printf(" full scans: %" PRIu64 "\n", v[SCANS]);
        printf("    regions: %" PRIu64 "%s\n", v[REGIONS], status ? "" : " (yours)");
        printf("     saving: %s%s%s\n", sb, strcmp(mode, "estimate") == 0 ? " (estimated)" : "",
               status ? "" : " (in your regions)");
        if (v[METADATA] != UINT64_MAX)
                printf("   metadata: %s\n", mb);
        if (v[COW_DEBT] != UINT64_MAX) {
                char debt[32], headroom[32], available[32], reserve[32];

                /* What writing every merged page at once would take back, and what would be left. */
                printf("  COW guard: unmerge debt %s, headroom %s (of %s available), ",
                       format_size(v[COW_DEBT], debt, sizeof(debt)),
                       format_size(v[COW_HEADROOM], headroom, sizeof(headroom)),
                       format_size(v[COW_AVAILABLE], available, sizeof(available)));
                if (v[COW_RESERVE] == 0)
                        printf("no reserve (CowReserve=off)\n");
                else
                        printf("reserve %s: %s\n", format_size(v[COW_RESERVE], reserve, sizeof(reserve)),
                               v[COW_HOLDING] == 1 ? "HOLDING, no new page is merged" : "merging");
        }
        if (status)
                printf("     status: %s\n", escape_text(status, status_text, sizeof(status_text)));
        print_host_kernel(release, host, n_host);
        return 0;
}

/* ListDomains: one line (or JSON object) per merge domain. */
static int cmd_domains(sd_bus *bus, const Args *a) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        bool first = true;
        int r;

        r = call(bus, "ListDomains", &reply, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(usa{st})");
        if (r < 0)
                return -EBADMSG;
        if (arg_json)
                putchar('[');
        else
                printf("%-8s %-32s %8s %12s %12s\n", "ID", "DOMAIN", "REGIONS", "PAGES", "SAVING");
        while ((r = sd_bus_message_enter_container(reply, 'r', "usa{st}")) > 0) {
                uint64_t regions = 0, pages = 0, sharing = 0, zero = 0, v;
                const char *name, *k;
                char sb[32], name_text[TEXT_MAX];
                uint32_t id;

                r = sd_bus_message_read(reply, "us", &id, &name);
                if (r >= 0)
                        r = sd_bus_message_enter_container(reply, 'a', "{st}");
                while (r >= 0 && (r = sd_bus_message_read(reply, "{st}", &k, &v)) > 0) {
                        if (strcmp(k, "regions") == 0)
                                regions = v;
                        else if (strcmp(k, "pages") == 0)
                                pages = v;
                        else if (strcmp(k, "pages_sharing") == 0)
                                sharing = v;
                        else if (strcmp(k, "pages_zero") == 0)
                                zero = v;
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return -EBADMSG;
                if (arg_json) {
                        printf("%s{\"id\":%" PRIu32 ",\"name\":", first ? "" : ",", id);
                        print_json_string(name);
                        printf(",\"regions\":%" PRIu64 ",\"pages\":%" PRIu64 ",\"pages_sharing\":%" PRIu64
                               ",\"pages_zero\":%" PRIu64 ",\"saving_bytes\":%" PRIu64 "}",
                               regions, pages, sharing, zero, (sharing + zero) * PAGE_SIZE_BYTES);
                } else {
                        format_size((sharing + zero) * PAGE_SIZE_BYTES, sb, sizeof(sb));
                        printf("%-8" PRIu32 " %-32s %8" PRIu64 " %12" PRIu64 " %12s\n", id,
                               escape_text(name, name_text, sizeof(name_text)), regions, pages, sb);
                }
                first = false;
        }
        if (r < 0)
                return -EBADMSG;
        if (arg_json)
                printf("]\n");
        return 0;
}

int stats_read(sd_bus_message *reply, Stat **ret, size_t *ret_n) {
        Stat *stats = NULL;
        size_t n = 0;
        const char *key;
        uint64_t value;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "{st}");
        while (r >= 0 && (r = sd_bus_message_read(reply, "{st}", &key, &value)) > 0) {
                Stat *l = reallocarray(stats, n + 1, sizeof(Stat));

                if (!l) {
                        r = -ENOMEM;
                        break;
                }
                stats = l;
                stats[n].key = strdup(key);
                stats[n].value = value;
                if (!stats[n++].key) {
                        r = -ENOMEM;
                        break;
                }
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r < 0) {
                stats_free(stats, n);
                return r;
        }
        *ret = stats;
        *ret_n = n;
        return 0;
}

void stats_free(Stat *stats, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(stats[i].key);
        free(stats);
}

void print_stats_json(const Stat *stats, size_t n) {
        putchar('{');
        for (size_t i = 0; i < n; i++) {
                printf("%s", i > 0 ? "," : "");
                print_json_string(stats[i].key);
                printf(":%" PRIu64, stats[i].value);
        }
        putchar('}');
}

/* A statistic as ksmctl stats shows it: sizes and times in units (named without _bytes, _usec), pages
 * with their size. */
static void print_stat(const char *name, const char *key, uint64_t v) {
        char buf[32], text[TEXT_MAX];
        size_t n = strlen(escape_text(name, text, sizeof(text)));

        if (endswith(key, "_bytes") && n > 6)
                printf("  %-26.*s %s\n", (int) n - 6, text, format_size(v, buf, sizeof(buf)));
        else if (endswith(key, "_usec") && n > 5)
                printf("  %-26.*s %.3f s\n", (int) n - 5, text, (double) v / 1e6);
        else if (startswith(key, "pages") || startswith(key, "reason_") || endswith(key, "_pages"))
                printf("  %-26s %" PRIu64 " pages (%s)\n", text, v,
                       format_size(v * PAGE_SIZE_BYTES, buf, sizeof(buf)));
        else
                printf("  %-26s %" PRIu64 "\n", text, v);
}

/*
 * stats: the statistics under headings, each key under the first group whose prefix it starts with
 * (the prefix cut off), so that a key of a newer daemon still shows, under "Other".
 */
static void print_stats_grouped(const Stat *stats, size_t n) {
        static const struct {
                const char *heading;
                const char *prefixes[6];
                bool skip_zero;          /* a long list of which few apply: only those with pages */
        } groups[] = {
                { "Memory", { "saving_bytes", "metadata_bytes", "tracked_pages", "regions" } },
                { "Merged pages (the helper, at the last full scan)", { "helper_" } },
                { "COW guard (CowReserve=)", { "cow_debt", "cow_available", "cow_headroom", "cow_reserve",
                                               "cow_guard" } },
                { "Why pages are (not) merged, last full scan (ksmctl explain)", { "reason_" }, true },
                { "Last full scan", { "pages_" } },
                { "Scanning", { "full_scans", "last_full_scan_usec", "current_scan_pages", "batch_pages",
                                "batch_sleep_usec", "scan_threads" } },
                { "Merging", { "merge_requests", "merge_items", "merge_retries", "merge_estimated",
                               "cow_breaks" } },
                { "Helper results (pages)", { "merge_" }, true },
                { "Other", { "" } },
        };
        bool *shown = calloc(n, sizeof(bool));

        if (!shown)
                return;
        for (size_t g = 0; g < ELEMENTSOF(groups); g++) {
                bool heading = false;

                for (const char *const *p = groups[g].prefixes; p < groups[g].prefixes + 6 && *p; p++)
                        for (size_t i = 0; i < n; i++) {
                                const char *rest = startswith(stats[i].key, *p);

                                if (shown[i] || !rest)
                                        continue;
                                shown[i] = true;
                                if (groups[g].skip_zero && stats[i].value == 0)
                                        continue;
                                if (!heading)
                                        printf("%s%s:\n", g > 0 ? "\n" : "", groups[g].heading);
                                heading = true;
                                /* A prefix ending in _ names the group; a whole key stays. */
                                if (!endswith(*p, "_") || !*rest)
                                        rest = stats[i].key;
                                print_stat(rest, stats[i].key, stats[i].value);
                        }
        }
        free(shown);
}

static int cmd_stats(sd_bus *bus, const Args *a) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Stat *stats = NULL;
        size_t n = 0;
        int r;

        if (arg_format >= 0)
                return cmd_stats_metrics(bus, a);
        r = call(bus, "GetStatistics", &reply, NULL);
        if (r < 0)
                return r;
        r = stats_read(reply, &stats, &n);
        if (r < 0) {
                fprintf(stderr, "ksmctl: malformed reply: %s\n", strerror(-r));
                return -EBADMSG;
        }
        if (arg_json) {
                print_stats_json(stats, n);
                putchar('\n');
        } else
                print_stats_grouped(stats, n);
        stats_free(stats, n);
        return 0;
}

static int parse_no_args(int argc, char *argv[], Args *ret) {
        if (argc > 1) {
                fprintf(stderr, "ksmctl: %s takes no arguments, got '%s'\n", argv[0], argv[1]);
                return -EINVAL;
        }
        return 0;
}

static int parse_pid(const char *s, uint64_t *ret) {
        if (parse_uint64_range(s, 1, INT32_MAX, ret) < 0) {
                fprintf(stderr, "ksmctl: PID '%s' is not a pid (1..%d)\n", s, INT32_MAX);
                return -EINVAL;
        }
        return 0;
}

static int parse_address(const char *s, const char *what, uint64_t *ret) {
        if (parse_uint64_auto(s, ret) < 0) {
                fprintf(stderr, "ksmctl: %s '%s' is not a number (decimal or 0x-hex bytes)\n", what, s);
                return -EINVAL;
        }
        return 0;
}

static int parse_register_args(int argc, char *argv[], Args *ret) {
        int r;

        if (argc != 2 && argc != 4) {
                fprintf(stderr, "ksmctl: register takes PID, or PID START LENGTH\n");
                return -EINVAL;
        }
        r = parse_pid(argv[1], &ret->pid);
        if (r < 0)
                return r;
        ret->range = argc == 4;
        if (ret->range && ((r = parse_address(argv[2], "START", &ret->start)) < 0 ||
                           (r = parse_address(argv[3], "LENGTH", &ret->length)) < 0))
                return r;
        /* Alignment is the daemon's to judge: it says what it needs. */
        return 0;
}

static int parse_region_id(int argc, char *argv[], Args *ret) {
        uint64_t id;

        if (argc != 2) {
                fprintf(stderr, "ksmctl: %s takes one region ID (see ksmctl list)\n", argv[0]);
                return -EINVAL;
        }
        if (parse_uint64_range(argv[1], 1, UINT32_MAX, &id) < 0) {
                fprintf(stderr, "ksmctl: ID '%s' is not a region ID (1..%u; see ksmctl list)\n", argv[1],
                        UINT32_MAX);
                return -EINVAL;
        }
        ret->id = (uint32_t) id;
        return 0;
}

static int parse_estimate_args(int argc, char *argv[], Args *ret) {
        uint64_t pid;
        int r;

        if (argc < 2) {
                fprintf(stderr, "ksmctl: estimate takes one or more PIDs\n");
                return -EINVAL;
        }
        for (int i = 1; i < argc; i++) {
                r = parse_pid(argv[i], &pid);
                if (r < 0)
                        return r;
        }
        return 0;
}

/*
 * Names the process by a pidfd, so a pid reused meanwhile is never
 * registered, and passes /proc/PID/mem opened here as the proof that the
 * caller may read it (ksmd's access.h).
 */
static int cmd_register(sd_bus *bus, const Args *a) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_close_ int pidfd = -EBADF, memfd = -EBADF;
        char path[64];
        uint32_t id;
        int r;

        pidfd = pidfd_open_pid((pid_t) a->pid);
        if (pidfd == -ESRCH) {
                fprintf(stderr, "ksmctl: no process with pid %" PRIu64 "\n", a->pid);
                return pidfd;
        }
        if (pidfd < 0) {
                fprintf(stderr, "ksmctl: cannot open process %" PRIu64 " as a pidfd: %s\n", a->pid,
                        strerror(-pidfd));
                return pidfd;
        }
        /* The proof that the kernel lets us read its memory (ksmd's access.h); root's is not needed. */
        snprintf(path, sizeof(path), "/proc/%" PRIu64 "/mem", a->pid);
        memfd = open(path, O_RDONLY | O_CLOEXEC);
        if (memfd < 0 && geteuid() != 0) {
                r = -errno;
                fprintf(stderr, "ksmctl: the kernel does not let you read the memory of process %" PRIu64
                        " (%s: %s), so ksmd will not register it for you\n",
                        a->pid, path, strerror(-r));
                return r == -ENOENT ? -ESRCH : -EACCES;
        }

        r = sd_bus_message_new_method_call(bus, &m, NULL, BUS_OBJECT_PATH, BUS_INTERFACE,
                                           a->range ? "RegisterRangeByPIDFD" : "RegisterProcessByPIDFD");
        if (r >= 0)
                r = sd_bus_message_append(m, "h", pidfd);
        if (r >= 0 && a->range)
                r = sd_bus_message_append(m, "tt", a->start, a->length);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && arg_name)
                r = sd_bus_message_append(m, "{sv}", "Name", "s", arg_name);
        if (r >= 0 && arg_domain)
                r = sd_bus_message_append(m, "{sv}", "Domain", "s", arg_domain);
        if (r >= 0 && memfd >= 0)
                r = sd_bus_message_append(m, "{sv}", "Memory", "h", memfd);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        r = call_message(bus, m, r, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "u", &id);
        if (r < 0)
                return -EBADMSG;
        printf("%u\n", id);
        return 0;
}

static int cmd_unregister(sd_bus *bus, const Args *a) {
        return call(bus, "Unregister", NULL, "u", a->id);
}

static int cmd_unmerge(sd_bus *bus, const Args *a) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint64_t pages;
        int r;

        r = call(bus, "Unmerge", &reply, "u", a->id);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "t", &pages);
        if (r < 0)
                return -EBADMSG;
        printf("region %u: %" PRIu64 " pages made private again; the region is unregistered\n", a->id,
               pages);
        return 0;
}

static int cmd_pause(sd_bus *bus, const Args *a) {
        return call(bus, "Pause", NULL, NULL);
}

static int cmd_resume(sd_bus *bus, const Args *a) {
        return call(bus, "Resume", NULL, NULL);
}

static int cmd_reload(sd_bus *bus, const Args *a) {
        return call(bus, "Reload", NULL, NULL);
}

/*
 * A one-shot estimate in this process, with the daemon's own scanner in
 * estimate mode: nothing is merged and no daemon is needed.
 */
static int cmd_estimate(int argc, char *argv[]) {
        _cleanup_(manager_freep) Manager *m = NULL;
        uint64_t total_pages = 0, total_saving = 0;
        bool first = true;
        int r;

        log_set_max_level(LOG_CRIT); /* ksmctl says what went wrong itself; the manager would repeat it */
        r = manager_new(&(ManagerArgs) { .overrides = STRV_MAKE("Mode=estimate", "Sleep=0"),
                                         .n_overrides = 2, .no_socket = true,
                                         .exit_after_scans = arg_scans },
                        &m);
        if (r < 0) {
                fprintf(stderr, "ksmctl: cannot set up the scanner: %s\n", strerror(-r));
                return r;
        }
        for (int i = 1; i < argc; i++) {
                uint64_t pid;

                r = parse_pid(argv[i], &pid);
                if (r < 0)
                        return r;
                r = manager_register_process(m, (pid_t) pid, NULL);
                if (r == -EPERM || r == -EACCES) {
                        fprintf(stderr, "ksmctl: may not read process %s: run as root\n", argv[i]);
                        return -EACCES;
                }
                if (r < 0) {
                        fprintf(stderr, "ksmctl: cannot scan process %s: %s\n", argv[i], strerror(-r));
                        return r;
                }
        }
        r = manager_start(m);
        if (r >= 0)
                r = sd_event_loop(m->event);
        if (r < 0) {
                fprintf(stderr, "ksmctl: scanning failed: %s\n", strerror(-r));
                return r;
        }

        if (arg_json)
                putchar('[');
        REGISTRY_FOREACH(region, m->registry) {
                static const RegionScan none = {};
                const RegionScan *rs = scanner_region(m->scanner, region->id) ?: &none;
                uint64_t pages = rs->last.pages_scanned, saving = scan_counters_saving_pages(&rs->last);
                char raw[256], exe[ESCAPE_SIZE_MAX(sizeof(raw) - 1)] = "?";

                /* Its owner named the file: escaped, for the terminal and for JSON. */
                if (proc_read_exe_name(region->pid, raw, sizeof(raw)) >= 0)
                        escape_str(raw, exe, sizeof(exe));
                total_pages += pages;
                total_saving += saving;
                if (arg_json) {
                        printf("%s{\"pid\":%d,\"exe\":", first ? "" : ",", (int) region->pid);
                        print_json_string(exe);
                        printf(",\"pages_scanned\":%" PRIu64 ",\"pages_zero\":%" PRIu64
                               ",\"pages_sharing\":%" PRIu64 ",\"pages_volatile\":%" PRIu64
                               ",\"saving_bytes\":%" PRIu64 "}",
                               pages, rs->last.pages_zero, rs->last.pages_sharing, rs->last.pages_volatile,
                               saving * PAGE_SIZE_BYTES);
                } else
                        printf("process %d (%s): %.1f MiB scanned, %.1f MiB saveable (%.1f MiB zero pages, "
                               "%.1f MiB duplicates), %" PRIu64 " pages changing\n",
                               (int) region->pid, exe, pages / 256.0, saving / 256.0,
                               rs->last.pages_zero / 256.0, rs->last.pages_sharing / 256.0,
                               rs->last.pages_volatile);
                first = false;
        }
        if (arg_json)
                printf("]\n");
        else
                printf("total: %.1f MiB saveable of %.1f MiB scanned (%.0f %%) after %" PRIu64 " scans; "
                       "estimate only, nothing was merged\n",
                       total_saving / 256.0, total_pages / 256.0,
                       total_pages ? 100.0 * (double) total_saving / (double) total_pages : 0.0, arg_scans);
        return 0;
}

/* The one place -errno becomes an exit status (after the arguments were accepted). */
static int exit_code(int r) {
        if (r >= 0)
                return EXIT_SUCCESS;
        if (IN_SET(r, -EACCES, -EPERM))
                return EXIT_DENIED;
        return EXIT_FAILED;
}

typedef struct Verb {
        const char *name;
        int (*parse)(int argc, char *argv[], Args *ret);     /* argv[0] is the verb;
                                                              * -EINVAL after a message */
        int (*run)(sd_bus *bus, const Args *a);              /* NULL: estimate, which needs no daemon */
} Verb;

static const Verb verbs[] = {
        { "status", parse_no_args, cmd_status },
        { "stats", parse_no_args, cmd_stats },
        { "list", parse_no_args, cmd_list },
        { "explain", parse_region_id, cmd_explain },
        { "domains", parse_no_args, cmd_domains },
        { "register", parse_register_args, cmd_register },
        { "unregister", parse_region_id, cmd_unregister },
        { "unmerge", parse_region_id, cmd_unmerge },
        { "pause", parse_no_args, cmd_pause },
        { "resume", parse_no_args, cmd_resume },
        { "reload", parse_no_args, cmd_reload },
        { "estimate", parse_estimate_args, NULL },
};

int main(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_SOCKET, ARG_JSON, ARG_SCANS, ARG_NAME, ARG_DOMAIN, ARG_FORMAT,
               ARG_OUTPUT };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "json", no_argument, NULL, ARG_JSON },
                { "scans", required_argument, NULL, ARG_SCANS },
                { "name", required_argument, NULL, ARG_NAME },
                { "domain", required_argument, NULL, ARG_DOMAIN },
                { "verbose", no_argument, NULL, 'v' },
                { "format", required_argument, NULL, ARG_FORMAT },
                { "output", required_argument, NULL, ARG_OUTPUT },
                {}
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const char *verb;
        Args args = {};
        int c, r;

        /* Options may follow the command, as in "ksmctl register --name=vm1 PID". */
        while ((c = getopt_long(argc, argv, "hv", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("ksmctl %s\n", PACKAGE_VERSION);
                        return 0;
                case ARG_SOCKET:
                        arg_socket = optarg;
                        break;
                case ARG_JSON:
                        arg_json = true;
                        break;
                case 'v':
                        arg_verbose = true;
                        break;
                case ARG_FORMAT:
                        arg_format = metric_format_from_string(optarg);
                        if (arg_format < 0) {
                                char text[TEXT_MAX];

                                fprintf(stderr, "ksmctl: --format=%s: expected openmetrics or prometheus\n",
                                        escape_text(optarg, text, sizeof(text)));
                                return EXIT_USAGE;
                        }
                        break;
                case ARG_OUTPUT:
                        arg_output = optarg;
                        break;
                case ARG_SCANS:
                        if (parse_uint64_range(optarg, 1, 1000, &arg_scans) < 0) {
                                fprintf(stderr, "ksmctl: --scans=%s: expected 1..1000\n", optarg);
                                return EXIT_USAGE;
                        }
                        break;
                case ARG_NAME:
                        if (!region_name_is_valid(optarg)) {
                                fprintf(stderr,
                                        "ksmctl: --name=%s: a name is 1..%u printable ASCII characters\n",
                                        optarg, REGION_NAME_MAX);
                                return EXIT_USAGE;
                        }
                        arg_name = optarg;
                        break;
                case ARG_DOMAIN:
                        if (!domain_name_is_valid(optarg)) {
                                fprintf(stderr, "ksmctl: --domain=%s: a domain is 1..%u characters of "
                                        "A-Z a-z 0-9 . _ : @ -\n",
                                        optarg, DOMAIN_NAME_MAX);
                                return EXIT_USAGE;
                        }
                        arg_domain = optarg;
                        break;
                default:
                        return EXIT_USAGE;
                }

        if (optind >= argc) {
                fprintf(stderr, "ksmctl: no command given; see ksmctl --help\n");
                return EXIT_USAGE;
        }
        verb = argv[optind];
        argc -= optind;
        argv += optind;

        const Verb *v = NULL;
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strcmp(verb, verbs[i].name) == 0)
                        v = &verbs[i];
        if (!v) {
                fprintf(stderr, "ksmctl: unknown command '%s'; see ksmctl --help\n", verb);
                return EXIT_USAGE;
        }

        if ((arg_name || arg_domain) && v->run != cmd_register) {
                fprintf(stderr, "ksmctl: --%s is an option of register only\n",
                        arg_name ? "name" : "domain");
                return EXIT_USAGE;
        }
        if (arg_verbose && v->run != cmd_list) {
                fprintf(stderr, "ksmctl: --verbose is an option of list only\n");
                return EXIT_USAGE;
        }
        if (arg_format >= 0 && (v->run != cmd_stats || arg_json)) {
                fprintf(stderr, "ksmctl: --format= is an option of stats, without --json\n");
                return EXIT_USAGE;
        }
        if (arg_output && arg_format < 0) {
                fprintf(stderr, "ksmctl: --output is an option of stats --format= only\n");
                return EXIT_USAGE;
        }

        /* Every argument is checked before the daemon is asked anything:
         * bad usage is exit 2, running or not. */
        r = v->parse(argc, argv, &args);
        if (r < 0)
                return EXIT_USAGE;

        if (!v->run)
                return exit_code(cmd_estimate(argc, argv));

        r = connect_daemon(&bus);
        if (IN_SET(r, -ENOENT, -ECONNREFUSED))
                return EXIT_NOT_RUNNING;
        if (r < 0)
                return exit_code(r);
        return exit_code(v->run(bus, &args));
}
