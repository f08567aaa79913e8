/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The transport of the control plane (bus-server.c) on a real socket in a
 * temporary directory, serving a small probe object instead of the Manager:
 * the socket file's life, accepting and bounding connections, the caller's
 * credentials, PropertiesChanged on every connection, and a call that arrives
 * in the same write as the end of authentication. The clients run in this
 * thread and pump the server's loop while they wait (peer-client.h).
 *
 * The credentials are the kernel's (SO_PEERCRED), so in-process they are
 * always this process's own: what a caller with other credentials may do is
 * tested end to end in tests/control.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "bus-server.h"
#include "macro.h"
#include "peer-client.h"
#include "proc-process.h"

#define PROBE_PATH "/org/ksmd/Probe"
#define PROBE_INTERFACE "org.ksmd.Probe"
#define N_CLIENTS (2 + BUS_AUTH_ROOT_RESERVE + 2)

/* The owner's userdata of the probe object. */
typedef struct Probe {
        uint64_t counter;
} Probe;

static struct {
        char dir[64];
        char path[96];                   /* the socket, in dir; fits sun_path */
        sd_event *event;
        BusServer *server;
        sd_bus *clients[N_CLIENTS];
        Probe probe;
        bool refuse;                     /* the owner admits no one, not even root */
} f;

/* Answers the caller's uid, gid and pid as the server learnt them, and the owner's counter. */
static int method_who_am_i(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusConnection *c = userdata;
        const Probe *p = bus_connection_userdata(c);
        PeerCreds peer;
        pid_t held;
        int r;

        r = bus_connection_caller(c, m, &peer);
        if (r < 0)
                return r;
        /* The process the server holds is the caller. */
        assert_int_equal(proc_pidfd_get_pid(peer.pidfd, &held), 0);
        assert_int_equal(held, peer.pid);
        return sd_bus_reply_method_return(m, "uuut", (uint32_t) peer.uid, (uint32_t) peer.gid,
                                          (uint32_t) peer.pid, p->counter);
}

static int property_get_counter(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const Probe *p = bus_connection_userdata(userdata);

        return sd_bus_message_append(reply, "t", p->counter);
}

static const sd_bus_vtable probe_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Counter", "t", property_get_counter, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD("WhoAmI", "", "uuut", method_who_am_i, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static int setup(void **state) {
        memset(&f, 0, sizeof(f));
        snprintf(f.dir, sizeof(f.dir), "/tmp/ksmd-test-bus-server-XXXXXX");
        assert_non_null(mkdtemp(f.dir));
        snprintf(f.path, sizeof(f.path), "%s/ksmd.sock", f.dir);
        assert_int_equal(sd_event_new(&f.event), 0);
        return 0;
}

static int teardown(void **state) {
        char cmd[128];

        for (size_t i = 0; i < N_CLIENTS; i++)
                f.clients[i] = sd_bus_close_unref(f.clients[i]);
        f.server = bus_server_free(f.server);
        f.event = sd_event_unref(f.event);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f.dir);
        assert_int_equal(system(cmd), 0);
        return 0;
}

/* A group other than ours when we may give files away (root), else our own. */
static gid_t other_group(void) {
        return geteuid() == 0 ? 65534 : getegid();
}

static bool probe_may_connect(const PeerCreds *peer, void *userdata) {
        assert_ptr_equal(userdata, &f.probe);
        return !f.refuse;
}

/* A server; the clients here are this process, root or not: max_connections bounds both limits. */
static int new_server(const char *path, int listen_fd, unsigned max_connections) {
        return bus_server_new(f.event, path, listen_fd, other_group(),
                              &(BusLimits) { .max_connections = max_connections,
                                             .max_connections_per_user = max_connections },
                              &(BusObject) { .path = PROBE_PATH, .interface = PROBE_INTERFACE,
                                             .vtable = probe_vtable, .userdata = &f.probe,
                                             .may_connect = probe_may_connect },
                              &f.server);
}

/* Connections beyond max_connections this process may open: root's reserve, if it is root. */
static size_t reserve(void) {
        return geteuid() == 0 ? BUS_AUTH_ROOT_RESERVE : 0;
}

static int connect_client(size_t i) {
        return peer_client_connect(f.event, f.path, &f.clients[i]);
}

/* Calls WhoAmI on client i; its answer. */
static int who_am_i(size_t i, uint32_t *ret_uid, uint32_t *ret_gid, uint32_t *ret_pid,
                    uint64_t *ret_counter) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        assert_int_equal(sd_bus_message_new_method_call(f.clients[i], &m, NULL, PROBE_PATH, PROBE_INTERFACE,
                                                        "WhoAmI"),
                         0);
        r = peer_client_call(f.event, f.clients[i], m, NULL, &reply);
        if (r < 0)
                return r;
        assert_true(sd_bus_message_read(reply, "uuut", ret_uid, ret_gid, ret_pid, ret_counter) > 0);
        return 0;
}

static void assert_client_works(size_t i) {
        uint32_t uid, gid, pid;
        uint64_t counter;

        assert_int_equal(who_am_i(i, &uid, &gid, &pid, &counter), 0);
}

static void assert_socket_file_is_root_and_the_groups(void) {
        struct stat st;

        assert_int_equal(lstat(f.path, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0660);
        assert_int_equal(st.st_uid, geteuid() == 0 ? 0 : geteuid());
        assert_int_equal(st.st_gid, other_group());
}

static void test_socket_replaces_a_stale_file_and_only_root_and_the_group_may_connect(void **state) {
        mode_t old_umask;
        int fd;

        /* A file left behind by a daemon that died. */
        fd = open(f.path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
        /* Whatever the umask allows, the file never admits others. */
        old_umask = umask(0);
        assert_int_equal(new_server(f.path, -EBADF, 4), 0);
        umask(old_umask);
        assert_socket_file_is_root_and_the_groups();
        assert_int_equal(connect_client(0), 0);
        assert_client_works(0);
}

static void test_socket_group_changes_on_request(void **state) {
        struct stat st;

        assert_int_equal(new_server(f.path, -EBADF, 4), 0);
        assert_int_equal(bus_server_set_socket_group(f.server, getegid()), 0);
        assert_int_equal(lstat(f.path, &st), 0);
        assert_int_equal(st.st_gid, getegid());
        assert_int_equal(st.st_mode & 07777, 0660);
        /* A file that is no longer the socket is left alone. */
        assert_int_equal(unlink(f.path), 0);
        assert_int_equal(symlink("/etc/passwd", f.path), 0);
        assert_int_equal(bus_server_set_socket_group(f.server, other_group()), -ENOTSOCK);
}

static void test_socket_file_is_removed_on_free(void **state) {
        assert_int_equal(new_server(f.path, -EBADF, 4), 0);
        assert_int_equal(access(f.path, F_OK), 0);
        f.server = bus_server_free(f.server);
        assert_int_equal(access(f.path, F_OK), -1);
        assert_int_equal(errno, ENOENT);
}

static void test_missing_parent_directory_is_created(void **state) {
        struct stat st;

        snprintf(f.path, sizeof(f.path), "%s/run/ksmd.sock", f.dir);
        assert_int_equal(new_server(f.path, -EBADF, 4), 0);
        assert_int_equal(stat(f.path, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        assert_int_equal(connect_client(0), 0);
        assert_client_works(0);
}

static void test_socket_path_longer_than_sun_path_is_refused(void **state) {
        char path[sizeof_field(struct sockaddr_un, sun_path) + 16];

        memset(path, 'x', sizeof(path) - 1);
        path[0] = '/';
        path[sizeof(path) - 1] = 0;
        assert_int_equal(new_server(path, -EBADF, 4), -ENAMETOOLONG);
        assert_null(f.server);
}

/* A listening socket on f.path, made as systemd makes ksmd.socket's. */
static int listen_here(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        assert_true(fd >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f.path);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(fd, SOMAXCONN), 0);
        return fd;
}

static void test_passed_socket_is_served_made_root_and_the_groups_and_its_file_left_alone(void **state) {
        mode_t old_umask = umask(0);
        int fd = listen_here();

        umask(old_umask);
        /* The Manager passes the configured path along; with a socket from systemd it is not ours. */
        assert_int_equal(new_server(f.path, fd, 4), 0);
        assert_socket_file_is_root_and_the_groups();
        assert_int_equal(connect_client(0), 0);
        assert_client_works(0);
        f.clients[0] = sd_bus_close_unref(f.clients[0]);
        f.server = bus_server_free(f.server);
        assert_int_equal(access(f.path, F_OK), 0);
        /* ... and the server closed it: nothing listens any more. */
        assert_int_equal(peer_client_connect(f.event, f.path, &f.clients[0]), -ECONNREFUSED);
}

static void test_passed_socket_is_closed_when_serving_it_fails(void **state) {
        /* epoll refuses a file that cannot be polled. */
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

        assert_true(fd >= 0);
        assert_true(new_server(f.path, fd, 4) < 0);
        assert_null(f.server);
        assert_int_equal(fcntl(fd, F_GETFD), -1);
        assert_int_equal(errno, EBADF);
}

static void test_caller_is_the_peer_the_kernel_reports(void **state) {
        uint32_t uid, gid, pid;
        uint64_t counter;

        f.probe.counter = 42;
        assert_int_equal(new_server(f.path, -EBADF, 4), 0);
        assert_int_equal(connect_client(0), 0);
        assert_int_equal(who_am_i(0, &uid, &gid, &pid, &counter), 0);
        assert_int_equal(uid, getuid());
        assert_int_equal(gid, getgid());
        assert_int_equal(pid, getpid());
        /* The method reaches the owner's userdata through the connection. */
        assert_int_equal(counter, 42);
}

static void test_connections_beyond_the_limit_are_refused_at_accept(void **state) {
        size_t n = 2 + reserve();

        assert_int_equal(bus_server_n_connections(NULL), 0);
        assert_int_equal(new_server(f.path, -EBADF, 2), 0);
        assert_int_equal(bus_server_n_connections(f.server), 0);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(connect_client(i), 0);
                assert_int_equal(bus_server_n_connections(f.server), i + 1);
        }
        assert_int_equal(connect_client(n), -ECONNRESET);
        assert_null(f.clients[n]);
        assert_int_equal(bus_server_n_connections(f.server), n);
        /* The accepted ones are served. */
        for (size_t i = 0; i < n; i++)
                assert_client_works(i);
}

static void test_peers_not_admitted_are_refused_at_accept_and_hold_nothing(void **state) {
        assert_int_equal(new_server(f.path, -EBADF, 2), 0);
        f.refuse = true;
        for (size_t i = 0; i < N_CLIENTS; i++) {
                assert_int_equal(connect_client(i), -ECONNRESET);
                assert_int_equal(bus_server_n_connections(f.server), 0);
        }
        /* They took no place: once admitted, every place is there. */
        f.refuse = false;
        for (size_t i = 0; i < 2 + reserve(); i++)
                assert_int_equal(connect_client(i), 0);
}

static bool client_closed(void *userdata) {
        return sd_bus_is_open(userdata) <= 0;
}

static void test_peers_no_longer_admitted_are_dropped(void **state) {
        assert_int_equal(new_server(f.path, -EBADF, 4), 0);
        assert_int_equal(connect_client(0), 0);
        assert_int_equal(connect_client(1), 0);
        assert_int_equal(bus_server_drop_unadmitted(f.server), 0);
        assert_int_equal(bus_server_n_connections(f.server), 2);
        f.refuse = true;
        assert_int_equal(bus_server_drop_unadmitted(f.server), 2);
        assert_int_equal(bus_server_n_connections(f.server), 0);
        assert_true(peer_client_pump_until(f.event, f.clients[0], client_closed, f.clients[0]));
        assert_true(peer_client_pump_until(f.event, f.clients[1], client_closed, f.clients[1]));
}

static bool server_has_fewer_connections(void *userdata) {
        return bus_server_n_connections(f.server) < *(const size_t *) userdata;
}

static void test_closed_connection_gives_its_place_back(void **state) {
        size_t n = 2 + reserve();

        assert_int_equal(new_server(f.path, -EBADF, 2), 0);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(connect_client(i), 0);
        assert_int_equal(connect_client(n), -ECONNRESET);
        f.clients[0] = sd_bus_close_unref(f.clients[0]);
        assert_true(peer_client_pump_until(f.event, NULL, server_has_fewer_connections, &n));
        assert_int_equal(connect_client(n), 0);
        assert_int_equal(bus_server_n_connections(f.server), n);
        assert_client_works(1);
        assert_client_works(n);
}

static void test_lowering_the_limit_keeps_open_connections(void **state) {
        size_t n = 3 + reserve();

        assert_int_equal(new_server(f.path, -EBADF, 3), 0);
        for (size_t i = 0; i < n - 1; i++)
                assert_int_equal(connect_client(i), 0);
        bus_server_set_limits(f.server,
                              &(BusLimits) { .max_connections = 1, .max_connections_per_user = 1 });
        assert_int_equal(bus_server_n_connections(f.server), n - 1);
        for (size_t i = 0; i < n - 1; i++)
                assert_client_works(i);
        assert_int_equal(connect_client(n - 1), -ECONNRESET);
        bus_server_set_limits(f.server,
                              &(BusLimits) { .max_connections = 3, .max_connections_per_user = 3 });
        assert_int_equal(connect_client(n - 1), 0);
        assert_int_equal(bus_server_n_connections(f.server), n);
}

static void test_emit_changed_reaches_every_connection(void **state) {
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot0 = NULL, *slot1 = NULL;
        PeerChangedProbe changed[2] = { { .interface = PROBE_INTERFACE, .property = "Counter" },
                                        { .interface = PROBE_INTERFACE, .property = "Counter" } };

        /* Without a server (no socket) there is no one to tell. */
        bus_server_emit_changed(NULL, STRV_MAKE("Counter"));

        assert_int_equal(new_server(f.path, -EBADF, 4), 0);
        assert_int_equal(connect_client(0), 0);
        assert_int_equal(connect_client(1), 0);
        assert_true(sd_bus_match_signal(f.clients[0], &slot0, NULL, PROBE_PATH,
                                        "org.freedesktop.DBus.Properties", "PropertiesChanged",
                                        peer_client_on_properties_changed, &changed[0]) >= 0);
        assert_true(sd_bus_match_signal(f.clients[1], &slot1, NULL, PROBE_PATH,
                                        "org.freedesktop.DBus.Properties", "PropertiesChanged",
                                        peer_client_on_properties_changed, &changed[1]) >= 0);
        f.probe.counter = 7;
        bus_server_emit_changed(f.server, STRV_MAKE("Counter"));
        for (size_t i = 0; i < ELEMENTSOF(changed); i++) {
                assert_true(peer_client_pump_until(f.event, f.clients[i], peer_client_saw_change,
                                                   &changed[i]));
                assert_int_equal(changed[i].n_signals, 1);
                assert_true(changed[i].has_value);
                assert_int_equal(changed[i].value, 7);
        }
}

/* A client that speaks the protocol by hand, to control what goes into each write. */
typedef struct RawClient {
        int fd;
        uint8_t buf[512];
        size_t n;
        size_t want;                     /* bytes to read before done; 0: up to the first "\r\n" */
} RawClient;

static bool raw_client_has_read(void *userdata) {
        RawClient *c = userdata;
        ssize_t k;

        k = recv(c->fd, c->buf + c->n, sizeof(c->buf) - 1 - c->n, MSG_DONTWAIT);
        if (k > 0)
                c->n += (size_t) k;
        c->buf[c->n] = 0;
        return c->want > 0 ? c->n >= c->want : strstr((const char *) c->buf, "\r\n") != NULL;
}

#define ALIGN8(x) (((x) + 7) & ~(size_t) 7)

/* A method call without arguments, as the D-Bus specification's "Message Format" lays it out. */
static size_t marshal_call_endian(uint8_t *buf, size_t size, const char *member, uint32_t serial,
                                  bool big_endian) {
        const struct {
                uint8_t code;
                char type;
                const char *value;
        } fields[] = {
                { 1, 'o', PROBE_PATH },
                { 2, 's', PROBE_INTERFACE },
                { 3, 's', member },
        };
        size_t pos = 16;
        uint32_t u;

        memset(buf, 0, size);
        buf[0] = big_endian ? 'B' : 'l'; /* the byte order of the numbers below */
        buf[1] = 1;                      /* METHOD_CALL */
        buf[3] = 1;                      /* protocol version; flags (2) and body length (4..7) are 0 */
        u = big_endian ? htobe32(serial) : htole32(serial);
        memcpy(buf + 8, &u, sizeof(u));
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                size_t n = strlen(fields[i].value);

                pos = ALIGN8(pos);
                assert_true(pos + 8 + n + 1 <= size);
                buf[pos++] = fields[i].code;
                buf[pos++] = 1;          /* the variant's signature: one type */
                buf[pos++] = (uint8_t) fields[i].type;
                buf[pos++] = 0;
                u = big_endian ? htobe32((uint32_t) n) : htole32((uint32_t) n);
                memcpy(buf + pos, &u, sizeof(u));
                pos += sizeof(u);
                memcpy(buf + pos, fields[i].value, n + 1);
                pos += n + 1;
        }
        u = big_endian ? htobe32((uint32_t) (pos - 16)) : htole32((uint32_t) (pos - 16));
        memcpy(buf + 12, &u, sizeof(u));
        assert_true(ALIGN8(pos) <= size);
        return ALIGN8(pos);
}

static size_t marshal_call_serial(uint8_t *buf, size_t size, const char *member, uint32_t serial) {
        return marshal_call_endian(buf, size, member, serial, false);
}

static size_t marshal_call(uint8_t *buf, size_t size, const char *member) {
        return marshal_call_serial(buf, size, member, 1);
}

/* A raw client authenticated with EXTERNAL (BEGIN sent): its socket. */
static int raw_connect(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        RawClient c = {};
        char auth[64], uid[16], hex[32] = "";
        size_t n;
        int fd;

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f.path);
        assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        snprintf(uid, sizeof(uid), "%u", (unsigned) getuid());
        for (size_t i = 0; uid[i]; i++)
                snprintf(hex + 2 * i, sizeof(hex) - 2 * i, "%02x", (unsigned) uid[i]);
        n = (size_t) snprintf(auth + 1, sizeof(auth) - 1, "AUTH EXTERNAL %s\r\n", hex) + 1;
        auth[0] = 0;
        assert_int_equal(send(fd, auth, n, MSG_NOSIGNAL), (ssize_t) n);
        c.fd = fd;
        assert_true(peer_client_pump_until(f.event, NULL, raw_client_has_read, &c));
        assert_memory_equal(c.buf, "OK ", 3);
        assert_int_equal(send(fd, "BEGIN\r\n", 7, MSG_NOSIGNAL), 7);
        return fd;
}

/* Complete messages in buf[0..*n), dropped from it; what is left is the start of the next. */
static size_t take_messages(uint8_t *buf, size_t *n) {
        size_t count = 0, pos = 0;

        for (;;) {
                uint32_t body, fields;
                size_t len;

                if (*n - pos < 16)
                        break;
                memcpy(&body, buf + pos + 4, sizeof(body));
                memcpy(&fields, buf + pos + 12, sizeof(fields));
                len = 16 + ALIGN8((size_t) le32toh(fields)) + le32toh(body);
                if (*n - pos < len)
                        break;
                pos += len;
                count++;
        }
        memmove(buf, buf + pos, *n - pos);
        *n -= pos;
        return count;
}

/*
 * dbus-send --peer sends BEGIN and its first call in one write: the call then
 * waits in sd-bus's read buffer when authentication completes, with nothing
 * more to read on the socket. The server must answer it all the same.
 */
static void test_call_in_the_same_write_as_begin_is_answered(void **state) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        RawClient c = {};
        char auth[64], uid[16], hex[32] = "";
        uint8_t out[256];
        size_t n;

        assert_int_equal(new_server(f.path, -EBADF, 4), 0);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f.path);
        assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        c.fd = fd;

        /* A NUL byte, then EXTERNAL with our uid in hex digits of its decimal string. */
        snprintf(uid, sizeof(uid), "%u", (unsigned) getuid());
        for (size_t i = 0; uid[i]; i++)
                snprintf(hex + 2 * i, sizeof(hex) - 2 * i, "%02x", (unsigned) uid[i]);
        n = (size_t) snprintf(auth + 1, sizeof(auth) - 1, "AUTH EXTERNAL %s\r\n", hex) + 1;
        auth[0] = 0;
        assert_int_equal(send(fd, auth, n, MSG_NOSIGNAL), (ssize_t) n);
        assert_true(peer_client_pump_until(f.event, NULL, raw_client_has_read, &c));
        assert_memory_equal(c.buf, "OK ", 3);

        memcpy(out, "BEGIN\r\n", 7);
        n = 7 + marshal_call(out + 7, sizeof(out) - 7, "WhoAmI");
        c.n = 0;
        c.want = 16;
        assert_int_equal(send(fd, out, n, MSG_NOSIGNAL), (ssize_t) n);
        assert_true(peer_client_pump_until(f.event, NULL, raw_client_has_read, &c));
        assert_int_equal(c.buf[1], 2);   /* METHOD_RETURN, not ERROR (3) */
}

/* A peer that sends calls and never reads the replies is closed, long before it has sent them all. */
static void test_peer_that_stops_reading_is_disconnected(void **state) {
        _cleanup_close_ int fd = -EBADF;
        const uint32_t max_calls = 100000;
        uint32_t sent = 0;
        uint8_t call[128];

        assert_int_equal(new_server(f.path, -EBADF, 4), 0);
        fd = raw_connect();
        assert_true(peer_client_pump_until(f.event, NULL, server_has_fewer_connections, &(size_t) { 2 }));
        while (sent < max_calls && bus_server_n_connections(f.server) > 0) {
                size_t n = marshal_call_serial(call, sizeof(call), "WhoAmI", sent + 1);
                ssize_t k = send(fd, call, n, MSG_DONTWAIT | MSG_NOSIGNAL);

                if (k < 0 && errno == EAGAIN) {
                        assert_true(sd_event_run(f.event, 100 * 1000) >= 0);
                        continue;
                }
                if (k < 0)
                        break;   /* the server closed it */
                assert_int_equal(k, (ssize_t) n);
                sent++;
        }
        assert_true(peer_client_pump_until(f.event, NULL, server_has_fewer_connections, &(size_t) { 1 }));
        assert_true(sent < max_calls);
        /* Everyone else is served as before. */
        assert_int_equal(connect_client(0), 0);
        assert_client_works(0);
}

/* Calls pipelined on one connection are answered a few per event-loop iteration, and all of them. */
static void test_pipelined_calls_are_served_a_few_per_iteration(void **state) {
        _cleanup_close_ int fd = -EBADF;
        const size_t n_calls = 100;
        static uint8_t out[100 * 128], in[65536];
        size_t n_out = 0, n_in = 0, answered = 0;

        assert_int_equal(new_server(f.path, -EBADF, 4), 0);
        fd = raw_connect();
        for (size_t i = 0; i < n_calls; i++)
                n_out += marshal_call_serial(out + n_out, sizeof(out) - n_out, "WhoAmI", (uint32_t) i + 1);
        assert_int_equal(send(fd, out, n_out, MSG_NOSIGNAL), (ssize_t) n_out);

        for (unsigned step = 0; answered < n_calls && step < PEER_CLIENT_MAX_STEPS; step++) {
                size_t now;
                ssize_t k;

                assert_true(sd_event_run(f.event, 1000) >= 0);
                while ((k = recv(fd, in + n_in, sizeof(in) - n_in, MSG_DONTWAIT)) > 0)
                        n_in += (size_t) k;
                now = take_messages(in, &n_in);
                /* Ours, and the one sd-bus's own wake-up may process. */
                assert_true(now <= BUS_SERVER_CALLS_PER_ITERATION + 1);
                answered += now;
        }
        assert_int_equal(answered, n_calls);
}

/* A big-endian peer is served: the frame reads the size in the byte order the message says. */
static void test_big_endian_call_is_answered(void **state) {
        _cleanup_close_ int fd = -EBADF;
        RawClient c = { .want = 16 };
        uint8_t out[256];
        size_t n;

        assert_int_equal(new_server(f.path, -EBADF, 4), 0);
        fd = raw_connect();
        c.fd = fd;
        n = marshal_call_endian(out, sizeof(out), "WhoAmI", 1, true);
        assert_int_equal(send(fd, out, n, MSG_NOSIGNAL), (ssize_t) n);
        assert_true(peer_client_pump_until(f.event, NULL, raw_client_has_read, &c));
        assert_int_equal(c.buf[1], 2);   /* METHOD_RETURN, not ERROR (3) */
}

static bool raw_client_closed(void *userdata) {
        uint8_t buf[256];
        ssize_t k;

        while ((k = recv(*(const int *) userdata, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
                ;
        return k == 0 || (k < 0 && errno != EAGAIN);
}

/*
 * A peer that declares a message of 100 MB and streams it is closed once it
 * has sent the fixed header: the server never holds more than a frame's
 * buffer of it. Everyone else is served as before.
 */
static void test_message_larger_than_the_bound_closes_only_that_connection(void **state) {
        _cleanup_close_ int fd = -EBADF;
        static uint8_t chunk[64 * 1024];
        uint32_t u;
        size_t sent = 0;

        assert_int_equal(new_server(f.path, -EBADF, 4), 0);
        assert_int_equal(connect_client(0), 0);
        fd = raw_connect();
        assert_true(peer_client_pump_until(f.event, NULL, server_has_fewer_connections, &(size_t) { 3 }));
        marshal_call(chunk, sizeof(chunk), "WhoAmI");
        u = htole32(100u * 1000u * 1000u);
        memcpy(chunk + 4, &u, sizeof(u));
        while (sent < 100u * 1000u * 1000u && bus_server_n_connections(f.server) > 1) {
                ssize_t k = send(fd, chunk, sizeof(chunk), MSG_DONTWAIT | MSG_NOSIGNAL);

                if (k < 0 && errno == EAGAIN) {
                        assert_true(sd_event_run(f.event, 100 * 1000) >= 0);
                        continue;
                }
                if (k < 0)
                        break;   /* the server closed it */
                sent += (size_t) k;
                memset(chunk, 0, 16);    /* the rest is body */
        }
        assert_true(peer_client_pump_until(f.event, NULL, server_has_fewer_connections, &(size_t) { 2 }));
        assert_true(peer_client_pump_until(f.event, NULL, raw_client_closed, &fd));
        /* What the peer could send before that is what the kernel buffers, not the message. */
        assert_true(sent < 4u * 1024u * 1024u);
        assert_client_works(0);
}

/* sd-bus refuses BEGIN before authentication and keeps authenticating: the frame, which holds what
 * follows BEGIN until sd-bus runs, closes such a connection at once instead of at sd-bus's timeout. */
static bool server_has_a_connection(void *userdata) {
        return bus_server_n_connections(f.server) > 0;
}

static void test_begin_without_authentication_closes_the_connection(void **state) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;

        assert_int_equal(new_server(f.path, -EBADF, 4), 0);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f.path);
        assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_true(peer_client_pump_until(f.event, NULL, server_has_a_connection, NULL));
        assert_int_equal(send(fd, "\0BEGIN\r\n", 8, MSG_NOSIGNAL), 8);
        assert_true(peer_client_pump_until(f.event, NULL, server_has_fewer_connections, &(size_t) { 1 }));
        assert_true(peer_client_pump_until(f.event, NULL, raw_client_closed, &fd));
}

static const sd_bus_vtable privileged_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("WhoAmI", "", "uuut", method_who_am_i, 0),
        SD_BUS_VTABLE_END,
};

/* sd-bus would authorize such a member from the frame's socketpair, which has this daemon's credentials. */
static void test_object_with_a_member_sd_bus_would_authorize_is_refused(void **state) {
        assert_int_equal(bus_server_new(f.event, f.path, -EBADF, other_group(),
                                        &(BusLimits) { .max_connections = 4, .max_connections_per_user = 4 },
                                        &(BusObject) { .path = PROBE_PATH, .interface = PROBE_INTERFACE,
                                                       .vtable = privileged_vtable, .userdata = &f.probe },
                                        &f.server),
                         -EPERM);
        assert_null(f.server);
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
                TEST(test_socket_replaces_a_stale_file_and_only_root_and_the_group_may_connect),
                TEST(test_socket_group_changes_on_request),
                TEST(test_socket_file_is_removed_on_free),
                TEST(test_missing_parent_directory_is_created),
                TEST(test_socket_path_longer_than_sun_path_is_refused),
                TEST(test_passed_socket_is_served_made_root_and_the_groups_and_its_file_left_alone),
                TEST(test_passed_socket_is_closed_when_serving_it_fails),
                TEST(test_caller_is_the_peer_the_kernel_reports),
                TEST(test_connections_beyond_the_limit_are_refused_at_accept),
                TEST(test_peers_not_admitted_are_refused_at_accept_and_hold_nothing),
                TEST(test_peers_no_longer_admitted_are_dropped),
                TEST(test_closed_connection_gives_its_place_back),
                TEST(test_lowering_the_limit_keeps_open_connections),
                TEST(test_emit_changed_reaches_every_connection),
                TEST(test_call_in_the_same_write_as_begin_is_answered),
                TEST(test_peer_that_stops_reading_is_disconnected),
                TEST(test_pipelined_calls_are_served_a_few_per_iteration),
                TEST(test_big_endian_call_is_answered),
                TEST(test_message_larger_than_the_bound_closes_only_that_connection),
                TEST(test_begin_without_authentication_closes_the_connection),
                TEST(test_object_with_a_member_sd_bus_would_authorize_is_refused),
        };

        /* A client the server closes must not kill the test with SIGPIPE. */
        (void) signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
