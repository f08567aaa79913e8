/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The D-Bus API org.ksmd.Manager1 (man/org.ksmd.Manager1.5.scd): its
 * methods and properties, as oomd-manager-bus.c is systemd-oomd's. The
 * transport is bus-server.c; who may do what is bus-auth.c and ledger.c.
 * The only file that includes sd-bus vtables.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>

#include "build-config.h"
#include "bus-api.h"
#include "access.h"
#include "bus-auth.h"
#include "escape.h"
#include "helper-client.h"
#include "ledger.h"
#include "log.h"
#include "manager.h"
#include "pidfd-util.h"
#include "proc-process.h"
#include "stats.h"

static Manager *manager_of(BusConnection *c) {
        return bus_connection_userdata(c);
}

/* Whether the peer may call at all: the socket refuses anyone else at accept. */
static bool may_call(const PeerCreds *peer, void *userdata) {
        const Manager *mgr = userdata;

        return bus_auth_may_call(peer, mgr->settings.allow_groups, mgr->settings.n_allow_groups,
                                 mgr->settings.operator_groups, mgr->settings.n_operator_groups);
}

/* Who is calling, and may they call at all (on the system bus this is the only check). */
static int check_caller(BusConnection *c, sd_bus_message *m, PeerCreds *ret, sd_bus_error *error) {
        int r;

        r = bus_connection_caller(c, m, ret);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot learn the caller's credentials: %m");
        if (may_call(ret, manager_of(c)))
                return 0;
        return sd_bus_error_setf(error, BUS_ERROR_ACCESS_DENIED,
                                 "uid %u (pid %d) is neither root nor a member of a group "
                                 "in AllowGroups= or OperatorGroups= of ksmd.conf",
                                 (unsigned) ret->uid, (int) ret->pid);
}

/* Who is calling, and may they act on the whole host (what: "call Pause", "change PagesToScan"). */
static int check_operator(BusConnection *c, sd_bus_message *m, const char *what, PeerCreds *ret,
                          sd_bus_error *error) {
        const Manager *mgr = manager_of(c);
        int r;

        r = check_caller(c, m, ret, error);
        if (r < 0)
                return r;
        if (bus_auth_may_operate(ret, mgr->settings.operator_groups, mgr->settings.n_operator_groups))
                return 0;
        return sd_bus_error_setf(error, BUS_ERROR_ACCESS_DENIED,
                                 "uid %u may not %s: that acts on the whole host, which only root and "
                                 "members of a group in OperatorGroups= of ksmd.conf may do",
                                 (unsigned) ret->uid, what);
}

static int map_register_error(int r, pid_t pid, sd_bus_error *error) {
        switch (r) {
        case -EINVAL:
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "start and length must be page aligned, length non-zero, "
                                         "and the range must not wrap");
        case -ESRCH:
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_PROCESS, "No process with pid %d",
                                         (int) pid);
        case -EEXIST:
                return sd_bus_error_setf(error, BUS_ERROR_ALREADY_REGISTERED,
                                         "The range overlaps a region already registered for process %d",
                                         (int) pid);
        case -ENOSPC:
                return sd_bus_error_setf(error, BUS_ERROR_LIMIT_EXCEEDED,
                                         "The daemon holds as many regions as it may "
                                         "(MaxRegions= in ksmd.conf)");
        default:
                return sd_bus_error_set_errnof(error, r, "Failed to register process %d: %m", (int) pid);
        }
}

/* The options of the ...ByPIDFD methods, an a{sv}; org.ksmd.Manager1(5) lists them. */
typedef struct RegisterOptions {
        const char *name;              /* borrowed from the message; NULL if not given */
        const char *domain;            /* borrowed; NULL if not given */
        int memfd;                     /* borrowed; -EBADF if not given */
} RegisterOptions;

/*
 * A caller other than root proves with o->memfd that the kernel lets it read
 * the process (access.h); root needs no proof, but one it gives is checked
 * all the same. *ret_proof is NULL for root.
 */
static int check_access(const PeerCreds *peer, pid_t pid, int pidfd, const RegisterOptions *o,
                        AccessProof **ret_proof, sd_bus_error *error) {
        _cleanup_(access_proof_freep) AccessProof *proof = NULL;
        const char *reason = NULL;
        int r;

        *ret_proof = NULL;
        if (o->memfd < 0 && peer->uid == 0)
                return 0;
        if (o->memfd < 0)
                return sd_bus_error_setf(error, BUS_ERROR_ACCESS_DENIED,
                                         "uid %u must prove it may read process %d: pass a descriptor of "
                                         "/proc/%d/mem it opened itself as the Memory option "
                                         "(ksmctl register does)",
                                         (unsigned) peer->uid, (int) pid, (int) pid);
        r = access_proof_new(o->memfd, pid, pidfd, peer->uid, peer->gid, &proof, &reason);
        if (r == -ESRCH)
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_PROCESS, "No process with pid %d",
                                         (int) pid);
        if (r == -EPERM)
                return sd_bus_error_setf(error, BUS_ERROR_ACCESS_DENIED,
                                         "uid %u may not register memory of process %d: %s",
                                         (unsigned) peer->uid, (int) pid, reason);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot check the Memory descriptor: %m");
        if (peer->uid != 0)
                *ret_proof = TAKE_PTR(proof);
        return 0;
}

/*
 * Registers after every check. pidfd (the caller's, or one we open) pins the
 * identity: if the process is still alive after registration, the pid the
 * manager registered is the process whose credentials were checked, since a
 * pid is not reused while its process lives.
 */
static int do_register(BusConnection *c, sd_bus_message *m, pid_t pid, int caller_pidfd, bool whole,
                       uint64_t start, uint64_t length, const RegisterOptions *o, sd_bus_error *error) {
        Manager *mgr = manager_of(c);
        _cleanup_close_ int own_pidfd = -EBADF;
        AccessProof *proof = NULL;
        char name_text[ESCAPE_SIZE_MAX(REGION_NAME_MAX)];
        int pidfd = caller_pidfd;
        PeerCreds peer;
        uint32_t id;
        int r;

        r = check_caller(c, m, &peer, error);
        if (r < 0)
                return r;
        if (pid <= 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "pid must be positive, got %d",
                                         (int) pid);

        if (pidfd < 0) {
                own_pidfd = pidfd_open_pid(pid);
                if (own_pidfd < 0)
                        return own_pidfd == -ESRCH ?
                                sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_PROCESS, "No process with pid %d",
                                                  (int) pid) :
                                sd_bus_error_set_errnof(error, -own_pidfd, "Cannot open process %d: %m",
                                                        (int) pid);
                pidfd = own_pidfd;
        }

        if (o->domain && peer.uid != 0)
                return sd_bus_error_setf(error, BUS_ERROR_ACCESS_DENIED,
                                         "Only root chooses a merge domain; the regions of uid %u are in "
                                         "its own domain, uid:%u",
                                         (unsigned) peer.uid, (unsigned) peer.uid);

        if (ledger_check_region_quota(mgr->registry, peer.uid, mgr->settings.max_regions_per_client) < 0)
                return sd_bus_error_setf(error, BUS_ERROR_LIMIT_EXCEEDED,
                                         "uid %u already has %" PRIu64 " regions registered "
                                         "(MaxRegionsPerClient= in ksmd.conf)",
                                         (unsigned) peer.uid, mgr->settings.max_regions_per_client);

        r = check_access(&peer, pid, pidfd, o, &proof, error);
        if (r < 0)
                return r;
        r = manager_register(mgr, &(RegionRequest) { .pid = pid, .whole = whole, .start = start,
                                                      .length = length, .name = o->name, .domain = o->domain,
                                                      .owner_uid = peer.uid, .proof = proof },
                             &id);
        if (r < 0)
                return map_register_error(r, pid, error);

        if (pidfd_is_alive(pidfd) <= 0) {
                (void) manager_unregister(mgr, id);
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_PROCESS,
                                         "Process %d exited during registration", (int) pid);
        }

        log_debug("Region %u (%s of process %d%s%s) belongs to uid %u.", id,
                  whole ? "all private memory" : "a range", (int) pid, o->name ? ", named " : "",
                  escape_str(o->name, name_text, sizeof(name_text)), (unsigned) peer.uid);
        return sd_bus_reply_method_return(m, "u", id);
}

/* The pid methods carry no options: no Memory proof, so they are root's. */
static const RegisterOptions NO_OPTIONS = { .memfd = -EBADF };

static int method_register_range(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        uint64_t start, length;
        uint32_t pid;
        int r;

        r = sd_bus_message_read(m, "utt", &pid, &start, &length);
        if (r < 0)
                return r;
        return do_register(userdata, m, (pid_t) pid, -EBADF, false, start, length, &NO_OPTIONS, error);
}

static int method_register_process(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        uint32_t pid;
        int r;

        r = sd_bus_message_read(m, "u", &pid);
        if (r < 0)
                return r;
        return do_register(userdata, m, (pid_t) pid, -EBADF, true, 0, 0, &NO_OPTIONS, error);
}

static int read_pidfd(sd_bus_message *m, int *ret_fd, pid_t *ret_pid, sd_bus_error *error) {
        pid_t pid;
        int fd, r;

        r = sd_bus_message_read(m, "h", &fd);
        if (r < 0)
                return r;
        r = proc_pidfd_get_pid(fd, &pid);
        if (r == -ESRCH)
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_PROCESS,
                                         "The process of the pidfd has exited");
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "The file descriptor is not a pidfd");
        *ret_fd = fd;
        *ret_pid = pid;
        return 0;
}


/* The value of option key, of variant type type ("s" or "h"), into *value; once. */
static int read_option(sd_bus_message *m, const char *key, const char *type, bool given, void *value,
                       sd_bus_error *error) {
        const char *contents = NULL;
        int r;

        if (given)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Option %s is given more than once", key);
        r = sd_bus_message_peek_type(m, NULL, &contents);
        if (r < 0)
                return r;
        if (!contents || strcmp(contents, type) != 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Option %s must be %s (variant type %s), not of type %s", key,
                                         streq(type, "h") ? "a file descriptor" : "a string", type,
                                         contents ?: "?");
        return sd_bus_message_read(m, "v", type, value);
}

static int read_option_name(sd_bus_message *m, RegisterOptions *o, sd_bus_error *error) {
        const char *name;
        size_t n;
        int r;

        r = read_option(m, "Name", "s", o->name, &name, error);
        if (r < 0)
                return r;
        n = strlen(name);
        if (n == 0 || n > REGION_NAME_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Option Name must be 1..%u characters long, got %zu",
                                         REGION_NAME_MAX, n);
        if (!region_name_is_valid(name)) {
                size_t i = 0;

                while (name[i] >= 0x20 && name[i] <= 0x7e)
                        i++;
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Option Name may hold only printable ASCII characters; "
                                         "byte %zu is 0x%02x",
                                         i + 1, (unsigned) (unsigned char) name[i]);
        }
        o->name = name;
        return 0;
}

static int read_option_domain(sd_bus_message *m, RegisterOptions *o, sd_bus_error *error) {
        const char *domain;
        int r;

        r = read_option(m, "Domain", "s", o->domain, &domain, error);
        if (r < 0)
                return r;
        if (!domain_name_is_valid(domain))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Option Domain must be 1..%u characters of A-Z a-z 0-9 . _ : @ -",
                                         DOMAIN_NAME_MAX);
        o->domain = domain;
        return 0;
}

static int read_option_memory(sd_bus_message *m, RegisterOptions *o, sd_bus_error *error) {
        return read_option(m, "Memory", "h", o->memfd >= 0, &o->memfd, error);
}

/* Reads the options dictionary; an unknown key or a bad value is InvalidArgs, naming the key. */
static int read_register_options(sd_bus_message *m, RegisterOptions *ret, sd_bus_error *error) {
        RegisterOptions o = { .memfd = -EBADF };
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (;;) {
                char key_text[64 + sizeof(ESCAPE_CUT_MARK)];
                const char *key;

                r = sd_bus_message_enter_container(m, 'e', "sv");
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                if (strcmp(key, "Name") == 0)
                        r = read_option_name(m, &o, error);
                else if (strcmp(key, "Domain") == 0)
                        r = read_option_domain(m, &o, error);
                else if (strcmp(key, "Memory") == 0)
                        r = read_option_memory(m, &o, error);
                else
                        /* The caller's bytes, echoed back: escaped, cut after about 64 bytes. */
                        r = sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                              "Unknown option \"%s\"; the known options are Domain, Memory "
                                              "and Name",
                                              escape_str(key, key_text, sizeof(key_text)));
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = o;
        return 0;
}

static int method_register_range_pidfd(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        RegisterOptions o;
        uint64_t start, length;
        pid_t pid;
        int fd, r;

        r = read_pidfd(m, &fd, &pid, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "tt", &start, &length);
        if (r < 0)
                return r;
        r = read_register_options(m, &o, error);
        if (r < 0)
                return r;
        return do_register(userdata, m, pid, fd, false, start, length, &o, error);
}

static int method_register_process_pidfd(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        RegisterOptions o;
        pid_t pid;
        int fd, r;

        r = read_pidfd(m, &fd, &pid, error);
        if (r < 0)
                return r;
        r = read_register_options(m, &o, error);
        if (r < 0)
                return r;
        return do_register(userdata, m, pid, fd, true, 0, 0, &o, error);
}

/* Authorizes the caller and reads a region id it may see; 0 and *ret_id, or an error. */
static int read_region(BusConnection *c, sd_bus_message *m, PeerCreds *peer, uint32_t *ret_id,
                       sd_bus_error *error) {
        Region *region;
        uint32_t id;
        int r;

        r = check_caller(c, m, peer, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "u", &id);
        if (r < 0)
                return r;
        region = region_registry_find(manager_of(c)->registry, id);
        if (!region || !ledger_may_see(region, peer->uid))
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_REGION,
                                         "No region %u registered by uid %u (see ListRegions)", id,
                                         (unsigned) peer->uid);
        *ret_id = id;
        return 0;
}

static int method_unregister(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusConnection *c = userdata;
        PeerCreds peer;
        uint32_t id;
        int r;

        r = read_region(c, m, &peer, &id, error);
        if (r < 0)
                return r;
        r = manager_unregister(manager_of(c), id);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to unregister region %u: %m", id);
        log_debug("Region %u unregistered by uid %u.", id, (unsigned) peer.uid);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_unmerge(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusConnection *c = userdata;
        uint64_t pages = 0;
        PeerCreds peer;
        uint32_t id;
        int r;

        r = read_region(c, m, &peer, &id, error);
        if (r < 0)
                return r;
        r = manager_unmerge_region(manager_of(c), id, &pages);
        if (r == -EOPNOTSUPP)
                return sd_bus_error_setf(error, BUS_ERROR_NOT_SUPPORTED,
                                         "ksmd runs in estimate mode: "
                                         "nothing was merged, so there is nothing to unmerge");
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to unmerge region %u: %m", id);
        bus_server_emit_changed(manager_of(c)->bus, STRV_MAKE("SavingBytes", "Status"));
        return sd_bus_reply_method_return(m, "t", pages);
}

static int append_counters(sd_bus_message *reply, const ScanCounters *sc) {
        const struct {
                const char *name;
                uint64_t value;
        } fields[] = {
                { "pages_scanned", sc->pages_scanned },
                { "pages_read", sc->pages_read },
                { "pages_unchanged", sc->pages_unchanged },
                { "pages_skipped_merged", sc->pages_skipped_merged },
                { "pages_not_present", sc->pages_not_present },
                { "pages_swapped", sc->pages_swapped },
                { "pages_zero_mapped", sc->pages_zero_mapped },
                { "pages_external", sc->pages_external },
                { "pages_volatile", sc->pages_volatile },
                { "pages_skipped_volatile", sc->pages_skipped_volatile },
                { "pages_unreadable", sc->pages_unreadable },
                { "pages_zero", sc->pages_zero },
                { "pages_unshared", sc->pages_unshared },
                { "pages_shared", sc->pages_shared },
                { "pages_sharing", sc->pages_sharing },
                { "saving_bytes", scan_counters_saving_pages(sc) * (uint64_t) sysconf(_SC_PAGESIZE) },
        };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                r = sd_bus_message_append(reply, "{st}", fields[i].name, fields[i].value);
                if (r < 0)
                        return r;
        }
        /* Why pages are not merged (reasons.h): reason_KEY, adding up to the regions' pages. */
        for (int i = 0; i < _PAGE_REASON_MAX; i++) {
                char name[64];

                snprintf(name, sizeof(name), "reason_%s", page_reason_to_string((PageReason) i));
                r = sd_bus_message_append(reply, "{st}", name, sc->pages_by_reason[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* merge_RESULT for each result of the helper, into an a{st} already open. */
static int append_merge_results(sd_bus_message *reply, const uint64_t by_result[__KSMD_HELPER_RESULT_MAX]) {
        for (int i = 0; i < __KSMD_HELPER_RESULT_MAX; i++) {
                char name[64];
                int r;

                snprintf(name, sizeof(name), "merge_%s", helper_result_to_string((uint32_t) i));
                r = sd_bus_message_append(reply, "{st}", name, by_result[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* A method's reply that is one array of contents: opened here, closed and sent by reply_send_array(). */
static int reply_open_array(sd_bus_message *m, const char *contents, sd_bus_message **ret) {
        int r;

        r = sd_bus_message_new_method_return(m, ret);
        if (r < 0)
                return r;
        return sd_bus_message_open_container(*ret, 'a', contents);
}

static int reply_send_array(sd_bus_message *reply) {
        int r;

        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_list_regions(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        BusConnection *c = userdata;
        Manager *mgr = manager_of(c);
        PeerCreds peer;
        int r;

        r = check_caller(c, m, &peer, error);
        if (r < 0)
                return r;
        /* The one reply that grows with the daemon's state: not to a peer that leaves replies unread. */
        if (bus_connection_is_backlogged(c))
                return sd_bus_error_setf(error, BUS_ERROR_LIMIT_EXCEEDED,
                                         "Replies to uid %u wait beyond what the kernel buffers; "
                                         "read them before calling ListRegions again",
                                         (unsigned) peer.uid);

        r = reply_open_array(m, "(uusbttssa{st})", &reply);
        if (r < 0)
                return r;
        REGISTRY_FOREACH(region, mgr->registry) {
                const RegionScan *rs = scanner_region(mgr->scanner, region->id);
                static const RegionScan none = {};

                if (!ledger_may_see(region, peer.uid))
                        continue;
                if (!rs)
                        rs = &none;
                r = sd_bus_message_open_container(reply, 'r', "uusbttssa{st}");
                if (r < 0)
                        return r;
                r = sd_bus_message_append(reply, "uusbttss", region->id, (uint32_t) region->pid,
                                          region->name, region->whole_process, region->start,
                                          region->whole_process ? 0 : region->end - region->start,
                                          rs->note, rs->merge_note);
                if (r < 0)
                        return r;
                r = sd_bus_message_open_container(reply, 'a', "{st}");
                if (r < 0)
                        return r;
                r = append_counters(reply, &rs->last);
                if (r < 0)
                        return r;
                r = sd_bus_message_append(reply, "{st}{st}{st}", "pages", region_scan_pages(rs), "domain_id",
                                          (uint64_t) region->domain_id, "cow_breaks", rs->cow_breaks);
                if (r < 0)
                        return r;
                r = append_merge_results(reply, rs->merge_results);
                if (r < 0)
                        return r;
                r = sd_bus_message_close_container(reply);
                if (r < 0)
                        return r;
                r = sd_bus_message_close_container(reply);
                if (r < 0)
                        return r;
        }
        return reply_send_array(reply);
}

/*
 * Figures of the whole host depend on what every domain holds: a caller
 * other than root gets only those of its own regions (domains.h).
 */
static bool sees_the_host(const PeerCreds *peer) {
        return peer->uid == 0;
}

/* What the scanner found in a set of regions: a caller's, or a domain's. */
typedef struct Figures {
        ScanCounters last;
        uint64_t pages;
        uint64_t merge_results[__KSMD_HELPER_RESULT_MAX];
        uint64_t cow_breaks;
        uint64_t n_regions;
} Figures;

static void figures_add(Figures *f, Manager *mgr, const Region *r) {
        const RegionScan *rs = scanner_region(mgr->scanner, r->id);

        f->n_regions++;
        if (!rs)
                return;
        scan_counters_add(&f->last, &rs->last);
        f->pages += region_scan_pages(rs);
        f->cow_breaks += rs->cow_breaks;
        for (size_t i = 0; i < __KSMD_HELPER_RESULT_MAX; i++)
                f->merge_results[i] += rs->merge_results[i];
}

/* GetStatistics() of a caller other than root: its own regions, nothing else that depends on content. */
static int append_own_statistics(sd_bus_message *reply, Manager *mgr, const PeerCreds *peer) {
        Figures f = {};
        Stats st;
        int r;

        REGISTRY_FOREACH(region, mgr->registry)
                if (ledger_may_see(region, peer->uid))
                        figures_add(&f, mgr, region);
        manager_get_stats(mgr, &st);
        r = append_counters(reply, &f.last);
        if (r >= 0)
                r = sd_bus_message_append(reply, "{st}{st}{st}{st}{st}{st}", "full_scans", st.full_scans,
                                          "tracked_pages", f.pages, "regions", f.n_regions, "batch_pages",
                                          st.batch_pages, "batch_sleep_usec", st.batch_sleep_usec,
                                          "cow_breaks", f.cow_breaks);
        if (r >= 0)
                r = append_merge_results(reply, f.merge_results);
        return r;
}

/*
 * The helper's pool, one key per figure and NUMA node: helper_pool_blocks_node0, ... (the metrics make
 * the node a label).
 */
static int append_helper_pool(sd_bus_message *reply, const Stats *st) {
        static const struct {
                int attr;
                const char *key;
        } figures[] = {
                { KSMD_HELPER_POOL_A_BLOCKS, "helper_pool_blocks_node" },
                { KSMD_HELPER_POOL_A_USED_PAGES, "helper_pool_used_node" },
                { KSMD_HELPER_POOL_A_FREE_PAGES, "helper_pool_free_node" },
                { KSMD_HELPER_POOL_A_SINGLE_PAGES, "helper_pool_single_node" },
                { KSMD_HELPER_POOL_A_BLOCKS_TAKEN, "helper_pool_blocks_taken_node" },
                { KSMD_HELPER_POOL_A_BLOCKS_RETURNED, "helper_pool_blocks_returned_node" },
                { KSMD_HELPER_POOL_A_REUSED, "helper_pool_reused_node" },
                { KSMD_HELPER_POOL_A_FALLBACKS, "helper_pool_fallbacks_node" },
        };

        for (size_t i = 0; i < st->n_helper_pool; i++)
                for (size_t f = 0; f < ELEMENTSOF(figures); f++) {
                        char key[64];
                        int r;

                        snprintf(key, sizeof(key), "%s%" PRIu32, figures[f].key, st->helper_pool[i].node);
                        r = sd_bus_message_append(reply, "{st}", key,
                                                  st->helper_pool[i].figures[figures[f].attr]);
                        if (r < 0)
                                return r;
                }
        return 0;
}

static int append_host_statistics(sd_bus_message *reply, Manager *mgr) {
        Stats st;
        int r;

        manager_get_stats(mgr, &st);
        r = append_counters(reply, &st.last);
        if (r >= 0)
                r = sd_bus_message_append(reply, "{st}{st}{st}{st}{st}{st}{st}{st}{st}{st}{st}{st}{st}{st}",
                                          "full_scans", st.full_scans,
                                          "last_full_scan_usec", st.last_full_scan_usec,
                                          "current_scan_pages", st.current_scan_pages,
                                          "tracked_pages", st.tracked_pages,
                                          "regions", (uint64_t) region_registry_count(mgr->registry),
                                          "metadata_bytes", st.metadata_bytes,
                                          "merge_requests", st.merge.requests,
                                          "merge_items", st.merge.items,
                                          "merge_retries", st.merge.retries,
                                          "merge_estimated", st.merge.estimated,
                                          "cow_breaks", st.cow_breaks,
                                          "batch_pages", st.batch_pages,
                                          "batch_sleep_usec", st.batch_sleep_usec,
                                          "scan_threads", (uint64_t) scanner_threads(mgr->scanner));
        if (r >= 0)
                r = append_merge_results(reply, st.merge.by_result);
        /* The COW guard's figures (cow-guard.h): a headroom below zero reads as 0. */
        if (r >= 0)
                r = sd_bus_message_append(reply, "{st}{st}{st}{st}{st}{st}",
                                          "cow_debt_bytes", st.cow.debt_bytes,
                                          "cow_available_bytes", st.cow.available_bytes,
                                          "cow_headroom_bytes",
                                          (uint64_t) (st.cow.headroom_bytes > 0 ? st.cow.headroom_bytes : 0),
                                          "cow_reserve_bytes", st.cow.reserve_bytes,
                                          "cow_guard_holding", (uint64_t) st.cow.holding,
                                          "cow_guard_trips", st.cow.trips);
        /* What merging costs the host, as the helper counted it at the end of the last full scan. */
        if (r >= 0 && st.live)
                r = sd_bus_message_append(reply, "{st}{st}{st}{st}",
                                          "helper_owned_pages", st.helper_pages_owned,
                                          "helper_mapped_pages", st.helper_pages_mapped,
                                          "helper_saved_bytes", st.helper_bytes_saved,
                                          "helper_no_memory_items", st.helper_no_memory);
        if (r >= 0 && st.live)
                r = append_helper_pool(reply, &st);
        return r;
}

static int method_get_statistics(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        BusConnection *c = userdata;
        PeerCreds peer;
        int r;

        r = check_caller(c, m, &peer, error);
        if (r < 0)
                return r;
        r = reply_open_array(m, "{st}", &reply);
        if (r < 0)
                return r;
        r = sees_the_host(&peer) ? append_host_statistics(reply, manager_of(c)) :
                                   append_own_statistics(reply, manager_of(c), &peer);
        if (r < 0)
                return r;
        return reply_send_array(reply);
}

/* Each merge domain with a region the caller may see, and the figures of those regions. */
static int method_list_domains(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        BusConnection *c = userdata;
        Manager *mgr = manager_of(c);
        PeerCreds peer;
        int r;

        r = check_caller(c, m, &peer, error);
        if (r < 0)
                return r;
        r = reply_open_array(m, "(usa{st})", &reply);
        for (size_t i = 0; r >= 0 && i < domain_table_count(mgr->domains); i++) {
                const Domain *d = domain_table_get(mgr->domains, i);
                Figures f = {};

                REGISTRY_FOREACH(region, mgr->registry)
                        if (region->domain_id == d->id && ledger_may_see(region, peer.uid))
                                figures_add(&f, mgr, region);
                if (f.n_regions == 0)
                        continue;
                r = sd_bus_message_open_container(reply, 'r', "usa{st}");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "us", d->id, d->name);
                if (r >= 0)
                        r = sd_bus_message_open_container(reply, 'a', "{st}");
                if (r >= 0)
                        r = append_counters(reply, &f.last);
                if (r >= 0)
                        r = sd_bus_message_append(reply, "{st}{st}{st}", "regions", f.n_regions, "pages",
                                                  f.pages, "cow_breaks", f.cow_breaks);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r < 0)
                return r;
        return reply_send_array(reply);
}

/* Pause() and Resume(). */
static int method_set_paused(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        bool pause = strcmp(sd_bus_message_get_member(m), "Pause") == 0;
        BusConnection *c = userdata;
        PeerCreds peer;
        int r;

        r = check_operator(c, m, pause ? "call Pause" : "call Resume", &peer, error);
        if (r < 0)
                return r;
        log_info("%s asked for by uid %u.", pause ? "Pause" : "Resume", (unsigned) peer.uid);
        if (pause)
                manager_pause(manager_of(c));
        else
                manager_resume(manager_of(c));
        bus_server_emit_changed(manager_of(c)->bus, STRV_MAKE("Paused", "Status"));
        return sd_bus_reply_method_return(m, NULL);
}

/*
 * Properties are read through org.freedesktop.DBus.Properties: those calls
 * are authorized too. A getter called with no current message is building
 * PropertiesChanged, which goes to a connection, not to a caller.
 */
static int check_reader(BusConnection *c, sd_bus *bus, PeerCreds *ret_peer, sd_bus_error *error) {
        sd_bus_message *m = sd_bus_get_current_message(bus);
        int r;

        if (m)
                return check_caller(c, m, ret_peer, error);
        /*
         * On the system bus a signal reaches anyone: read as no one in particular, who sees
         * nothing of the whole host (and bus_server_emit_changed() leaves those figures out).
         */
        if (bus_connection_is_system(c)) {
                *ret_peer = (PeerCreds) { .uid = (uid_t) -1, .gid = (gid_t) -1, .pidfd = -EBADF };
                return 0;
        }
        /* On the private socket, the connection's peer. */
        r = bus_connection_caller(c, NULL, ret_peer);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "No single reader: %m");
        if (!may_call(ret_peer, manager_of(c)))
                return sd_bus_error_set(error, BUS_ERROR_ACCESS_DENIED, "Not a caller of this API");
        return 0;
}

static int deny_host_figures(const char *what, const PeerCreds *peer, sd_bus_error *error) {
        return sd_bus_error_setf(error, BUS_ERROR_ACCESS_DENIED,
                                 "%s covers every merge domain: root's only; uid %u gets the figures of its "
                                 "own regions from GetStatistics and ListRegions",
                                 what, (unsigned) peer->uid);
}

static int method_reload(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *message = NULL;
        BusConnection *c = userdata;
        PeerCreds peer;
        int r;

        r = check_operator(c, m, "call Reload", &peer, error);
        if (r < 0)
                return r;
        log_info("Reload asked for by uid %u.", (unsigned) peer.uid);
        r = manager_reload(manager_of(c), &message);
        if (r < 0)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_CONFIG, "%s", message ?: "out of memory");
        return sd_bus_reply_method_return(m, NULL);
}

/* What the kernel does, as host-probe.h asked it at start: a(ssss), (name, answer, seen, instead) each. */
static int append_host_kernel(sd_bus_message *reply, const HostProbe *p) {
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(ssss)");
        for (HostFeature f = 0; r >= 0 && f < _HOST_FEATURE_MAX; f++)
                r = sd_bus_message_append(reply, "(ssss)", host_feature_to_string(f),
                                          host_answer_to_string(p->answer[f]), p->seen[f],
                                          host_probe_instead(p, f));
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static int property_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusConnection *c = userdata;
        Manager *mgr = manager_of(c);
        PeerCreds peer;
        Stats st;
        int r;

        r = check_reader(c, bus, &peer, error);
        if (r < 0)
                return r;

        if (strcmp(property, "Version") == 0)
                return sd_bus_message_append(reply, "s", PACKAGE_VERSION);
        if (strcmp(property, "Mode") == 0)
                return sd_bus_message_append(reply, "s", manager_is_estimate(mgr) ? "estimate" : "merge");
        if (strcmp(property, "Paused") == 0)
                return sd_bus_message_append(reply, "b", mgr->paused);
        if (strcmp(property, "HelperVersion") == 0)
                return sd_bus_message_append(reply, "s", mgr->helper ? mgr->helper_info.module_version : "");
        if (strcmp(property, "KernelRelease") == 0)
                return sd_bus_message_append(reply, "s", mgr->host.release);
        if (strcmp(property, "HostKernel") == 0)
                return append_host_kernel(reply, &mgr->host);
        if (!sees_the_host(&peer))
                return deny_host_figures(property, &peer, error);
        if (strcmp(property, "Status") == 0) {
                char buf[256];

                manager_format_status(mgr, buf, sizeof(buf));
                return sd_bus_message_append(reply, "s", buf);
        }

        manager_get_stats(mgr, &st);
        if (strcmp(property, "FullScans") == 0)
                return sd_bus_message_append(reply, "t", st.full_scans);
        if (strcmp(property, "SavingBytes") == 0)
                return sd_bus_message_append(reply, "t", stats_saving_bytes(&st));
        if (strcmp(property, "TrackedPages") == 0)
                return sd_bus_message_append(reply, "t", st.tracked_pages);
        if (strcmp(property, "MetadataBytes") == 0)
                return sd_bus_message_append(reply, "t", st.metadata_bytes);
        return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_PROPERTY, "Unknown property %s", property);
}

/* The setting behind a property named after its key (settings.h), or NULL. */
static const Setting *setting_of_property(const char *property) {
        char buf[64];

        for (size_t i = 0; i < settings_table_size; i++)
                if (strcmp(setting_property_name(&settings_table[i], buf, sizeof(buf)), property) == 0)
                        return &settings_table[i];
        return NULL;
}

static int property_get_setting(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusConnection *c = userdata;
        const Settings *s = &manager_of(c)->settings;
        const Setting *t = setting_of_property(property);
        PeerCreds peer;
        int r;

        r = check_reader(c, bus, &peer, error);
        if (r < 0)
                return r;
        if (!t)
                return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_PROPERTY, "Unknown property %s",
                                         property);
        switch (t->kind) {
        case SETTING_GROUP:
                return sd_bus_message_append(reply, "u", (uint32_t) setting_get_group(t, s));
        case SETTING_GROUPS:
        case SETTING_USERS: {
                size_t n;
                const void *ids = setting_get_list(t, s, &n);

                return sd_bus_message_append_array(reply, 'u', ids, n * sizeof(uint32_t));
        }
        case SETTING_CGROUP_PATTERNS:
        case SETTING_EXECUTABLE_PATTERNS: {
                size_t n;
                char *const *l = setting_get_list(t, s, &n);

                r = sd_bus_message_open_container(reply, 'a', "s");
                for (size_t i = 0; r >= 0 && i < n; i++)
                        r = sd_bus_message_append(reply, "s", l[i]);
                return r < 0 ? r : sd_bus_message_close_container(reply);
        }
        case SETTING_ENUM:
                return sd_bus_message_append(reply, "s", setting_get_enum_name(t, s));
        case SETTING_SIZE_OR_PERCENT: {
                char buf[32];
                uint64_t v = setting_get_number(t, s);

                return sd_bus_message_append(reply, "s", setting_format_number(t, v, buf, sizeof(buf)));
        }
        default:
                return sd_bus_message_append(reply, "t", setting_get_number(t, s));
        }
}

/* Root or an operator changes a number until the next reload, within the range settings_table gives. */
static int property_set_setting(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *value, void *userdata, sd_bus_error *error) {
        _cleanup_(settings_done) Settings s = {};
        _cleanup_free_ char *reason = NULL;
        BusConnection *c = userdata;
        Manager *mgr = manager_of(c);
        const Setting *t = setting_of_property(property);
        PeerCreds peer;
        char what[96], text[32];
        uint64_t v;
        int r;

        snprintf(what, sizeof(what), "change %s", property);
        r = check_operator(c, sd_bus_get_current_message(bus), what, &peer, error);
        if (r < 0)
                return r;
        if (!t || !(t->flags & SETTING_WRITABLE))
                return sd_bus_error_setf(error, SD_BUS_ERROR_PROPERTY_READ_ONLY, "%s cannot be changed",
                                         property);
        r = settings_copy(&s, &mgr->settings);
        if (r < 0)
                return r;
        if (t->kind == SETTING_SIZE_OR_PERCENT) {
                /* A size or a percentage, written as in ksmd.conf ("512M", "10%", "off"). */
                const char *written;

                r = sd_bus_message_read(value, "s", &written);
                if (r < 0)
                        return r;
                r = setting_parse(t, &s, written, &reason);
                if (r == -ENOMEM)
                        return r;
                v = setting_get_number(t, &s);
                if (r < 0 || setting_check_number(t, v, &reason) < 0) {
                        char range[128];

                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "%s: %s; %s= takes %s",
                                                 property, reason ?: "invalid", t->key,
                                                 setting_format_range(t, range, sizeof(range)));
                }
        } else {
                r = sd_bus_message_read(value, "t", &v);
                if (r < 0)
                        return r;
                if (setting_check_number(t, v, &reason) < 0) {
                        char range[96];

                        /* Over D-Bus a time span is a number of microseconds, not "20ms". */
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "%s: %" PRIu64 "%s is out of range; %s= takes %s",
                                                 property, v, t->kind == SETTING_TIME ? " us" : "", t->key,
                                                 setting_format_range(t, range, sizeof(range)));
                }
                setting_set_number(t, &s, v);
        }
        r = manager_apply_settings(mgr, &s);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot apply %s: %m", property);
        log_info("%s set to %s by uid %u until the next reload.", property,
                 setting_format_number(t, v, text, sizeof(text)), (unsigned) peer.uid);
        return 0;
}

static const sd_bus_vtable manager_vtable_head[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Mode", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Paused", "b", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("HelperVersion", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("KernelRelease", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("HostKernel", "a(ssss)", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Status", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("FullScans", "t", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("SavingBytes", "t", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("TrackedPages", "t", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MetadataBytes", "t", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("RegisterRange",
                                SD_BUS_ARGS("u", pid, "t", start, "t", length),
                                SD_BUS_RESULT("u", id),
                                method_register_range, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RegisterRangeByPIDFD",
                                SD_BUS_ARGS("h", pidfd, "t", start, "t", length, "a{sv}", options),
                                SD_BUS_RESULT("u", id),
                                method_register_range_pidfd, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RegisterProcess",
                                SD_BUS_ARGS("u", pid),
                                SD_BUS_RESULT("u", id),
                                method_register_process, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RegisterProcessByPIDFD",
                                SD_BUS_ARGS("h", pidfd, "a{sv}", options),
                                SD_BUS_RESULT("u", id),
                                method_register_process_pidfd, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Unregister",
                                SD_BUS_ARGS("u", id),
                                SD_BUS_NO_RESULT,
                                method_unregister, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Unmerge",
                                SD_BUS_ARGS("u", id),
                                SD_BUS_RESULT("t", pages),
                                method_unmerge, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListRegions",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(uusbttssa{st})", regions),
                                method_list_regions, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListDomains",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(usa{st})", domains),
                                method_list_domains, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetStatistics",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a{st}", statistics),
                                method_get_statistics, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Pause", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_set_paused,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Resume", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_set_paused,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reload", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_reload,
                                SD_BUS_VTABLE_UNPRIVILEGED),
};

/* Settings that apply at start are not properties: Mode (above) says what runs. */
static bool setting_is_property(const Setting *t) {
        return !(t->flags & SETTING_AT_START);
}

/*
 * The vtable: the fixed part above, then one property per setting, named
 * and typed by settings_table, so a new setting is a property with no
 * change here. Built once; its names live as long as the program.
 */
static char (*setting_property_names)[64];

static const sd_bus_vtable *manager_vtable(void) {
        static sd_bus_vtable *vtable;
        size_t n = ELEMENTSOF(manager_vtable_head);
        char (*names)[64];

        if (vtable)
                return vtable;
        vtable = calloc(n + settings_table_size + 1, sizeof(sd_bus_vtable));
        names = calloc(settings_table_size, sizeof(*names));
        if (!vtable || !names) {
                free(vtable);
                free(names);
                vtable = NULL;
                return NULL;
        }
        memcpy(vtable, manager_vtable_head, sizeof(manager_vtable_head));
        for (size_t i = 0; i < settings_table_size; i++) {
                const Setting *t = &settings_table[i];

                if (!setting_is_property(t))
                        continue;
                setting_property_name(t, names[i], sizeof(names[i]));
                if (t->flags & SETTING_WRITABLE)
                        vtable[n++] = (sd_bus_vtable) SD_BUS_WRITABLE_PROPERTY(
                                names[i], setting_property_type(t), property_get_setting,
                                property_set_setting, 0,
                                SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE | SD_BUS_VTABLE_UNPRIVILEGED);
                else
                        vtable[n++] = (sd_bus_vtable) SD_BUS_PROPERTY(names[i], setting_property_type(t),
                                                                      property_get_setting, 0,
                                                                      SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE);
        }
        vtable[n] = (sd_bus_vtable) SD_BUS_VTABLE_END;
        setting_property_names = names;
        return vtable;
}

/*
 * The statistics, and Status that sums them up: on the system bus they are not
 * broadcast, since any local user may receive a broadcast; the rest (the mode,
 * Paused, the helper's version and the settings, which ksmd.conf holds for
 * anyone to read) is.
 */
static const char *const statistics_properties[] = {
        "Status", "FullScans", "SavingBytes", "TrackedPages", "MetadataBytes", NULL,
};

void manager_bus_emit_scan_done(Manager *m) {
        bus_server_emit_changed(m->bus, STRV_MAKE("FullScans", "SavingBytes", "TrackedPages",
                                                  "MetadataBytes", "Status", "Mode", "HelperVersion"));
}

void manager_bus_emit_settings(Manager *m) {
        _cleanup_free_ char **names = NULL;
        size_t n = 0;

        if (!m->bus || !setting_property_names)
                return;
        names = calloc(settings_table_size + 2, sizeof(char *));
        if (!names)
                return;
        for (size_t i = 0; i < settings_table_size; i++)
                if (setting_is_property(&settings_table[i]))
                        names[n++] = setting_property_names[i];
        names[n++] = (char *) "Status";
        bus_server_emit_changed(m->bus, names);
}

int manager_bus_serve(Manager *m) {
        const sd_bus_vtable *vtable = manager_vtable();
        int listen_fd = -EBADF, n, r;

        if (!vtable)
                return log_oom();
        /* Socket activation (ksmd.socket) hands us the listening socket. */
        n = sd_listen_fds(true);
        if (n < 0)
                return log_error_errno(n, "Failed to read the sockets passed by systemd: %m");
        if (n > 1)
                return log_error_errno(-EINVAL,
                                       "systemd passed %d sockets; ksmd.socket must list exactly one.", n);
        if (n == 1)
                listen_fd = SD_LISTEN_FDS_START;
        r = bus_server_new(m->event, m->settings.socket_path, listen_fd, m->settings.socket_group,
                           &(BusLimits) { .max_connections = m->settings.max_connections,
                                          .max_connections_per_user = m->settings.max_connections_per_user },
                           &(BusObject) { .path = BUS_OBJECT_PATH, .interface = BUS_INTERFACE,
                                          .vtable = vtable, .userdata = m, .may_connect = may_call,
                                          .system_bus_quiet = statistics_properties },
                           &m->bus);
        if (r < 0)
                return log_error_errno(r, "Failed to serve the D-Bus API on %s: %m",
                                       m->settings.socket_path);
        if (m->settings.system_bus) {
                r = bus_server_attach_system_bus(m->bus, BUS_WELL_KNOWN_NAME);
                if (r < 0)
                        log_warning_errno(r,
                                          "SystemBus=yes, but ksmd cannot take %s on the system bus (%m); "
                                          "serving only %s.",
                                          BUS_WELL_KNOWN_NAME, m->settings.socket_path);
        }
        log_info("D-Bus API %s served on %s.", BUS_INTERFACE,
                 listen_fd >= 0 ? "the socket from systemd" : m->settings.socket_path);
        return 0;
}
