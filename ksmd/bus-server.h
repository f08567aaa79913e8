/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The transport of the D-Bus API: a private unix socket served
 * peer-to-peer, as systemd serves its private socket (accept, read the
 * peer's credentials, sd_bus_set_server, attach, add the vtable), and
 * optionally a connection to the system bus. It knows nothing of the
 * methods: the owner hands it one object vtable (manager-bus.c) and reads,
 * per call, who is calling (bus_connection_caller()).
 *
 * Credentials come from the kernel at accept time (SO_PEERCRED,
 * SO_PEERGROUPS), or on the system bus from the bus daemon per message:
 * never from anything the caller sends. A peer the owner does not admit is
 * refused at accept, before it counts against any limit; the others are
 * bounded as bus_auth_may_connect() says. Refusals are logged at most once
 * per uid per BUS_SERVER_LOG_INTERVAL_USEC, so a flood does not flood the
 * journal.
 *
 * What one peer can make the daemon hold is bounded too. What it sends
 * reaches sd-bus through a frame (bus-frame.h), which closes a connection
 * whose peer sends a message larger than BUS_FRAME_MAX_MESSAGE_BYTES, or
 * more than BUS_FRAME_MAX_AUTH_BYTES before BEGIN, before sd-bus holds more
 * of it. The kernel keeps at most BUS_SERVER_SNDBUF_BYTES (doubled) of unread
 * replies per connection; beyond that sd-bus queues them, and a connection
 * whose queue passes BUS_SERVER_MAX_QUEUED_MESSAGES_USER
 * (BUS_SERVER_MAX_QUEUED_MESSAGES for root) is closed: its peer stopped
 * reading. Calls a peer pipelines are processed at most
 * BUS_SERVER_CALLS_PER_ITERATION per event-loop iteration (and one more by
 * sd-bus itself), so one connection cannot starve the others or the scan
 * timer. After a connection is freed, memory the heap holds free is given
 * back to the kernel (malloc_trim()).
 *
 * So a connection of a user other than root holds at most, with the
 * defaults (sd-bus 252 counts queued messages, not bytes: the bytes follow
 * from the largest messages):
 *   - of what its peer sends: two messages in sd-bus (the one it dispatches,
 *     the next arriving), BUS_FRAME_BUFFER_BYTES in the frame and twice
 *     BUS_FRAME_PAIR_SNDBUF_BYTES in the kernel: 272 KiB;
 *   - for its peer: twice BUS_SERVER_SNDBUF_BYTES in the kernel, 512 KiB; in
 *     sd-bus BUS_SERVER_MAX_QUEUED_MESSAGES_USER + 1 messages (sd-bus's own
 *     wake-up may add one before on_post() looks; the PropertiesChanged of a
 *     settings change, which only root and operators make, come on top) of
 *     at most 5 KiB each (the largest reply a caller cannot grow is
 *     Introspect, 5011 bytes), 165 KiB; and one ListRegions() reply, which
 *     is refused while any message waits in sd-bus
 *     (bus_connection_is_backlogged()): at most 1.5 KiB per region (with
 *     both notes REGION_NOTE_MAX long), 368 KiB at MaxRegionsPerClient=256.
 * 1317 KiB in all, kernel included: MaxConnections=64 of them hold under
 * 84 MiB, which leaves room beside MaxMetadata=256M in MemoryMax=512M of
 * ksmd.service.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus-auth.h"
#include "macro.h"
#include "parse-util.h"

#define BUS_SERVER_LOG_INTERVAL_USEC USEC_PER_MINUTE
#define BUS_SERVER_SNDBUF_BYTES (256u * 1024u)  /* per connection; the kernel doubles it */
/* Messages that may wait in sd-bus for the peer to read them: root's connections, everyone else's. */
#define BUS_SERVER_MAX_QUEUED_MESSAGES 256u
#define BUS_SERVER_MAX_QUEUED_MESSAGES_USER 32u
#define BUS_SERVER_CALLS_PER_ITERATION 16u

typedef struct BusServer BusServer;
typedef struct BusConnection BusConnection;

/* The object every connection serves: a vtable whose userdata is the BusConnection. */
typedef struct BusObject {
        const char *path;
        const char *interface;
        const sd_bus_vtable *vtable;
        void *userdata;                  /* the owner's, for bus_connection_userdata() */
        /* Who may connect to the socket at all (called with userdata); NULL: anyone. */
        bool (*may_connect)(const PeerCreds *peer, void *userdata);
        /*
         * Properties never announced on the system bus (NULL-terminated; NULL: none), where
         * PropertiesChanged is a broadcast that every local user may receive: those that only
         * callers may read. Read with Get, they are authorized as every call is.
         */
        const char *const *system_bus_quiet;
} BusObject;

/* The bounds of bus_auth_may_connect(). */
typedef struct BusLimits {
        uint64_t max_connections;        /* of users other than root */
        uint64_t max_connections_per_user;
} BusLimits;

/* The mode of the socket file: root and its group may connect, no one else. */
#define BUS_SERVER_SOCKET_MODE 0660

/*
 * Listens on socket_path (replacing a stale socket file), or on listen_fd
 * (socket activation; ownership passes to the server, also on failure), and
 * serves object on event, to the peers object->may_connect admits, within
 * limits.
 *
 * The socket file is BUS_SERVER_SOCKET_MODE, owned by root and socket_gid,
 * before anyone can connect to a socket the server makes; a socket from
 * systemd gets the same mode and owner (its path from getsockname()).
 *
 * -EPERM if a method or writable property of object->vtable lacks
 * SD_BUS_VTABLE_UNPRIVILEGED: the owner authorizes every call itself, and
 * sd-bus's own check would read the wrong credentials (bus-frame.h).
 */
int bus_server_new(sd_event *event, const char *socket_path, int listen_fd, gid_t socket_gid,
                   const BusLimits *limits, const BusObject *object, BusServer **ret);
BusServer *bus_server_free(BusServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(BusServer *, bus_server_free);

/*
 * Also serves the object under name on the system bus ($DBUS_SYSTEM_BUS_ADDRESS
 * or the default). -errno (e.g. -ENOENT, -ECONNREFUSED: no system bus;
 * -EEXIST: the name is taken).
 */
int bus_server_attach_system_bus(BusServer *s, const char *name);

/*
 * Gives the socket file to another group (on reload); the mode stays
 * BUS_SERVER_SOCKET_MODE. -errno; -ENOTSOCK if the file is not the socket.
 */
int bus_server_set_socket_group(BusServer *s, gid_t socket_gid);

/* Applies new bounds (on reload); existing connections stay. */
void bus_server_set_limits(BusServer *s, const BusLimits *limits);

/*
 * Closes the connections of peers that object->may_connect no longer admits
 * (after new settings), without waiting for them to read what is queued.
 * Returns how many it closed.
 */
size_t bus_server_drop_unadmitted(BusServer *s);

/*
 * Emits PropertiesChanged for the named properties (NULL-terminated) on every
 * connection; on the system bus, only for those not in object->system_bus_quiet.
 */
void bus_server_emit_changed(BusServer *s, char **names);

size_t bus_server_n_connections(const BusServer *s);

/* The owner's userdata of the object the connection serves. */
void *bus_connection_userdata(BusConnection *c);

/*
 * true if any message waits in sd-bus for the peer to read it, that is, the
 * kernel's buffer for the connection is full (never on the system bus): a
 * method whose reply grows with the daemon's state (ListRegions) refuses to
 * add one, so that a peer that stops reading holds at most one big reply.
 */
bool bus_connection_is_backlogged(BusConnection *c);

/* true for the system bus connection, where a signal is a broadcast that any local user may receive. */
bool bus_connection_is_system(const BusConnection *c);

/*
 * Who sent m on c: on the private socket the credentials of accept time, on
 * the system bus those the bus daemon reports for the sender. -errno.
 */
int bus_connection_caller(BusConnection *c, sd_bus_message *m, PeerCreds *ret);
