/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * A client of the peer-to-peer control socket (bus-server.h) for tests that
 * run the server in their own thread: whoever waits for the client also runs
 * the server's event loop, one step at a time, so neither side blocks the
 * other. Every wait is bounded (PEER_CLIENT_MAX_STEPS steps, each sleeping
 * at most 1 ms when nothing happens): a lost reply fails the test instead of
 * hanging it. No test asserts how long anything takes.
 */

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#define PEER_CLIENT_MAX_STEPS 5000u

/*
 * Connects to the socket (sd_bus_new + sd_bus_set_address + sd_bus_start, no
 * Hello(), file descriptors negotiated) and runs both sides until the client
 * is authenticated. 0 and *ret; -ECONNRESET if the server closed the
 * connection instead (refused at accept), -ETIMEDOUT, or another -errno.
 */
int peer_client_connect(sd_event *server, const char *socket_path, sd_bus **ret);

/*
 * Runs server (an sd_event loop) and client (NULL for none) until
 * done(userdata) holds; true then, false after PEER_CLIENT_MAX_STEPS.
 */
bool peer_client_pump_until(sd_event *server, sd_bus *client, bool (*done)(void *userdata), void *userdata);

/*
 * As sd_bus_call(), while running server: 0 and the reply in *ret_reply
 * (optional); or the -errno of an error reply, with the error copied into
 * ret_error (optional); -ETIMEDOUT without a reply.
 */
int peer_client_call(sd_event *server, sd_bus *client, sd_bus_message *m, sd_bus_error *ret_error,
                     sd_bus_message **ret_reply);

/*
 * What a client saw of PropertiesChanged for one property of type t on one
 * interface: set interface and property, pass it as the userdata of
 * peer_client_on_properties_changed() (an sd_bus_match_signal() callback),
 * and wait with peer_client_pump_until(..., peer_client_saw_change, probe).
 */
typedef struct PeerChangedProbe {
        const char *interface;
        const char *property;
        unsigned n_signals;
        bool has_value;
        uint64_t value;
} PeerChangedProbe;

int peer_client_on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *error);
bool peer_client_saw_change(void *userdata);
