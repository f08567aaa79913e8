/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The D-Bus API (org.ksmd.Manager1, documented in man/org.ksmd.Manager1.5.scd)
 * served peer-to-peer on a private unix socket, as systemd serves its private
 * socket: accept, read the peer's credentials, sd_bus_set_server, attach,
 * add the vtable. The only file that includes sd-bus vtables.
 *
 * Every method call is authorized from the credentials the kernel gave at
 * accept time (SO_PEERCRED, SO_PEERGROUPS), never from what the caller says:
 * see bus-auth.h. Connections, regions per caller uid and regions in total
 * are bounded.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <systemd/sd-bus.h>

#include "macro.h"
#include "manager.h"

#define BUS_INTERFACE "org.ksmd.Manager1"
#define BUS_OBJECT_PATH "/org/ksmd/Manager1"
#define BUS_WELL_KNOWN_NAME "org.ksmd.Manager1"

#define BUS_ERROR_ACCESS_DENIED "org.ksmd.Error.AccessDenied"
#define BUS_ERROR_NO_SUCH_PROCESS "org.ksmd.Error.NoSuchProcess"
#define BUS_ERROR_NO_SUCH_REGION "org.ksmd.Error.NoSuchRegion"
#define BUS_ERROR_LIMIT_EXCEEDED "org.ksmd.Error.LimitExceeded"
#define BUS_ERROR_ALREADY_REGISTERED "org.ksmd.Error.AlreadyRegistered"
#define BUS_ERROR_NOT_SUPPORTED "org.ksmd.Error.NotSupported"
#define BUS_ERROR_INVALID_CONFIG "org.ksmd.Error.InvalidConfig"

typedef struct BusServer BusServer;

typedef struct BusConfig {
        unsigned max_connections;
        unsigned max_regions_per_client;       /* per caller uid; root is not limited */
        const gid_t *allow_gids;               /* copied */
        size_t n_allow_gids;
} BusConfig;

/*
 * Reload hook: re-reads the configuration and applies it. Returns 0, or
 * -errno with a message in *error (the running configuration stays).
 */
typedef int (*BusReloadHandler)(void *userdata, sd_bus_error *error);

/*
 * Listens on socket_path (replacing a stale socket file) and serves the API
 * on the manager's event loop. listen_fd >= 0 (socket activation) is used
 * instead of creating the socket; ownership passes to the server.
 */
int bus_server_new(Manager *m, const char *socket_path, int listen_fd, const BusConfig *config,
                   BusReloadHandler reload, void *reload_userdata, BusServer **ret);
BusServer *bus_server_free(BusServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(BusServer *, bus_server_free);

/*
 * Also serves the API under BUS_WELL_KNOWN_NAME on the system bus
 * ($DBUS_SYSTEM_BUS_ADDRESS or the default), with each call authorized from
 * the credentials the bus daemon reports for its sender. -errno (e.g.
 * -ENOENT, -ECONNREFUSED: no system bus; -EEXIST: the name is taken).
 */
int bus_server_attach_system_bus(BusServer *s);

/* Applies new limits and groups (on reload); existing connections stay. */
int bus_server_set_config(BusServer *s, const BusConfig *config);

/* Emits PropertiesChanged for the statistics properties on every connection. */
void bus_server_emit_changed(BusServer *s);

size_t bus_server_n_connections(const BusServer *s);
