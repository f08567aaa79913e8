/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
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

#include "bus-frame.h"
#include "bus-server.h"
#include "log.h"
#include "pidfd-util.h"

struct BusConnection {
        BusServer *server;
        sd_bus *bus;
        bool system_bus;               /* credentials come with each message */
        PeerCreds peer;                /* private socket: from accept time */
        BusFrame *frame;               /* private socket: what the peer sends reaches sd-bus through it */
};

/* How many uids a refusal log remembers; beyond them, lines are dropped until an entry is a minute old. */
#define LOG_LIMIT_UIDS 16u
/* Free heap (bytes) worth a malloc_trim() after a connection is freed. */
#define TRIM_FREE_BYTES (4u << 20)

/* When a line of one kind was last logged for each of the last few uids. */
typedef struct UidLogLimit {
        struct {
                uid_t uid;
                uint64_t usec;
        } last[LOG_LIMIT_UIDS];
        size_t n;
} UidLogLimit;

struct BusServer {
        sd_event *event;
        BusObject object;
        int listen_fd;
        sd_event_source *listen_source;
        sd_event_source *post_source;  /* drains what sd-bus left unprocessed, see on_post() */
        sd_event_source *more_source;  /* a defer source: one more iteration for calls left over */
        bool trim;                     /* a connection was freed: give free heap back, see on_post() */
        char *socket_path;             /* the socket file, ours or systemd's; NULL: it has none */
        bool own_socket;               /* we made socket_path: it is unlinked on free */
        sd_id128_t server_id;

        BusConnection **connections;
        size_t n_connections;
        BusConnection *system;         /* the system bus connection, if attached */

        BusLimits limits;
        UidLogLimit refused_log;       /* peers the owner does not admit */
        UidLogLimit limit_log;         /* peers beyond a limit */
        UidLogLimit frame_log;         /* peers whose bytes the frame refused */
};

void *bus_connection_userdata(BusConnection *c) {
        return c->server->object.userdata;
}

bool bus_connection_is_backlogged(BusConnection *c) {
        uint64_t n = 0;

        /* sd-bus queues a message only once the kernel's buffer is full. */
        return !c->system_bus && sd_bus_get_n_queued_write(c->bus, &n) >= 0 && n > 0;
}

/* Reads a uint32 in a variant. */
static int read_variant_u32(sd_bus_message *reply, uint32_t *ret) {
        return sd_bus_message_read(reply, "v", "u", ret);
}

/* Reads UnixGroupIDs, an au in a variant, into p; beyond BUS_AUTH_MAX_GROUPS groups, the first ones. */
static int read_variant_groups(sd_bus_message *reply, PeerCreds *p) {
        const void *gids;
        size_t size;
        int r;

        r = sd_bus_message_enter_container(reply, 'v', "au");
        if (r < 0)
                return r;
        r = sd_bus_message_read_array(reply, 'u', &gids, &size);
        if (r < 0)
                return r;
        p->n_groups = MIN(size / sizeof(uint32_t), (size_t) BUS_AUTH_MAX_GROUPS);
        for (size_t i = 0; i < p->n_groups; i++)
                p->groups[i] = ((const uint32_t *) gids)[i];
        return sd_bus_message_exit_container(reply);
}

/*
 * The system bus daemon vouches for the sender's (effective) uid, pid and
 * groups (GetConnectionCredentials: UnixUserID, ProcessID, UnixGroupIDs),
 * and only those are used: nothing is read from /proc for the pid it reports
 * (sd-bus's SD_BUS_CREDS_AUGMENT), since that pid may be another process by
 * then. Asked directly, since sd-bus (252) reads no UnixGroupIDs. The primary
 * group has no field of its own: it counts only if it is among the groups
 * (dbus-daemon lists it there).
 */
static int sender_creds(sd_bus_message *m, PeerCreds *ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        PeerCreds p = { .pidfd = -EBADF, .gid = (gid_t) -1 };
        const char *sender = sd_bus_message_get_sender(m);
        bool have_uid = false, have_pid = false;
        int r;

        if (!sender)
                return -ENXIO;
        r = sd_bus_call_method(sd_bus_message_get_bus(m), "org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus", "GetConnectionCredentials", &error, &reply,
                               "s", sender);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *key;
                uint32_t u;

                r = sd_bus_message_read(reply, "s", &key);
                if (r < 0)
                        return r;
                if (strcmp(key, "UnixUserID") == 0) {
                        r = read_variant_u32(reply, &u);
                        p.uid = (uid_t) u;
                        have_uid = true;
                } else if (strcmp(key, "ProcessID") == 0) {
                        r = read_variant_u32(reply, &u);
                        p.pid = (pid_t) u;
                        have_pid = true;
                } else if (strcmp(key, "UnixGroupIDs") == 0)
                        r = read_variant_groups(reply, &p);
                else
                        r = sd_bus_message_skip(reply, "v");
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        if (!have_uid || !have_pid)
                return -ENODATA;
        *ret = p;
        return 0;
}

bool bus_connection_is_system(const BusConnection *c) {
        return c->system_bus;
}

int bus_connection_caller(BusConnection *c, sd_bus_message *m, PeerCreds *ret) {
        if (c->system_bus)
                return sender_creds(m, ret);
        *ret = c->peer;
        return 0;
}

/*
 * true if a line about uid may be logged now: at most one per uid per
 * BUS_SERVER_LOG_INTERVAL_USEC, and at most LOG_LIMIT_UIDS lines in all per
 * interval, however many uids try.
 */
static bool uid_log_limit_test(BusServer *s, UidLogLimit *l, uid_t uid) {
        uint64_t now = 0;
        size_t oldest = 0;

        (void) sd_event_now(s->event, CLOCK_MONOTONIC, &now);
        for (size_t i = 0; i < l->n; i++) {
                if (l->last[i].uid == uid) {
                        if (now < l->last[i].usec + BUS_SERVER_LOG_INTERVAL_USEC)
                                return false;
                        l->last[i].usec = now;
                        return true;
                }
                if (l->last[i].usec < l->last[oldest].usec)
                        oldest = i;
        }
        if (l->n < LOG_LIMIT_UIDS)
                oldest = l->n++;
        else if (now < l->last[oldest].usec + BUS_SERVER_LOG_INTERVAL_USEC)
                return false;
        l->last[oldest].uid = uid;
        l->last[oldest].usec = now;
        return true;
}

static int add_object(BusConnection *c) {
        const BusObject *o = &c->server->object;

        return sd_bus_add_object_vtable(c->bus, NULL, o->path, o->interface, o->vtable, c);
}

static void connection_free(BusConnection *c) {
        if (!c)
                return;
        safe_close(c->peer.pidfd);
        /* It holds a duplicate of the peer's socket: the peer sees the connection closed once both are. */
        bus_frame_free(c->frame);
        if (c->bus) {
                sd_bus_detach_event(c->bus);
                /* Not flushed: a peer that reads nothing would block the daemon forever. */
                sd_bus_close_unref(c->bus);
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
        /* Not now: whoever is dispatching the bus still holds it and its queues. */
        s->trim = true;
}

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusConnection *c = userdata;

        log_debug("Control connection of uid %u (pid %d) closed.", (unsigned) c->peer.uid,
                  (int) c->peer.pid);
        /* sd_bus_process() holds its own reference to the bus while it dispatches. */
        connection_remove(c->server, c);
        return 0;
}

static bool is_quiet_on_system_bus(const BusServer *s, const char *name) {
        for (const char *const *q = s->object.system_bus_quiet; q && *q; q++)
                if (strcmp(*q, name) == 0)
                        return true;
        return false;
}

void bus_server_emit_changed(BusServer *s, char **names) {
        _cleanup_free_ char **loud = NULL;
        size_t n = 0;

        if (!s)
                return;
        for (size_t i = 0; i < s->n_connections; i++)
                (void) sd_bus_emit_properties_changed_strv(s->connections[i]->bus, s->object.path,
                                                           s->object.interface, names);
        if (!s->system)
                return;
        for (char **p = names; *p; p++)
                n++;
        loud = calloc(n + 1, sizeof(char *));
        if (!loud)
                return;
        n = 0;
        for (char **p = names; *p; p++)
                if (!is_quiet_on_system_bus(s, *p))
                        loud[n++] = *p;
        if (n > 0)
                (void) sd_bus_emit_properties_changed_strv(s->system->bus, s->object.path,
                                                           s->object.interface, loud);
}

/* The most messages that may wait unread for the peer of c before it is closed. */
static uint64_t max_queued(const BusConnection *c) {
        return c->peer.uid == 0 ? BUS_SERVER_MAX_QUEUED_MESSAGES : BUS_SERVER_MAX_QUEUED_MESSAGES_USER;
}

static void close_unread(BusServer *s, BusConnection *c, uint64_t queued) {
        if (uid_log_limit_test(s, &s->limit_log, c->peer.uid))
                log_warning("Closing the control connection of uid %u (pid %d): it left %" PRIu64
                            " messages unread (at most %" PRIu64 "); logged once a minute per uid.",
                            (unsigned) c->peer.uid, (int) c->peer.pid, queued, max_queued(c));
        connection_remove(s, c);
}

/* The frame refused what the peer of c sent, or sd-bus its authentication: c is closed. */
static void close_refused(BusServer *s, BusConnection *c, int error) {
        char reason[128];

        /* sd-bus closed its end first: its Disconnected says so. */
        if (!IN_SET(error, -EPIPE, -ECONNRESET) && uid_log_limit_test(s, &s->frame_log, c->peer.uid))
                log_notice("Closing the control connection of uid %u (pid %d): %s; logged once a minute "
                           "per uid.",
                           (unsigned) c->peer.uid, (int) c->peer.pid,
                           bus_frame_describe(c->frame, error, reason, sizeof(reason)));
        connection_remove(s, c);
}

static void on_frame_failed(BusFrame *f, int error, void *userdata) {
        BusConnection *c = userdata;

        close_refused(c->server, c, error);
}

/*
 * sd-bus's event integration processes one step per wake-up, and would leave
 * calls a peer pipelined waiting in its read buffer while nothing more comes.
 * After every event-loop iteration, run each connection,
 * BUS_SERVER_CALLS_PER_ITERATION steps at most; one with more to do gets
 * another iteration (more_source). Close the connections whose peers stopped
 * reading, checked at every step, so that none passes its bound by more than
 * what sd-bus's own wake-up added. Tell each frame whether sd-bus left
 * authentication. Then give the memory of freed connections back.
 */
static int on_post(sd_event_source *source, void *userdata) {
        BusServer *s = userdata;
        bool more = false;

        /* Downwards: a connection that closes removes only itself, swapping in an element already done. */
        for (size_t i = s->n_connections; i > 0; i--) {
                BusConnection *c = s->connections[i - 1];
                sd_bus *bus = sd_bus_ref(c->bus);
                uint64_t queued = 0;
                bool gone = false;
                unsigned k;
                int r = 0;

                for (k = 0; k < BUS_SERVER_CALLS_PER_ITERATION; k++) {
                        r = sd_bus_process(bus, NULL);
                        gone = i - 1 >= s->n_connections || s->connections[i - 1] != c;
                        if (r <= 0 || gone)
                                break;
                        (void) sd_bus_get_n_queued_write(bus, &queued);
                        if (queued > max_queued(c))
                                break;
                }
                if (gone) {
                        sd_bus_unref(bus); /* it closed while processing */
                        continue;
                }
                more = more || r > 0;
                (void) sd_bus_get_n_queued_write(bus, &queued);
                r = bus_frame_notify_bus(c->frame, sd_bus_is_ready(bus) > 0);
                sd_bus_unref(bus);
                if (queued > max_queued(c))
                        close_unread(s, c, queued);
                else if (r < 0)
                        close_refused(s, c, r);
        }
        if (more)
                (void) sd_event_source_set_enabled(s->more_source, SD_EVENT_ONESHOT);
        if (s->trim) {
                s->trim = false;
                if (mallinfo2().fordblks >= TRIM_FREE_BYTES)
                        (void) malloc_trim(0);
        }
        return 0;
}

/* Nothing to do: being dispatched makes the post source run again. */
static int on_more(sd_event_source *source, void *userdata) {
        return 0;
}

/* The peer's credentials as the kernel recorded them at connect(); its pidfd comes after admission. */
static int read_peer(int fd, PeerCreds *ret) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        gid_t groups[BUS_AUTH_MAX_GROUPS];
        PeerCreds p = { .pidfd = -EBADF };

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

        *ret = p;
        return 0;
}

static ConnectionCounts count_connections(const BusServer *s, uid_t uid) {
        ConnectionCounts n = { .total = s->n_connections };

        for (size_t i = 0; i < s->n_connections; i++) {
                n.non_root += s->connections[i]->peer.uid != 0;
                n.of_uid += s->connections[i]->peer.uid == uid;
        }
        return n;
}

static bool admits(const BusServer *s, const PeerCreds *peer) {
        return !s->object.may_connect || s->object.may_connect(peer, s->object.userdata);
}

static int on_connection(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        BusServer *s = userdata;
        _cleanup_close_ int nfd = -EBADF, bus_fd = -EBADF;
        BusConnection *c = NULL, **l;
        int peer_fd;
        const char *reason = NULL;
        ConnectionCounts n;
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
                log_warning_errno(r,
                                  "Failed to read the credentials of a control connection, closing it: %m");
                return 0;
        }
        /* Before anything else: a peer that may not call holds nothing, not even a place. */
        if (!admits(s, &peer)) {
                if (uid_log_limit_test(s, &s->refused_log, peer.uid))
                        log_debug("Refusing control connections of uid %u (pid %d): it may not call "
                                  "(root, AllowGroups= and OperatorGroups= in ksmd.conf may); "
                                  "logged once a minute per uid.",
                                  (unsigned) peer.uid, (int) peer.pid);
                return 0;
        }
        n = count_connections(s, peer.uid);
        r = bus_auth_may_connect(peer.uid, &n, s->limits.max_connections,
                                 s->limits.max_connections_per_user, &reason);
        if (r < 0) {
                if (uid_log_limit_test(s, &s->limit_log, peer.uid))
                        log_warning("Refusing control connections of uid %u (pid %d): %s "
                                    "(%zu open, %zu of this user); logged once a minute per uid.",
                                    (unsigned) peer.uid, (int) peer.pid, reason, n.total, n.of_uid);
                return 0;
        }

        /* Held from now on: the process that connected, not whatever later runs with its pid. */
        peer.pidfd = pidfd_open_peer(nfd, peer.pid);
        if (peer.pidfd < 0) {
                log_debug_errno(peer.pidfd,
                                "Refusing a control connection of uid %u (pid %d): cannot hold its "
                                "process: %m",
                                (unsigned) peer.uid, (int) peer.pid);
                return 0;
        }

        c = calloc(1, sizeof(*c));
        if (!c) {
                safe_close(peer.pidfd);
                return log_oom();
        }
        c->server = s;
        c->peer = peer;

        /* sd-bus reads what the peer sends from the frame, which bounds it, and writes to the peer. */
        r = bus_frame_new(nfd, on_frame_failed, c, &c->frame, &bus_fd);
        if (r < 0)
                goto fail;
        r = sd_bus_new(&c->bus);
        if (r < 0)
                goto fail;
        r = sd_bus_set_fd(c->bus, bus_fd, nfd);
        if (r < 0)
                goto fail;
        TAKE_FD(bus_fd);
        peer_fd = TAKE_FD(nfd);
        r = sd_bus_set_server(c->bus, 1, s->server_id);
        if (r < 0)
                goto fail;
        /*
         * sd-bus checks a uid named in EXTERNAL against the credentials of the socket it reads, the
         * frame's socketpair: this daemon's. It need not check anything: the caller is known from accept.
         */
        r = sd_bus_set_anonymous(c->bus, 1);
        if (r < 0)
                goto fail;
        r = sd_bus_negotiate_fds(c->bus, 1);
        if (r < 0)
                goto fail;
        r = add_object(c);
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
        /* sd-bus asks for 8 MiB; a peer that reads nothing would pin that much of the kernel's memory. */
        if (setsockopt(peer_fd, SOL_SOCKET, SO_SNDBUF, &(int) { BUS_SERVER_SNDBUF_BYTES },
                       sizeof(int)) < 0) {
                r = -errno;
                goto fail;
        }
        r = sd_bus_attach_event(c->bus, s->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                goto fail;
        r = bus_frame_attach_event(c->frame, s->event, SD_EVENT_PRIORITY_NORMAL);
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
        log_warning_errno(r, "Failed to set up a control connection of uid %u (pid %d): %m",
                          (unsigned) peer.uid, (int) peer.pid);
        connection_free(c);
        return 0;
}

/*
 * Makes the socket file at path BUS_SERVER_SOCKET_MODE, owned by root and
 * gid. Through an O_PATH descriptor, so that what is changed is the socket
 * that was checked, never what a symlink put in its place points to.
 */
static int socket_file_set_access(const char *path, gid_t gid) {
        _cleanup_close_ int fd = -EBADF;
        char fd_path[64];
        struct stat st;

        fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISSOCK(st.st_mode))
                return -ENOTSOCK;
        if (fchownat(fd, "", 0, gid, AT_EMPTY_PATH) < 0)
                return -errno;
        /* fchmod() refuses O_PATH descriptors; their link in /proc does not (systemd's fchmod_opath). */
        snprintf(fd_path, sizeof(fd_path), "/proc/self/fd/%d", fd);
        if (chmod(fd_path, BUS_SERVER_SOCKET_MODE) < 0)
                return -errno;
        return 0;
}

static int listen_on(const char *path, gid_t gid, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_free_ char *dir = NULL;
        char *slash;
        int r;

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
        /* bind() gives the file the socket's own mode (less the umask): never more than the mode we want. */
        if (fchmod(fd, BUS_SERVER_SOCKET_MODE) < 0)
                return -errno;
        (void) unlink(path);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        /* Root and the group may connect; whoever connects is then authorized at accept and per call. */
        r = socket_file_set_access(path, gid);
        if (r < 0)
                return r;
        if (listen(fd, SOMAXCONN) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* The file a socket from systemd is bound to: 1 and a malloc'ed path, or 0 if it has none (abstract). */
static int socket_fd_path(int fd, char **ret) {
        struct sockaddr_un sa = {};
        socklen_t len = sizeof(sa);
        char *p;

        if (getsockname(fd, (struct sockaddr *) &sa, &len) < 0)
                return -errno;
        if (sa.sun_family != AF_UNIX)
                return -EAFNOSUPPORT;
        if (len <= offsetof(struct sockaddr_un, sun_path) || sa.sun_path[0] == '\0') {
                *ret = NULL;
                return 0;
        }
        p = strndup(sa.sun_path, len - offsetof(struct sockaddr_un, sun_path));
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 1;
}

int bus_server_set_socket_group(BusServer *s, gid_t socket_gid) {
        return s->socket_path ? socket_file_set_access(s->socket_path, socket_gid) : 0;
}

void bus_server_set_limits(BusServer *s, const BusLimits *limits) {
        s->limits = *limits;
}

size_t bus_server_drop_unadmitted(BusServer *s) {
        size_t n = 0;

        /* Downwards: removing one swaps in the last, already checked. */
        for (size_t i = s->n_connections; i > 0; i--) {
                BusConnection *c = s->connections[i - 1];

                if (admits(s, &c->peer))
                        continue;
                log_notice("Closing the control connection of uid %u (pid %d): the new settings do not "
                           "let it call.",
                           (unsigned) c->peer.uid, (int) c->peer.pid);
                connection_remove(s, c);
                n++;
        }
        return n;
}

/*
 * true if sd-bus lets anyone call every method and set every writable
 * property of vtable (SD_BUS_VTABLE_UNPRIVILEGED). It would check any other
 * against the credentials of the socket it reads, which on the private socket
 * is the frame's socketpair (bus-frame.h) and has this daemon's, and so let
 * every caller through. The owner authorizes each call (bus_connection_caller()).
 */
static bool vtable_is_unprivileged(const sd_bus_vtable *vtable) {
        for (const sd_bus_vtable *v = vtable; v->type != _SD_BUS_VTABLE_END; v++) {
                char type = (char) v->type;

                if (IN_SET(type, _SD_BUS_VTABLE_METHOD, _SD_BUS_VTABLE_WRITABLE_PROPERTY) &&
                    !(v->flags & SD_BUS_VTABLE_UNPRIVILEGED))
                        return false;
        }
        return true;
}

int bus_server_new(sd_event *event, const char *socket_path, int listen_fd, gid_t socket_gid,
                   const BusLimits *limits, const BusObject *object, BusServer **ret) {
        _cleanup_(bus_server_freep) BusServer *s = NULL;
        _cleanup_close_ int fd = listen_fd;
        int r;

        if (!vtable_is_unprivileged(object->vtable))
                return -EPERM;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(event);
        s->object = *object;
        s->listen_fd = -EBADF;
        s->limits = *limits;
        r = sd_id128_randomize(&s->server_id);
        if (r < 0)
                return r;

        if (fd >= 0) {
                s->listen_fd = TAKE_FD(fd);
                r = socket_fd_path(s->listen_fd, &s->socket_path);
                if (r < 0)
                        return r;
                /* An abstract socket has no file: anyone may connect, and only accept refuses them. */
                r = bus_server_set_socket_group(s, socket_gid);
                if (r < 0)
                        return r;
        } else {
                r = listen_on(socket_path, socket_gid, &s->listen_fd);
                if (r < 0)
                        return r;
                s->socket_path = strdup(socket_path);
                if (!s->socket_path)
                        return -ENOMEM;
                s->own_socket = true;
        }

        r = sd_event_add_io(s->event, &s->listen_source, s->listen_fd, EPOLLIN, on_connection, s);
        if (r < 0)
                return r;
        r = sd_event_add_post(s->event, &s->post_source, on_post, s);
        if (r < 0)
                return r;
        r = sd_event_add_defer(s->event, &s->more_source, on_more, s);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->more_source, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_source_set_priority(s->more_source, SD_EVENT_PRIORITY_IDLE);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

int bus_server_attach_system_bus(BusServer *s, const char *name) {
        BusConnection *c;
        int r;

        if (s->system)
                return 0;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->server = s;
        c->system_bus = true;
        c->peer.pidfd = -EBADF;          /* each message's sender has its own credentials */

        r = sd_bus_open_system(&c->bus);
        if (r >= 0)
                r = add_object(c);
        if (r >= 0)
                r = sd_bus_request_name(c->bus, name, 0);
        if (r >= 0)
                r = sd_bus_attach_event(c->bus, s->event, SD_EVENT_PRIORITY_NORMAL);
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
        sd_event_source_disable_unref(s->more_source);
        safe_close(s->listen_fd);
        if (s->own_socket)
                (void) unlink(s->socket_path);
        free(s->socket_path);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

size_t bus_server_n_connections(const BusServer *s) {
        return s ? s->n_connections : 0;
}
