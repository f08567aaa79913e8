/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target: the D-Bus API's method argument decoding. Each input is
 * one method call on a live BusServer (estimate mode, private socket): the
 * first byte picks the method, the next bytes a signature from a small set,
 * the rest fills the arguments. The daemon must answer every call (a reply
 * or an error) and never crash, leak or corrupt memory.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "bus.h"
#include "log.h"
#include "manager.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static Manager *manager;
static BusServer *server;
static sd_bus *client;

static const char *const methods[] = {
        "RegisterRange", "RegisterRangeByPIDFD", "RegisterProcess", "RegisterProcessByPIDFD", "Unregister",
        "Unmerge", "ListRegions", "GetStatistics", "Pause", "Resume", "Reload", "NoSuchMethod",
};
static const char *const signatures[] = { "", "u", "utt", "tt", "s", "uu", "ut", "ttt", "b", "as", "a{st}" };

static void setup(void) {
        ManagerConfig mc = MANAGER_CONFIG_DEFAULT;
        BusConfig bc = { .max_connections = 4, .max_regions_per_client = 4 };
        char path[64];
        int r;

        log_set_max_level(LOG_CRIT);
        mc.estimate = true;
        mc.max_regions = 8;
        snprintf(path, sizeof(path), "/tmp/ksmd-fuzz-%d.sock", (int) getpid());
        if (manager_new(&mc, &manager) < 0 || bus_server_new(manager, path, -1, &bc, NULL, NULL, &server) < 0)
                abort();
        r = sd_bus_new(&client);
        if (r >= 0) {
                char address[96];

                snprintf(address, sizeof(address), "unix:path=%s", path);
                r = sd_bus_set_address(client, address);
        }
        if (r >= 0)
                r = sd_bus_start(client);
        if (r < 0)
                abort();
        (void) unlink(path);
}

/* Appends one basic value of type t taken from the input. */
static int append_value(sd_bus_message *m, char t, const uint8_t **p, size_t *left) {
        uint64_t v = 0;
        char s[32];
        size_t n = MIN(*left, sizeof(v));

        memcpy(&v, *p, n);
        *p += n;
        *left -= n;
        switch (t) {
        case 'u': {
                uint32_t u = (uint32_t) v;
                return sd_bus_message_append_basic(m, 'u', &u);
        }
        case 't':
                return sd_bus_message_append_basic(m, 't', &v);
        case 'b': {
                int b = (int) (v & 1);
                return sd_bus_message_append_basic(m, 'b', &b);
        }
        default:
                snprintf(s, sizeof(s), "%llx", (unsigned long long) v);
                return sd_bus_message_append_basic(m, 's', s);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *sig;
        uint64_t cookie;
        int r;

        if (!manager)
                setup();
        if (size < 2)
                return 0;

        r = sd_bus_message_new_method_call(client, &m, NULL, BUS_OBJECT_PATH, BUS_INTERFACE,
                                           methods[data[0] % ELEMENTSOF(methods)]);
        if (r < 0)
                abort();
        sig = signatures[data[1] % ELEMENTSOF(signatures)];
        data += 2;
        size -= 2;
        if (strcmp(sig, "as") == 0 || strcmp(sig, "a{st}") == 0) {
                r = sd_bus_message_open_container(m, 'a', sig[1] == 's' ? "s" : "{st}");
                for (int i = 0; r >= 0 && i < 3 && size > 0; i++) {
                        if (sig[1] == 's')
                                r = append_value(m, 's', &data, &size);
                        else {
                                r = sd_bus_message_open_container(m, 'e', "st");
                                if (r >= 0)
                                        r = append_value(m, 's', &data, &size);
                                if (r >= 0)
                                        r = append_value(m, 't', &data, &size);
                                if (r >= 0)
                                        r = sd_bus_message_close_container(m);
                        }
                }
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
        } else
                for (const char *t = sig; r >= 0 && *t; t++)
                        r = append_value(m, *t, &data, &size);
        if (r < 0)
                abort();

        /* Send, then run the daemon's loop until its answer arrives. */
        r = sd_bus_send(client, m, &cookie);
        if (r < 0)
                abort();
        for (int i = 0; i < 1000; i++) {
                (void) sd_event_run(manager_get_event(manager), 0);
                r = sd_bus_process(client, &reply);
                if (r < 0)
                        abort();
                if (reply) {
                        uint64_t rc = 0;

                        (void) sd_bus_message_get_reply_cookie(reply, &rc);
                        if (rc == cookie)
                                break;
                        reply = sd_bus_message_unref(reply);
                }
                if (r == 0)
                        (void) sd_bus_wait(client, 1000);
        }
        if (!reply)
                abort(); /* every call gets an answer */
        (void) sd_bus_message_get_errno(reply);
        sd_bus_error_free(&error);

        /* Keep the state small: resume and forget regions the input may have made. */
        manager_resume(manager);
        for (Region *region; (region = region_registry_next(manager_get_registry(manager), 0));)
                (void) manager_unregister(manager, region->id);
        return 0;
}
