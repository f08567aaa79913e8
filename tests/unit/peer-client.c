/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "peer-client.h"

bool peer_client_pump_until(sd_event *server, sd_bus *client, bool (*done)(void *userdata), void *userdata) {
        for (unsigned i = 0; i < PEER_CLIENT_MAX_STEPS; i++) {
                bool client_open = client && sd_bus_is_open(client) > 0;
                int r, k = 0;

                if (done(userdata))
                        return true;
                r = sd_event_run(server, 0);
                if (r < 0)
                        return false;
                /* A client the server closed has nothing left to process; done() says if that is the end. */
                if (client_open)
                        k = sd_bus_process(client, NULL);
                if (r > 0 || k != 0)
                        continue;
                if (client_open)
                        (void) sd_bus_wait(client, 1000);
                else
                        (void) sd_event_run(server, 1000);
        }
        return done(userdata);
}

static bool client_settled(void *userdata) {
        sd_bus *bus = userdata;

        return sd_bus_is_ready(bus) > 0 || sd_bus_is_open(bus) <= 0;
}

int peer_client_connect(sd_event *server, const char *socket_path, sd_bus **ret) {
        _cleanup_(sd_bus_close_unrefp) sd_bus *bus = NULL;
        char address[128];
        int r;

        if ((size_t) snprintf(address, sizeof(address), "unix:path=%s", socket_path) >= sizeof(address))
                return -ENAMETOOLONG;
        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        r = sd_bus_set_address(bus, address);
        if (r < 0)
                return r;
        r = sd_bus_negotiate_fds(bus, 1);
        if (r < 0)
                return r;
        r = sd_bus_start(bus);
        if (r < 0)
                return r;
        /* Authentication first: a message carrying file descriptors cannot be queued before it completes. */
        if (!peer_client_pump_until(server, bus, client_settled, bus))
                return -ETIMEDOUT;
        if (sd_bus_is_ready(bus) <= 0)
                return -ECONNRESET;
        *ret = TAKE_PTR(bus);
        return 0;
}

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        sd_bus_message **reply = userdata;

        *reply = sd_bus_message_ref(m);
        return 0;
}

static bool have_reply(void *userdata) {
        return *(sd_bus_message **) userdata;
}

int peer_client_call(sd_event *server, sd_bus *client, sd_bus_message *m, sd_bus_error *ret_error,
                     sd_bus_message **ret_reply) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        int r;

        /* Not floating: dropping the slot on a timeout keeps a late reply from writing into this frame. */
        r = sd_bus_call_async(client, &slot, m, on_reply, &reply, 0);
        if (r < 0)
                return r;
        if (!peer_client_pump_until(server, client, have_reply, &reply))
                return -ETIMEDOUT;
        if (sd_bus_message_is_method_error(reply, NULL)) {
                const sd_bus_error *e = sd_bus_message_get_error(reply);

                if (ret_error)
                        (void) sd_bus_error_copy(ret_error, e);
                r = sd_bus_error_get_errno(e);
                return r > 0 ? -r : -EIO;
        }
        if (ret_reply)
                *ret_reply = TAKE_PTR(reply);
        return 0;
}

int peer_client_on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        PeerChangedProbe *p = userdata;
        const char *interface, *name;
        int r;

        r = sd_bus_message_read(m, "s", &interface);
        if (r < 0)
                return r;
        if (strcmp(interface, p->interface) != 0)
                return 0;
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                r = sd_bus_message_read(m, "s", &name);
                if (r >= 0 && strcmp(name, p->property) == 0) {
                        r = sd_bus_message_read(m, "v", "t", &p->value);
                        p->has_value = r > 0;
                } else if (r >= 0)
                        r = sd_bus_message_skip(m, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        p->n_signals++;
        return 0;
}

bool peer_client_saw_change(void *userdata) {
        return ((const PeerChangedProbe *) userdata)->n_signals > 0;
}
