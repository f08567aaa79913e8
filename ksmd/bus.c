/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-id128.h>

#include "build-config.h"
#include "bus-auth.h"
#include "bus.h"
#include "helper-client.h"
#include "log.h"
#include "pidfd-util.h"
#include "proc-process.h"
#include "stats.h"

/* Who registered which region, for per-caller limits and ownership checks. */
typedef struct RegionOwner {
        uint32_t id;
        uid_t uid;
} RegionOwner;

typedef struct BusConnection {
        BusServer *server;
        sd_bus *bus;
        bool system_bus;               /* credentials come with each message */
        PeerCreds peer;                /* private socket: from accept time */
} BusConnection;

struct BusServer {
        Manager *manager;
        int listen_fd;
        sd_event_source *listen_source;
        sd_event_source *post_source;  /* drains what sd-bus left unprocessed, see on_post() */
        char *socket_path;             /* unlinked on free when we created it */
        sd_id128_t server_id;

        BusConnection **connections;
        size_t n_connections;
        BusConnection *system;         /* the system bus connection, if SystemBus=yes */

        unsigned max_connections;
        unsigned max_regions_per_client;
        gid_t *allow_gids;
        size_t n_allow_gids;

        RegionOwner *owners;
        size_t n_owners;

        BusReloadHandler reload;
        void *reload_userdata;
};

static void owners_prune(BusServer *s) {
        RegionRegistry *reg = manager_get_registry(s->manager);
        size_t j = 0;

        /* Regions disappear with their processes; forget their owners too. */
        for (size_t i = 0; i < s->n_owners; i++)
                if (region_registry_find(reg, s->owners[i].id))
                        s->owners[j++] = s->owners[i];
        s->n_owners = j;
}

static const RegionOwner *owner_find(BusServer *s, uint32_t id) {
        for (size_t i = 0; i < s->n_owners; i++)
                if (s->owners[i].id == id)
                        return &s->owners[i];
        return NULL;
}

static size_t owner_count(BusServer *s, uid_t uid) {
        size_t n = 0;

        for (size_t i = 0; i < s->n_owners; i++)
                if (s->owners[i].uid == uid)
                        n++;
        return n;
}

static int owner_add(BusServer *s, uint32_t id, uid_t uid) {
        RegionOwner *o;

        o = realloc(s->owners, (s->n_owners + 1) * sizeof(*o));
        if (!o)
                return -ENOMEM;
        s->owners = o;
        s->owners[s->n_owners++] = (RegionOwner) { .id = id, .uid = uid };
        return 0;
}

/* A region is visible to and changeable by root and by the uid that registered it. */
static bool may_see_region(BusServer *s, const PeerCreds *peer, uint32_t id) {
        const RegionOwner *o;

        if (peer->uid == 0)
                return true;
        o = owner_find(s, id);
        return o && o->uid == peer->uid;
}

/*
 * The system bus daemon vouches for the sender's uid, pid and groups
 * (GetConnectionCredentials); the primary gid is not among them, so it is
 * read from /proc for the pid the bus reported (SD_BUS_CREDS_AUGMENT).
 */
static int sender_creds(sd_bus_message *m, PeerCreds *ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const gid_t *gids = NULL;
        PeerCreds p = {};
        int r, n;

        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_PID | SD_BUS_CREDS_UID | SD_BUS_CREDS_GID |
                                      SD_BUS_CREDS_SUPPLEMENTARY_GIDS | SD_BUS_CREDS_AUGMENT, &creds);
        if (r < 0)
                return r;
        r = sd_bus_creds_get_uid(creds, &p.uid);
        if (r >= 0)
                r = sd_bus_creds_get_pid(creds, &p.pid);
        if (r < 0)
                return r;
        if (sd_bus_creds_get_gid(creds, &p.gid) < 0)
                p.gid = (gid_t) -1; /* matches no group and no process */
        n = sd_bus_creds_get_supplementary_gids(creds, &gids);
        if (n > 0) {
                p.n_groups = MIN((size_t) n, (size_t) BUS_AUTH_MAX_GROUPS);
                memcpy(p.groups, gids, p.n_groups * sizeof(gid_t));
        }
        if (proc_read_cap_permitted(p.pid, &p.cap_permitted) < 0)
                p.cap_permitted = 0;
        *ret = p;
        return 0;
}

/* Who is calling, and may they call at all. */
static int check_caller(BusConnection *c, sd_bus_message *m, PeerCreds *ret, sd_bus_error *error) {
        int r;

        if (c->system_bus) {
                r = sender_creds(m, ret);
                if (r < 0)
                        return sd_bus_error_set_errnof(error, r, "Cannot learn the caller's credentials: %m");
        } else
                *ret = c->peer;

        if (bus_auth_may_call(ret, c->server->allow_gids, c->server->n_allow_gids))
                return 0;
        return sd_bus_error_setf(error, BUS_ERROR_ACCESS_DENIED,
                                 "uid %u (pid %d) is neither root nor a member of a group in AllowGroups= of ksmd.conf",
                                 (unsigned) ret->uid, (int) ret->pid);
}

static int check_target(const PeerCreds *peer, pid_t pid, sd_bus_error *error) {
        const char *reason = NULL;
        TargetIds t;
        int yama = 0, r;

        if (peer->uid == 0)
                return 0;

        r = proc_read_target_ids(pid, &t);
        if (r == -ESRCH || r == -ENOENT)
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_PROCESS, "No process with pid %d", (int) pid);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot read the credentials of process %d: %m", (int) pid);
        (void) proc_read_yama_scope(&yama);
        if (yama == 1) {
                r = proc_is_descendant(peer->pid, pid);
                t.descends_from_caller = r > 0;
        }
        if (bus_auth_may_access(peer, &t, yama, &reason) < 0)
                return sd_bus_error_setf(error, BUS_ERROR_ACCESS_DENIED,
                                         "uid %u may not register memory of process %d: %s",
                                         (unsigned) peer->uid, (int) pid, reason);
        return 0;
}

static void emit_all(BusServer *s, const char *first, ...);

static int map_register_error(int r, pid_t pid, sd_bus_error *error) {
        switch (r) {
        case -EINVAL:
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "start and length must be page aligned, length non-zero, and the range must not wrap");
        case -ESRCH:
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_PROCESS, "No process with pid %d", (int) pid);
        case -EEXIST:
                return sd_bus_error_setf(error, BUS_ERROR_ALREADY_REGISTERED,
                                         "The range overlaps a region already registered for process %d", (int) pid);
        case -ENOSPC:
                return sd_bus_error_setf(error, BUS_ERROR_LIMIT_EXCEEDED,
                                         "The daemon holds as many regions as it may (MaxRegions= in ksmd.conf)");
        default:
                return sd_bus_error_set_errnof(error, r, "Failed to register process %d: %m", (int) pid);
        }
}

/*
 * Registers after every check. pidfd (the caller's, or one we open) pins the
 * identity: if the process is still alive after registration, the pid the
 * manager registered is the process whose credentials were checked, since a
 * pid is not reused while its process lives.
 */
static int do_register(BusConnection *c, sd_bus_message *m, pid_t pid, int caller_pidfd, bool whole,
                       uint64_t start, uint64_t length, const char *name, sd_bus_error *error) {
        BusServer *s = c->server;
        _cleanup_close_ int own_pidfd = -EBADF;
        int pidfd = caller_pidfd;
        PeerCreds peer;
        uint32_t id;
        int r;

        r = check_caller(c, m, &peer, error);
        if (r < 0)
                return r;
        if (pid <= 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "pid must be positive, got %d", (int) pid);

        if (pidfd < 0) {
                own_pidfd = pidfd_open_pid(pid);
                if (own_pidfd < 0)
                        return own_pidfd == -ESRCH ?
                                sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_PROCESS, "No process with pid %d", (int) pid) :
                                sd_bus_error_set_errnof(error, -own_pidfd, "Cannot open process %d: %m", (int) pid);
                pidfd = own_pidfd;
        }

        r = check_target(&peer, pid, error);
        if (r < 0)
                return r;

        owners_prune(s);
        if (peer.uid != 0 && owner_count(s, peer.uid) >= s->max_regions_per_client)
                return sd_bus_error_setf(error, BUS_ERROR_LIMIT_EXCEEDED,
                                         "uid %u already has %u regions registered (MaxRegionsPerClient= in ksmd.conf)",
                                         (unsigned) peer.uid, s->max_regions_per_client);

        r = manager_register_named(s->manager, pid, whole, start, length, name, &id);
        if (r < 0)
                return map_register_error(r, pid, error);

        if (pidfd_is_alive(pidfd) <= 0) {
                (void) manager_unregister(s->manager, id);
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_PROCESS, "Process %d exited during registration",
                                         (int) pid);
        }
        r = owner_add(s, id, peer.uid);
        if (r < 0) {
                (void) manager_unregister(s->manager, id);
                return r;
        }

        log_debug("Region %u (%s of process %d%s%s) belongs to uid %u.", id, whole ? "all private memory" : "a range",
                  (int) pid, name ? ", named " : "", name ?: "", (unsigned) peer.uid);
        return sd_bus_reply_method_return(m, "u", id);
}

static int method_register_range(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        uint64_t start, length;
        uint32_t pid;
        int r;

        r = sd_bus_message_read(m, "utt", &pid, &start, &length);
        if (r < 0)
                return r;
        return do_register(userdata, m, (pid_t) pid, -EBADF, false, start, length, NULL, error);
}

static int method_register_process(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        uint32_t pid;
        int r;

        r = sd_bus_message_read(m, "u", &pid);
        if (r < 0)
                return r;
        return do_register(userdata, m, (pid_t) pid, -EBADF, true, 0, 0, NULL, error);
}

static int read_pidfd(sd_bus_message *m, int *ret_fd, pid_t *ret_pid, sd_bus_error *error) {
        pid_t pid;
        int fd, r;

        r = sd_bus_message_read(m, "h", &fd);
        if (r < 0)
                return r;
        r = proc_pidfd_get_pid(fd, &pid);
        if (r == -ESRCH)
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_PROCESS, "The process of the pidfd has exited");
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "The file descriptor is not a pidfd");
        *ret_fd = fd;
        *ret_pid = pid;
        return 0;
}

/* The options of the ...ByPIDFD methods, an a{sv}; org.ksmd.Manager1(5) lists them. */
typedef struct RegisterOptions {
        const char *name;              /* borrowed from the message; NULL if not given */
} RegisterOptions;

static int read_option_name(sd_bus_message *m, RegisterOptions *o, sd_bus_error *error) {
        const char *contents = NULL, *name;
        size_t n;
        int r;

        if (o->name)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Option Name is given more than once");
        r = sd_bus_message_peek_type(m, NULL, &contents);
        if (r < 0)
                return r;
        if (!contents || strcmp(contents, "s") != 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Option Name must be a string (variant type s), not of type %s",
                                         contents ?: "?");
        r = sd_bus_message_read(m, "v", "s", &name);
        if (r < 0)
                return r;
        n = strlen(name);
        if (n == 0 || n > REGION_NAME_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Option Name must be 1..%u characters long, got %zu", REGION_NAME_MAX, n);
        if (!region_name_is_valid(name)) {
                size_t i = 0;

                while (name[i] >= 0x20 && name[i] <= 0x7e)
                        i++;
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Option Name may hold only printable ASCII characters; byte %zu is 0x%02x",
                                         i + 1, (unsigned) (unsigned char) name[i]);
        }
        o->name = name;
        return 0;
}

/* Reads the options dictionary; an unknown key or a bad value is InvalidArgs, naming the key. */
static int read_register_options(sd_bus_message *m, RegisterOptions *ret, sd_bus_error *error) {
        RegisterOptions o = {};
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (;;) {
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
                else
                        r = sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                              "Unknown option \"%.64s\"%s; the known option is Name", key,
                                              strlen(key) > 64 ? "..." : "");
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
        return do_register(userdata, m, pid, fd, false, start, length, o.name, error);
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
        return do_register(userdata, m, pid, fd, true, 0, 0, o.name, error);
}

/* Reads a region id the caller may see; 0 and *ret_id, or a NoSuchRegion error. */
static int read_region(BusConnection *c, sd_bus_message *m, const PeerCreds *peer, uint32_t *ret_id,
                       sd_bus_error *error) {
        uint32_t id;
        int r;

        r = sd_bus_message_read(m, "u", &id);
        if (r < 0)
                return r;
        owners_prune(c->server);
        if (!region_registry_find(manager_get_registry(c->server->manager), id) || !may_see_region(c->server, peer, id))
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_REGION,
                                         "No region %u registered by uid %u (see ListRegions)", id, (unsigned) peer->uid);
        *ret_id = id;
        return 0;
}

static int method_unregister(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusConnection *c = userdata;
        PeerCreds peer;
        uint32_t id;
        int r;

        r = check_caller(c, m, &peer, error);
        if (r < 0)
                return r;
        r = read_region(c, m, &peer, &id, error);
        if (r < 0)
                return r;
        r = manager_unregister(c->server->manager, id);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to unregister region %u: %m", id);
        owners_prune(c->server);
        log_debug("Region %u unregistered by uid %u.", id, (unsigned) peer.uid);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_unmerge(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusConnection *c = userdata;
        uint64_t pages = 0;
        PeerCreds peer;
        uint32_t id;
        int r;

        r = check_caller(c, m, &peer, error);
        if (r < 0)
                return r;
        r = read_region(c, m, &peer, &id, error);
        if (r < 0)
                return r;
        r = manager_unmerge_region(c->server->manager, id, &pages);
        if (r == -EOPNOTSUPP)
                return sd_bus_error_setf(error, BUS_ERROR_NOT_SUPPORTED,
                                         "ksmd runs in estimate mode: nothing was merged, so there is nothing to unmerge");
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to unmerge region %u: %m", id);
        owners_prune(c->server);
        emit_all(c->server, "SavingBytes", "Status", NULL);
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
        return 0;
}

static int method_list_regions(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        BusConnection *c = userdata;
        RegionRegistry *reg = manager_get_registry(c->server->manager);
        PeerCreds peer;
        int r;

        r = check_caller(c, m, &peer, error);
        if (r < 0)
                return r;
        owners_prune(c->server);

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(uusbttssa{st})");
        if (r < 0)
                return r;
        for (Region *region = region_registry_next(reg, 0); region; region = region_registry_next(reg, region->id + 1)) {
                if (!may_see_region(c->server, &peer, region->id))
                        continue;
                r = sd_bus_message_open_container(reply, 'r', "uusbttssa{st}");
                if (r < 0)
                        return r;
                r = sd_bus_message_append(reply, "uusbttss", region->id, (uint32_t) region->pid, region->name,
                                          region->whole_process, region->start,
                                          region->whole_process ? 0 : region->end - region->start,
                                          region->note, region->merge_note);
                if (r < 0)
                        return r;
                r = sd_bus_message_open_container(reply, 'a', "{st}");
                if (r < 0)
                        return r;
                r = append_counters(reply, &region->last);
                if (r < 0)
                        return r;
                r = sd_bus_message_append(reply, "{st}", "pages", region_pages(region));
                if (r < 0)
                        return r;
                for (int i = 0; i < __KSMD_HELPER_RESULT_MAX; i++) {
                        char name[64];

                        snprintf(name, sizeof(name), "merge_%s", helper_result_to_string((uint32_t) i));
                        r = sd_bus_message_append(reply, "{st}", name, region->merge_results[i]);
                        if (r < 0)
                                return r;
                }
                r = sd_bus_message_close_container(reply);
                if (r < 0)
                        return r;
                r = sd_bus_message_close_container(reply);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_get_statistics(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        BusConnection *c = userdata;
        PeerCreds peer;
        Stats st;
        int r;

        r = check_caller(c, m, &peer, error);
        if (r < 0)
                return r;
        manager_get_stats(c->server->manager, &st);

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "{st}");
        if (r < 0)
                return r;
        r = append_counters(reply, &st.last);
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "{st}{st}{st}{st}{st}{st}{st}{st}{st}",
                                  "full_scans", st.full_scans,
                                  "last_full_scan_usec", st.last_full_scan_usec,
                                  "current_scan_pages", st.current_scan_pages,
                                  "tracked_pages", st.tracked_pages,
                                  "metadata_bytes", st.metadata_bytes,
                                  "merge_requests", st.merge.requests,
                                  "merge_items", st.merge.items,
                                  "merge_retries", st.merge.retries,
                                  "merge_estimated", st.merge.estimated);
        if (r < 0)
                return r;
        for (int i = 0; i < __KSMD_HELPER_RESULT_MAX; i++) {
                char name[64];

                snprintf(name, sizeof(name), "merge_%s", helper_result_to_string((uint32_t) i));
                r = sd_bus_message_append(reply, "{st}", name, st.merge.by_result[i]);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* Pause() and Resume(). */
static int method_set_paused(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusConnection *c = userdata;
        PeerCreds peer;
        int r;

        r = check_caller(c, m, &peer, error);
        if (r < 0)
                return r;
        if (strcmp(sd_bus_message_get_member(m), "Pause") == 0)
                manager_pause(c->server->manager);
        else
                manager_resume(c->server->manager);
        emit_all(c->server, "Paused", "Status", NULL);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_reload(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusConnection *c = userdata;
        PeerCreds peer;
        int r;

        r = check_caller(c, m, &peer, error);
        if (r < 0)
                return r;
        if (peer.uid != 0)
                return sd_bus_error_setf(error, BUS_ERROR_ACCESS_DENIED, "Only root may reload the configuration");
        if (!c->server->reload)
                return sd_bus_error_setf(error, BUS_ERROR_NOT_SUPPORTED, "This daemon was started without a configuration to reload");
        r = c->server->reload(c->server->reload_userdata, error);
        if (r < 0)
                return r;
        emit_all(c->server, "PagesPerBatch", "SleepUSec", "Mode", NULL);
        return sd_bus_reply_method_return(m, NULL);
}

static int property_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusConnection *c = userdata;
        Manager *mgr = c->server->manager;
        PeerCreds peer;
        Stats st;
        int r;

        /* Properties are read through org.freedesktop.DBus.Properties: authorize those calls too. */
        r = check_caller(c, sd_bus_get_current_message(bus), &peer, error);
        if (r < 0)
                return r;

        if (strcmp(property, "Version") == 0)
                return sd_bus_message_append(reply, "s", PACKAGE_VERSION);
        if (strcmp(property, "Mode") == 0)
                return sd_bus_message_append(reply, "s", manager_is_estimate(mgr) ? "estimate" : "merge");
        if (strcmp(property, "Paused") == 0)
                return sd_bus_message_append(reply, "b", manager_is_paused(mgr));
        if (strcmp(property, "HelperVersion") == 0)
                return sd_bus_message_append(reply, "s", manager_get_helper_version(mgr));
        if (strcmp(property, "Status") == 0) {
                char buf[256];

                manager_format_status(mgr, buf, sizeof(buf));
                return sd_bus_message_append(reply, "s", buf);
        }

        manager_get_stats(mgr, &st);
        if (strcmp(property, "PagesPerBatch") == 0)
                return sd_bus_message_append(reply, "t", st.pages_per_batch);
        if (strcmp(property, "SleepUSec") == 0)
                return sd_bus_message_append(reply, "t", st.sleep_usec);
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

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Mode", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Paused", "b", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("HelperVersion", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PagesPerBatch", "t", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("SleepUSec", "t", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
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
        SD_BUS_VTABLE_END
};

static void connection_free(BusConnection *c) {
        if (!c)
                return;
        if (c->bus) {
                sd_bus_detach_event(c->bus);
                sd_bus_flush_close_unref(c->bus);
        }
        free(c);
}

static void connection_remove(BusServer *s, BusConnection *c) {
        for (size_t i = 0; i < s->n_connections; i++)
                if (s->connections[i] == c) {
                        s->connections[i] = s->connections[--s->n_connections];
                        break;
                }
        connection_free(c);
}

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusConnection *c = userdata;

        log_debug("Control connection of uid %u (pid %d) closed.", (unsigned) c->peer.uid, (int) c->peer.pid);
        /* sd_bus_process() holds its own reference to the bus while it dispatches. */
        connection_remove(c->server, c);
        return 0;
}

static void emit_all(BusServer *s, const char *first, ...) {
        char *names[16];
        size_t n = 0;
        va_list ap;

        va_start(ap, first);
        for (const char *p = first; p && n < ELEMENTSOF(names) - 1; p = va_arg(ap, const char *))
                names[n++] = (char *) p;
        va_end(ap);
        names[n] = NULL;

        for (size_t i = 0; i < s->n_connections; i++)
                (void) sd_bus_emit_properties_changed_strv(s->connections[i]->bus, BUS_OBJECT_PATH,
                                                           BUS_INTERFACE, names);
        if (s->system)
                (void) sd_bus_emit_properties_changed_strv(s->system->bus, BUS_OBJECT_PATH, BUS_INTERFACE, names);
}

void bus_server_emit_changed(BusServer *s) {
        if (s)
                emit_all(s, "FullScans", "SavingBytes", "TrackedPages", "MetadataBytes", "Status", "Mode",
                         "HelperVersion", NULL);
}

/*
 * A client that sends BEGIN and its first call in one write (dbus-send
 * --peer does) leaves the call in sd-bus's read buffer once authentication
 * completes; sd-bus's event integration processes one step per wake-up and
 * would then sleep on a socket with nothing more to read. After every
 * event-loop iteration, run each connection until it has nothing to do.
 */
static int on_post(sd_event_source *source, void *userdata) {
        BusServer *s = userdata;

        /* Downwards: a connection that closes removes only itself, swapping in an element already done. */
        for (size_t i = s->n_connections; i > 0; i--) {
                sd_bus *bus = sd_bus_ref(s->connections[i - 1]->bus);

                while (sd_bus_process(bus, NULL) > 0)
                        ;
                sd_bus_unref(bus);
        }
        return 0;
}

static int read_peer(int fd, PeerCreds *ret) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        gid_t groups[BUS_AUTH_MAX_GROUPS];
        PeerCreds p = {};

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return -errno;
        p.pid = cred.pid;
        p.uid = cred.uid;
        p.gid = cred.gid;

        len = sizeof(groups);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0) {
                p.n_groups = len / sizeof(gid_t);
                memcpy(p.groups, groups, p.n_groups * sizeof(gid_t));
        } else if (errno != ERANGE)
                return -errno;
        /* With more than BUS_AUTH_MAX_GROUPS groups only the primary group counts. */

        /* Capabilities only widen what a caller may access; unknown means none. */
        if (proc_read_cap_permitted(p.pid, &p.cap_permitted) < 0)
                p.cap_permitted = 0;

        *ret = p;
        return 0;
}

static int on_connection(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        BusServer *s = userdata;
        _cleanup_close_ int nfd = -EBADF;
        BusConnection *c = NULL, **l;
        PeerCreds peer;
        int r;

        nfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (nfd < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_warning_errno(errno, "Failed to accept a control connection: %m");
                return 0;
        }

        r = read_peer(nfd, &peer);
        if (r < 0) {
                log_warning_errno(r, "Failed to read the credentials of a control connection, closing it: %m");
                return 0;
        }
        if (s->n_connections >= s->max_connections) {
                log_warning("Refusing a control connection of uid %u (pid %d): %u are open (MaxConnections= in ksmd.conf).",
                            (unsigned) peer.uid, (int) peer.pid, s->max_connections);
                return 0;
        }

        c = calloc(1, sizeof(*c));
        if (!c)
                return log_oom();
        c->server = s;
        c->peer = peer;

        r = sd_bus_new(&c->bus);
        if (r < 0)
                goto fail;
        r = sd_bus_set_fd(c->bus, nfd, nfd);
        if (r < 0)
                goto fail;
        TAKE_FD(nfd);
        r = sd_bus_set_server(c->bus, 1, s->server_id);
        if (r < 0)
                goto fail;
        r = sd_bus_negotiate_fds(c->bus, 1);
        if (r < 0)
                goto fail;
        r = sd_bus_add_object_vtable(c->bus, NULL, BUS_OBJECT_PATH, BUS_INTERFACE, manager_vtable, c);
        if (r < 0)
                goto fail;
        r = sd_bus_match_signal(c->bus, NULL, "org.freedesktop.DBus.Local", "/org/freedesktop/DBus/Local",
                                "org.freedesktop.DBus.Local", "Disconnected", on_disconnected, c);
        if (r < 0)
                goto fail;
        /* Started before it is attached, as systemd's private socket does (src/core/dbus.c). */
        r = sd_bus_start(c->bus);
        if (r < 0)
                goto fail;
        r = sd_bus_attach_event(c->bus, manager_get_event(s->manager), SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                goto fail;

        l = realloc(s->connections, (s->n_connections + 1) * sizeof(*l));
        if (!l) {
                r = -ENOMEM;
                goto fail;
        }
        s->connections = l;
        s->connections[s->n_connections++] = c;
        log_debug("Control connection of uid %u (pid %d) accepted.", (unsigned) peer.uid, (int) peer.pid);
        return 0;

fail:
        log_warning_errno(r, "Failed to set up a control connection of uid %u (pid %d): %m", (unsigned) peer.uid,
                          (int) peer.pid);
        connection_free(c);
        return 0;
}

static int listen_on(const char *path, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_free_ char *dir = NULL;
        char *slash;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);

        dir = strdup(path);
        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (slash && slash != dir) {
                *slash = '\0';
                if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                        return -errno;
        }

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        (void) unlink(path);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        /* Anyone may connect; every call is authorized from the peer's credentials. */
        if (chmod(path, 0666) < 0)
                return -errno;
        if (listen(fd, SOMAXCONN) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int bus_server_set_config(BusServer *s, const BusConfig *config) {
        gid_t *g = NULL;

        if (config->n_allow_gids > 0) {
                g = malloc(config->n_allow_gids * sizeof(gid_t));
                if (!g)
                        return -ENOMEM;
                memcpy(g, config->allow_gids, config->n_allow_gids * sizeof(gid_t));
        }
        free(s->allow_gids);
        s->allow_gids = g;
        s->n_allow_gids = config->n_allow_gids;
        s->max_connections = config->max_connections;
        s->max_regions_per_client = config->max_regions_per_client;
        return 0;
}

int bus_server_new(Manager *m, const char *socket_path, int listen_fd, const BusConfig *config,
                   BusReloadHandler reload, void *reload_userdata, BusServer **ret) {
        _cleanup_(bus_server_freep) BusServer *s = NULL;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s) {
                safe_close(listen_fd);
                return -ENOMEM;
        }
        s->manager = m;
        s->listen_fd = -EBADF;
        s->reload = reload;
        s->reload_userdata = reload_userdata;

        r = bus_server_set_config(s, config);
        if (r < 0) {
                safe_close(listen_fd);
                return r;
        }
        r = sd_id128_randomize(&s->server_id);
        if (r < 0) {
                safe_close(listen_fd);
                return r;
        }

        if (listen_fd >= 0)
                s->listen_fd = listen_fd;
        else {
                r = listen_on(socket_path, &s->listen_fd);
                if (r < 0)
                        return r;
                s->socket_path = strdup(socket_path);
                if (!s->socket_path)
                        return -ENOMEM;
        }

        r = sd_event_add_io(manager_get_event(m), &s->listen_source, s->listen_fd, EPOLLIN, on_connection, s);
        if (r < 0)
                return r;
        r = sd_event_add_post(manager_get_event(m), &s->post_source, on_post, s);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

int bus_server_attach_system_bus(BusServer *s) {
        BusConnection *c;
        int r;

        if (s->system)
                return 0;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->server = s;
        c->system_bus = true;

        r = sd_bus_open_system(&c->bus);
        if (r >= 0)
                r = sd_bus_add_object_vtable(c->bus, NULL, BUS_OBJECT_PATH, BUS_INTERFACE, manager_vtable, c);
        if (r >= 0)
                r = sd_bus_request_name(c->bus, BUS_WELL_KNOWN_NAME, 0);
        if (r >= 0)
                r = sd_bus_attach_event(c->bus, manager_get_event(s->manager), SD_EVENT_PRIORITY_NORMAL);
        if (r < 0) {
                connection_free(c);
                return r;
        }
        s->system = c;
        return 0;
}

BusServer *bus_server_free(BusServer *s) {
        if (!s)
                return NULL;
        connection_free(s->system);
        while (s->n_connections > 0)
                connection_remove(s, s->connections[0]);
        free(s->connections);
        sd_event_source_disable_unref(s->listen_source);
        sd_event_source_disable_unref(s->post_source);
        safe_close(s->listen_fd);
        if (s->socket_path)
                (void) unlink(s->socket_path);
        free(s->socket_path);
        free(s->allow_gids);
        free(s->owners);
        free(s);
        return NULL;
}

size_t bus_server_n_connections(const BusServer *s) {
        return s ? s->n_connections : 0;
}
