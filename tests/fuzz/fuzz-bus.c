/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target: the D-Bus API's method argument decoding. Each input is
 * one method call on a live BusServer (estimate mode, private socket): the
 * first byte picks the method and the caller, the next bytes a signature
 * from a small set, the rest fills the arguments. The daemon must answer
 * every call (a reply or an error) and never crash, leak or corrupt memory;
 * an error's message, which ksmctl prints to a terminal, holds no control
 * character, whatever the caller sent (escape.h).
 *
 * Two callers: root, and nobody (65534), a member of AllowGroups= and
 * SocketGroup= but no operator, as a local user would be. This process is
 * nobody when it connects that client (effective uid, gid and groups, which
 * SO_PEERCRED and SO_PEERGROUPS record then), and root again afterwards. The
 * first byte's value v calls methods[v % N] as root when (v / N) is even,
 * as nobody when it is odd; before fuzzing, every one of the 256 values is
 * called once with every signature, so each method reaches the daemon from
 * both callers in every run, whatever the fuzzer explores.
 *
 * A file descriptor (h) is one of: a pidfd of a live child running as root
 * and of one running as nobody (small sleeps that die with the fuzzer), a
 * pidfd of a reaped child, /dev/null. An options dictionary (a{sv}) holds up
 * to three entries whose key, variant type and value come from the input,
 * strings of up to 127 bytes of any ASCII, so every refusal of the
 * registration options is reached.
 */
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "bus-api.h"
#include "log.h"
#include "manager.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOBODY 65534

static Manager *manager;
static sd_bus *clients[2];               /* root, nobody */

static const char *const methods[] = {
        "RegisterRange", "RegisterRangeByPIDFD", "RegisterProcess", "RegisterProcessByPIDFD", "Unregister",
        "Unmerge", "ListRegions", "GetStatistics", "Pause", "Resume", "Reload", "NoSuchMethod",
};
static const char *const signatures[] = {
        "", "u", "utt", "tt", "s", "uu", "ut", "ttt", "b", "as", "a{st}", "h", "htt", "ha{sv}", "htta{sv}",
        "a{sv}",
};
static const char *const option_keys[] = { "Name", "name", "" };
static const char *const variant_types[] = { "s", "u", "t", "b", "as" };
static int fds[4];

/* A child that sleeps until the fuzzer exits, however it exits; as nobody if asked. */
static pid_t spawn_sleeper(bool as_nobody) {
        pid_t parent = getpid(), pid = fork();

        if (pid == 0) {
                if (as_nobody && (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
                                  setresuid(NOBODY, NOBODY, NOBODY) < 0))
                        _exit(126);
                /* After the change of credentials, which clears it; and the fuzzer may be gone already. */
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(125);
                execl("/bin/sleep", "sleep", "infinity", (char *) NULL);
                _exit(127);
        }
        return pid;
}

static void setup_fds(void) {
        pid_t dead;

        fds[0] = pidfd_open(spawn_sleeper(false), 0);
        dead = fork();
        if (dead == 0)
                _exit(0);
        fds[1] = pidfd_open(dead, 0);
        (void) waitpid(dead, NULL, 0);
        fds[2] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        fds[3] = pidfd_open(spawn_sleeper(true), 0);
        if (fds[0] < 0 || fds[1] < 0 || fds[2] < 0 || fds[3] < 0)
                abort();
}

/* A client of the socket at path, connected by whoever this process is now; not yet authenticated. */
static sd_bus *start_client(const char *path) {
        sd_bus *bus = NULL;
        char address[96];
        int r;

        snprintf(address, sizeof(address), "unix:path=%s", path);
        r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, address);
        if (r >= 0)
                r = sd_bus_negotiate_fds(bus, 1);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0)
                abort();
        return bus;
}

/* Authentication first: a message with file descriptors cannot be queued before the client knows the
 * server takes them. A client the server refused aborts. */
static sd_bus *wait_ready(sd_bus *bus) {
        for (int i = 0; i < 1000 && sd_bus_is_ready(bus) <= 0; i++) {
                (void) sd_event_run(manager->event, 0);
                if (sd_bus_process(bus, NULL) == 0)
                        (void) sd_bus_wait(bus, 1000);
        }
        if (sd_bus_can_send(bus, SD_BUS_TYPE_UNIX_FD) <= 0)
                abort();
        return bus;
}

/* A client connected as nobody: the credentials the kernel records at connect() are nobody's. */
static sd_bus *start_client_as_nobody(const char *path) {
        const gid_t nobody_groups[] = { NOBODY };
        sd_bus *bus;

        if (setgroups(ELEMENTSOF(nobody_groups), nobody_groups) < 0 || setresgid(-1, NOBODY, -1) < 0 ||
            setresuid(-1, NOBODY, -1) < 0)
                abort();
        bus = start_client(path);
        if (setresuid(-1, 0, -1) < 0 || setresgid(-1, 0, -1) < 0 || setgroups(0, NULL) < 0)
                abort();
        return bus;
}

static void run_one(const uint8_t *data, size_t size);

/* Sends m, then runs the daemon's loop until its answer arrives: the answer. Every call gets one. */
static sd_bus_message *call(sd_bus *client, sd_bus_message *m) {
        sd_bus_message *reply = NULL;
        uint64_t cookie;
        int r;

        r = sd_bus_send(client, m, &cookie);
        if (r < 0)
                abort();
        for (unsigned turns = 0, waits = 0; turns < 100000 && waits < 1000; turns++) {
                int ran = sd_event_run(manager->event, 0);

                r = sd_bus_process(client, &reply);
                if (r < 0)
                        abort();
                if (reply) {
                        uint64_t rc = 0;

                        (void) sd_bus_message_get_reply_cookie(reply, &rc);
                        if (rc == cookie)
                                return reply;
                        reply = sd_bus_message_unref(reply);
                }
                /* A call takes the daemon a few turns (the frame, then sd-bus): wait only when it idles. */
                if (r == 0 && ran == 0) {
                        (void) sd_bus_wait(client, 1000);
                        waits++;
                }
        }
        abort();
}

/* The daemon sees the second client as nobody: it may call, but not Pause (no operator). */
static void check_clients(void) {
        for (size_t i = 0; i < ELEMENTSOF(clients); i++) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;

                if (sd_bus_message_new_method_call(clients[i], &m, NULL, BUS_OBJECT_PATH, BUS_INTERFACE,
                                                   "Pause") < 0)
                        abort();
                reply = call(clients[i], m);
                if (i == 0 ? sd_bus_message_is_method_error(reply, NULL) :
                             !sd_bus_message_is_method_error(reply, BUS_ERROR_ACCESS_DENIED))
                        abort();
        }
        manager_resume(manager);
}

static void setup(void) {
        char path[64], socket_setting[96], nobody_setting[64], group_setting[64];
        uint8_t sweep[2 + 32];

        log_set_max_level(LOG_CRIT);
        snprintf(path, sizeof(path), "/tmp/ksmd-fuzz-%d.sock", (int) getpid());
        snprintf(socket_setting, sizeof(socket_setting), "Socket=%s", path);
        snprintf(group_setting, sizeof(group_setting), "SocketGroup=%d", NOBODY);
        snprintf(nobody_setting, sizeof(nobody_setting), "AllowGroups=%d", NOBODY);
        if (manager_new(&(ManagerArgs) { .overrides = STRV_MAKE("Mode=estimate", "MaxRegions=8",
                                                                 "MaxRegionsPerClient=4",
                                                                 "MaxConnections=4", socket_setting,
                                                                 group_setting, nobody_setting),
                                         .n_overrides = 7 },
                        &manager) < 0)
                abort();
        clients[0] = wait_ready(start_client(path));
        clients[1] = wait_ready(start_client_as_nobody(path));
        (void) unlink(path);
        check_clients();
        setup_fds();

        /* Every value of the first byte (every method, both callers) with every signature. */
        for (unsigned v = 0; v < 256; v++)
                for (unsigned sig = 0; sig < ELEMENTSOF(signatures); sig++) {
                        sweep[0] = (uint8_t) v;
                        sweep[1] = (uint8_t) sig;
                        memset(sweep + 2, (int) (v * 7 + sig), sizeof(sweep) - 2);
                        run_one(sweep, sizeof(sweep));
                }
}

static int append_value(sd_bus_message *m, char t, const uint8_t **p, size_t *left);

static uint8_t take_byte(const uint8_t **p, size_t *left) {
        uint8_t b = 0;

        if (*left > 0) {
                b = **p;
                (*p)++;
                (*left)--;
        }
        return b;
}

/* A string of 0..127 bytes from the input, each mapped to ASCII 0x01..0x7f (valid UTF-8, no NUL). */
static void take_string(const uint8_t **p, size_t *left, char buf[static 128]) {
        size_t n = take_byte(p, left) % 128;
        size_t i;

        for (i = 0; i < n && *left > 0; i++)
                buf[i] = (char) (take_byte(p, left) % 0x7f + 1);
        buf[i] = 0;
}

/* Appends an a{sv} of up to three entries: key, variant type and value from the input. */
static int append_options(sd_bus_message *m, const uint8_t **p, size_t *left) {
        size_t n = take_byte(p, left) % 4;
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        for (size_t i = 0; r >= 0 && i < n; i++) {
                uint8_t k = take_byte(p, left), t = take_byte(p, left);
                const char *type = variant_types[t % ELEMENTSOF(variant_types)];
                char key[128], value[128];

                if (k % (ELEMENTSOF(option_keys) + 1) < ELEMENTSOF(option_keys))
                        snprintf(key, sizeof(key), "%s", option_keys[k % (ELEMENTSOF(option_keys) + 1)]);
                else
                        take_string(p, left, key);
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append_basic(m, 's', key);
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'v', type);
                if (r >= 0) {
                        if (strcmp(type, "s") == 0) {
                                take_string(p, left, value);
                                r = sd_bus_message_append_basic(m, 's', value);
                        } else if (strcmp(type, "as") == 0) {
                                take_string(p, left, value);
                                r = sd_bus_message_append(m, "as", 1, value);
                        } else
                                r = append_value(m, type[0], p, left);
                }
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
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
        case 'h':
                /* sd-bus sends a duplicate; ours stay open for the next input. */
                return sd_bus_message_append_basic(m, 'h', &fds[v % ELEMENTSOF(fds)]);
        default:
                snprintf(s, sizeof(s), "%llx", (unsigned long long) v);
                return sd_bus_message_append_basic(m, 's', s);
        }
}

static void run_one(const uint8_t *data, size_t size) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        sd_bus *client = clients[data[0] / ELEMENTSOF(methods) % 2];
        const char *sig;
        int r;

        r = sd_bus_message_new_method_call(client, &m, NULL, BUS_OBJECT_PATH, BUS_INTERFACE,
                                           methods[data[0] % ELEMENTSOF(methods)]);
        if (r < 0)
                abort();
        sig = signatures[data[1] % ELEMENTSOF(signatures)];
        data += 2;
        size -= 2;
        if (strstr(sig, "a{sv}")) {
                for (const char *t = sig; r >= 0 && *t != 'a'; t++)
                        r = append_value(m, *t, &data, &size);
                if (r >= 0)
                        r = append_options(m, &data, &size);
        } else if (strcmp(sig, "as") == 0 || strcmp(sig, "a{st}") == 0) {
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

        reply = call(client, m);
        if (sd_bus_message_is_method_error(reply, NULL)) {
                const sd_bus_error *e = sd_bus_message_get_error(reply);

                for (const char *c = e && e->message ? e->message : ""; *c; c++)
                        if ((uint8_t) *c < 0x20 || *c == 0x7f)
                                abort();
        }
        (void) sd_bus_message_get_errno(reply);

        /* Keep the state small: resume and forget regions the input may have made. */
        manager_resume(manager);
        for (Region *region; (region = region_registry_next(manager->registry, 0));)
                (void) manager_unregister(manager, region->id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (!manager)
                setup();
        if (size >= 2)
                run_one(data, size);
        return 0;
}
