/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * org.ksmd.Manager1 (manager-bus.c) as a client sees it: a real Manager in
 * estimate mode (Mode=estimate: the helper module is never asked for) serves
 * its socket in a temporary directory, and clients in this thread call it
 * while they run its loop (peer-client.h). The scan timer never starts: only
 * what a call does is tested here.
 *
 * Every call comes from this process, so the server sees root's credentials
 * (SO_PEERCRED): what a caller other than root may do (AccessDenied, its own
 * regions only, MaxRegionsPerClient=, setting properties) cannot be tested
 * in-process and is tested end to end in tests/control/test_control.py.
 */
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
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "bus-api.h"
#include "bus-auth.h"
#include "macro.h"
#include "manager.h"
#include "scan-worker.h"
#include "peer-client.h"
#include "settings.h"

#define N_CLIENTS (1 + BUS_AUTH_ROOT_RESERVE + 1)
#define PROPERTIES_INTERFACE "org.freedesktop.DBus.Properties"

static struct {
        char dir[64];
        char path[96];                   /* the socket, in dir */
        Manager *m;
        sd_bus *clients[N_CLIENTS];
        pid_t child;
} f;

static int setup(void **state) {
        memset(&f, 0, sizeof(f));
        snprintf(f.dir, sizeof(f.dir), "/tmp/ksmd-test-manager-bus-XXXXXX");
        assert_non_null(mkdtemp(f.dir));
        snprintf(f.path, sizeof(f.path), "%s/ksmd.sock", f.dir);
        return 0;
}

static int teardown(void **state) {
        char cmd[128];

        for (size_t i = 0; i < N_CLIENTS; i++)
                f.clients[i] = sd_bus_close_unref(f.clients[i]);
        f.m = manager_free(f.m);
        if (f.child > 0) {
                (void) kill(f.child, SIGKILL);
                (void) waitpid(f.child, NULL, 0);
                f.child = 0;
        }
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f.dir);
        assert_int_equal(system(cmd), 0);
        return 0;
}

/*
 * A Manager in estimate mode serving f.path at 16 pages per 5 ms, with the
 * settings of extra ("Key=Value", NULL-terminated) on top.
 */
static void new_manager(char *const *extra) {
        char socket_setting[128];
        char *overrides[16] = { (char *) "Mode=estimate", (char *) "PagesToScan=16", (char *) "Sleep=5ms",
                                (char *) "IdleSleep=0", socket_setting };
        size_t n = 5;

        snprintf(socket_setting, sizeof(socket_setting), "Socket=%s", f.path);
        for (; extra && *extra && n < ELEMENTSOF(overrides); extra++)
                overrides[n++] = *extra;
        assert_int_equal(manager_new(&(ManagerArgs) { .overrides = overrides, .n_overrides = n }, &f.m), 0);
        assert_true(manager_is_estimate(f.m));
}

static int connect_client(size_t i) {
        return peer_client_connect(f.m->event, f.path, &f.clients[i]);
}

static sd_bus_message *new_call(size_t i, const char *interface, const char *member) {
        sd_bus_message *m = NULL;

        assert_int_equal(sd_bus_message_new_method_call(f.clients[i], &m, NULL, BUS_OBJECT_PATH, interface,
                                                        member),
                         0);
        return m;
}

static int call(size_t i, sd_bus_message *m, sd_bus_error *ret_error, sd_bus_message **ret_reply) {
        return peer_client_call(f.m->event, f.clients[i], m, ret_error, ret_reply);
}

/* A method of org.ksmd.Manager1 with arguments as sd_bus_message_append() takes them. */
static int call_method(size_t i, const char *member, sd_bus_error *ret_error, sd_bus_message **ret_reply,
                       const char *types, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = new_call(i, BUS_INTERFACE, member);
        va_list ap;
        int r;

        if (types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
                assert_true(r >= 0);
        }
        return call(i, m, ret_error, ret_reply);
}

static uint64_t get_number(size_t i, const char *property) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = new_call(i, PROPERTIES_INTERFACE, "Get");
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint64_t v;

        assert_true(sd_bus_message_append(m, "ss", BUS_INTERFACE, property) >= 0);
        assert_int_equal(call(i, m, NULL, &reply), 0);
        assert_true(sd_bus_message_read(reply, "v", "t", &v) > 0);
        return v;
}

static int set_number(size_t i, const char *property, uint64_t value, sd_bus_error *ret_error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = new_call(i, PROPERTIES_INTERFACE, "Set");

        assert_true(sd_bus_message_append(m, "ssv", BUS_INTERFACE, property, "t", value) >= 0);
        return call(i, m, ret_error, NULL);
}

/* The value of key in GetStatistics(); the key must be there. */
static uint64_t statistic(size_t i, const char *key) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *k;
        uint64_t v, found = 0;
        unsigned n_found = 0;

        assert_int_equal(call_method(i, "GetStatistics", NULL, &reply, NULL), 0);
        assert_true(sd_bus_message_enter_container(reply, 'a', "{st}") > 0);
        while (sd_bus_message_read(reply, "{st}", &k, &v) > 0)
                if (strcmp(k, key) == 0) {
                        found = v;
                        n_found++;
                }
        assert_int_equal(n_found, 1);
        return found;
}

/* A region as ListRegions() shows it. */
typedef struct ListedRegion {
        uint32_t id, pid;
        char name[REGION_NAME_MAX + 1];
        bool whole;
        uint64_t start, length;
} ListedRegion;

/* The regions ListRegions() returns to client i, at most n of them in ret; how many it returned. */
static size_t list_regions(size_t i, ListedRegion *ret, size_t n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        size_t k = 0;

        assert_int_equal(call_method(i, "ListRegions", NULL, &reply, NULL), 0);
        assert_true(sd_bus_message_enter_container(reply, 'a', "(uusbttssa{st})") > 0);
        while (sd_bus_message_enter_container(reply, 'r', "uusbttssa{st}") > 0) {
                const char *name, *note, *merge_note;
                ListedRegion r = {};
                int whole;

                assert_true(sd_bus_message_read(reply, "uusbttss", &r.id, &r.pid, &name, &whole, &r.start,
                                                &r.length, &note, &merge_note) > 0);
                snprintf(r.name, sizeof(r.name), "%s", name);
                r.whole = whole;
                assert_true(sd_bus_message_skip(reply, "a{st}") >= 0);
                assert_true(sd_bus_message_exit_container(reply) > 0);
                if (k < n)
                        ret[k] = r;
                k++;
        }
        return k;
}

/* A child that waits to be killed (by teardown()). */
static pid_t start_child(void) {
        f.child = fork();
        assert_true(f.child >= 0);
        if (f.child == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                for (;;)
                        pause();
        }
        return f.child;
}

/* RegisterProcessByPIDFD(fd, {"Name": name}), or with no options for a NULL name. */
static int register_process_by_pidfd(size_t i, int fd, const char *name, sd_bus_error *ret_error,
                                     uint32_t *ret_id) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        if (name)
                r = call_method(i, "RegisterProcessByPIDFD", ret_error, &reply, "ha{sv}", fd, 1, "Name", "s",
                                name);
        else
                r = call_method(i, "RegisterProcessByPIDFD", ret_error, &reply, "ha{sv}", fd, 0);
        if (r < 0)
                return r;
        assert_true(sd_bus_message_read(reply, "u", ret_id) > 0);
        return 0;
}

static void assert_error(const sd_bus_error *e, const char *name, const char *part_of_message) {
        assert_true(sd_bus_error_is_set(e));
        assert_string_equal(e->name, name);
        if (part_of_message && !strstr(e->message, part_of_message))
                fail_msg("\"%s\" is not in the message \"%s\"", part_of_message, e->message);
}

static void test_setting_properties_read_the_settings_in_effect(void **state) {
        new_manager(NULL);
        assert_int_equal(connect_client(0), 0);
        /* From the command line... */
        assert_int_equal(get_number(0, "PagesToScan"), 16);
        assert_int_equal(get_number(0, "SleepUSec"), 5000);
        assert_int_equal(get_number(0, "IdleSleepUSec"), 0);
        /* ... or the table's defaults. */
        assert_int_equal(get_number(0, "MaxCPU"), setting_find("MaxCPU")->def);
        assert_int_equal(get_number(0, "MaxRegions"), setting_find("MaxRegions")->def);
        assert_int_equal(get_number(0, "MaxConnections"), f.m->settings.max_connections);
}

static void test_root_sets_a_number_in_range_and_it_applies(void **state) {
        new_manager(NULL);
        assert_int_equal(connect_client(0), 0);
        assert_int_equal(set_number(0, "PagesToScan", 100, NULL), 0);
        assert_int_equal(f.m->settings.pages_to_scan, 100);
        assert_int_equal(f.m->batch_pages, 100);
        assert_int_equal(get_number(0, "PagesToScan"), 100);
        assert_int_equal(set_number(0, "SleepUSec", 7000, NULL), 0);
        assert_int_equal(f.m->settings.sleep_usec, 7000);
        assert_int_equal(f.m->batch_sleep_usec, 7000);
        /* The ends of the range are in it. */
        assert_int_equal(set_number(0, "PagesToScan", setting_find("PagesToScan")->max, NULL), 0);
        assert_int_equal(f.m->batch_pages, setting_find("PagesToScan")->max);
        assert_int_equal(set_number(0, "PagesToScan", setting_find("PagesToScan")->min, NULL), 0);
        assert_int_equal(f.m->batch_pages, setting_find("PagesToScan")->min);
}

static void test_number_out_of_range_is_refused_naming_the_range(void **state) {
        const struct {
                const char *key, *property;
                uint64_t value;
        } refused[] = {
                { "PagesToScan", "PagesToScan", 0 },
                { "PagesToScan", "PagesToScan", 1000001 },
                { "Sleep", "SleepUSec", 61 * UINT64_C(1000000) },
                { "MaxConnections", "MaxConnections", 0 },
        };

        new_manager(NULL);
        assert_int_equal(connect_client(0), 0);
        for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                char range[96];

                setting_format_range(setting_find(refused[i].key), range, sizeof(range));
                assert_int_equal(set_number(0, refused[i].property, refused[i].value, &e), -EINVAL);
                assert_error(&e, SD_BUS_ERROR_INVALID_ARGS, refused[i].property);
                assert_error(&e, SD_BUS_ERROR_INVALID_ARGS, range);
        }
        /* Nothing changed. */
        assert_int_equal(f.m->settings.pages_to_scan, 16);
        assert_int_equal(f.m->batch_pages, 16);
        assert_int_equal(f.m->settings.sleep_usec, 5000);
        assert_int_equal(f.m->batch_sleep_usec, 5000);
}

static void test_read_only_setting_cannot_be_set(void **state) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL, e2 = SD_BUS_ERROR_NULL;
        const uint32_t groups[] = { 0 };

        new_manager(NULL);
        assert_int_equal(connect_client(0), 0);
        m = new_call(0, PROPERTIES_INTERFACE, "Set");
        assert_true(sd_bus_message_append(m, "ss", BUS_INTERFACE, "AllowGroups") >= 0);
        assert_true(sd_bus_message_open_container(m, 'v', "au") >= 0);
        assert_true(sd_bus_message_append_array(m, 'u', groups, sizeof(groups)) >= 0);
        assert_true(sd_bus_message_close_container(m) >= 0);
        assert_true(call(0, m, &e, NULL) < 0);
        assert_error(&e, SD_BUS_ERROR_PROPERTY_READ_ONLY, "AllowGroups");
        assert_int_equal(f.m->settings.n_allow_groups, 0);

        /* A number of another type than the property's is no number for it. */
        m = sd_bus_message_unref(m);
        m = new_call(0, PROPERTIES_INTERFACE, "Set");
        assert_true(sd_bus_message_append(m, "ssv", BUS_INTERFACE, "PagesToScan", "u", (uint32_t) 100) >= 0);
        assert_true(call(0, m, &e2, NULL) < 0);
        assert_error(&e2, SD_BUS_ERROR_INVALID_ARGS, NULL);
        assert_int_equal(f.m->settings.pages_to_scan, 16);
}

static void test_statistics_carry_the_rate_in_effect(void **state) {
        new_manager(NULL);
        assert_int_equal(connect_client(0), 0);
        assert_int_equal(statistic(0, "batch_pages"), 16);
        assert_int_equal(statistic(0, "batch_sleep_usec"), 5000);
        assert_int_equal(set_number(0, "PagesToScan", 100, NULL), 0);
        assert_int_equal(set_number(0, "SleepUSec", 7000, NULL), 0);
        assert_int_equal(statistic(0, "batch_pages"), f.m->batch_pages);
        assert_int_equal(statistic(0, "batch_pages"), 100);
        assert_int_equal(statistic(0, "batch_sleep_usec"), 7000);
}

static void test_scan_threads_change_over_the_bus_and_show_in_statistics(void **state) {
        new_manager(NULL);
        assert_int_equal(connect_client(0), 0);
        /* The default: one per 100 % of MaxCPU= (20 %). */
        assert_int_equal(statistic(0, "scan_threads"), 1);
        assert_int_equal(set_number(0, "ScanThreads", 3, NULL), 0);
        assert_int_equal(statistic(0, "scan_threads"), 3);
        /* Back to the default, then a MaxCPU= worth two cores picks two where there are two. */
        assert_int_equal(set_number(0, "ScanThreads", 0, NULL), 0);
        assert_int_equal(statistic(0, "scan_threads"), 1);
        assert_int_equal(set_number(0, "MaxCPU", 200, NULL), 0);
        assert_int_equal(statistic(0, "scan_threads"), sysconf(_SC_NPROCESSORS_ONLN) >= 2 ? 2 : 1);
        assert_int_equal(set_number(0, "ScanThreads", SCAN_THREADS_MAX + 1, NULL), -EINVAL);
}

static unsigned statistic_count(size_t i, const char *key) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        unsigned n = 0;
        const char *k;
        uint64_t v;

        assert_int_equal(call_method(i, "GetStatistics", NULL, &reply, NULL), 0);
        assert_true(sd_bus_message_enter_container(reply, 'a', "{st}") > 0);
        while (sd_bus_message_read(reply, "{st}", &k, &v) > 0)
                n += strcmp(k, key) == 0;
        return n;
}

static void test_statistics_show_what_merged_pages_cost(void **state) {
        static const char *const keys[] = {
                "helper_owned_pages", "helper_mapped_pages", "helper_saved_bytes", "helper_no_memory_items",
        };

        new_manager(NULL);
        assert_int_equal(connect_client(0), 0);
        /* Estimate mode: no helper, no figures of it. */
        for (size_t k = 0; k < ELEMENTSOF(keys); k++)
                assert_int_equal(statistic_count(0, keys[k]), 0);

        /* Merging through a helper whose last INFO said this (the pointer is never called). */
        f.m->helper = (HelperClient *) 0x1;
        f.m->helper_info.stats[KSMD_HELPER_STAT_PAGES_OWNED] = 3;
        f.m->helper_info.stats[KSMD_HELPER_STAT_PAGES_MAPPED] = 7;
        f.m->helper_info.stats[KSMD_HELPER_STAT_BYTES_SAVED] = 4 * 4096;
        f.m->helper_info.stats[KSMD_HELPER_STAT_NO_MEMORY] = 11;
        assert_int_equal(statistic(0, "helper_owned_pages"), 3);
        assert_int_equal(statistic(0, "helper_mapped_pages"), 7);
        assert_int_equal(statistic(0, "helper_saved_bytes"), 4 * 4096);
        assert_int_equal(statistic(0, "helper_no_memory_items"), 11);
        /* No pool in INFO (an older module): no pool keys. */
        assert_int_equal(statistic_count(0, "helper_pool_blocks_node0"), 0);

        /* The pool, per NUMA node, under the node's number. */
        f.m->helper_info.n_pool = 2;
        f.m->helper_info.pool[0] = (HelperPoolNode) { .node = 0 };
        f.m->helper_info.pool[0].figures[KSMD_HELPER_POOL_A_BLOCKS] = 2;
        f.m->helper_info.pool[0].figures[KSMD_HELPER_POOL_A_USED_PAGES] = 513;
        f.m->helper_info.pool[0].figures[KSMD_HELPER_POOL_A_FREE_PAGES] = 511;
        f.m->helper_info.pool[1] = (HelperPoolNode) { .node = 3 };
        f.m->helper_info.pool[1].figures[KSMD_HELPER_POOL_A_FALLBACKS] = 5;
        f.m->helper_info.pool[1].figures[KSMD_HELPER_POOL_A_SINGLE_PAGES] = 4;
        f.m->helper_info.pool[1].figures[KSMD_HELPER_POOL_A_BLOCKS_RETURNED] = 6;
        f.m->helper_info.pool[1].figures[KSMD_HELPER_POOL_A_REUSED] = 7;
        assert_int_equal(statistic(0, "helper_pool_blocks_node0"), 2);
        assert_int_equal(statistic(0, "helper_pool_used_node0"), 513);
        assert_int_equal(statistic(0, "helper_pool_free_node0"), 511);
        assert_int_equal(statistic(0, "helper_pool_fallbacks_node3"), 5);
        assert_int_equal(statistic(0, "helper_pool_single_node3"), 4);
        assert_int_equal(statistic(0, "helper_pool_blocks_returned_node3"), 6);
        assert_int_equal(statistic(0, "helper_pool_reused_node3"), 7);
        assert_int_equal(statistic_count(0, "helper_pool_blocks_taken_node3"), 1);
        assert_int_equal(statistic_count(0, "helper_pool_blocks_node1"), 0);
        f.m->helper_info.n_pool = 0;
        f.m->helper = NULL;
}

static void test_pidfd_registration_is_listed_with_its_name(void **state) {
        _cleanup_close_ int child_fd = -EBADF, own_fd = -EBADF;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        ListedRegion listed[4];
        uint32_t child_id, own_id;
        pid_t child = start_child();

        new_manager(NULL);
        assert_int_equal(connect_client(0), 0);
        child_fd = pidfd_open(child, 0);
        assert_true(child_fd >= 0);
        own_fd = pidfd_open(getpid(), 0);
        assert_true(own_fd >= 0);

        assert_int_equal(register_process_by_pidfd(0, child_fd, "vm-01", NULL, &child_id), 0);
        assert_int_equal(call_method(0, "RegisterRangeByPIDFD", NULL, &reply, "htta{sv}", own_fd,
                                     UINT64_C(0x10000), UINT64_C(0x2000), 0),
                         0);
        assert_true(sd_bus_message_read(reply, "u", &own_id) > 0);
        assert_true(own_id != child_id);
        /* Registered by root: the region is root's. */
        assert_int_equal(region_registry_find(f.m->registry, child_id)->owner_uid, 0);

        assert_int_equal(list_regions(0, listed, ELEMENTSOF(listed)), 2);
        for (size_t i = 0; i < 2; i++) {
                const ListedRegion *r = &listed[i];

                if (r->id == child_id) {
                        assert_int_equal(r->pid, child);
                        assert_string_equal(r->name, "vm-01");
                        assert_true(r->whole);
                        assert_int_equal(r->start, 0);
                        assert_int_equal(r->length, 0);
                } else {
                        assert_int_equal(r->id, own_id);
                        assert_int_equal(r->pid, getpid());
                        assert_string_equal(r->name, "");
                        assert_false(r->whole);
                        assert_int_equal(r->start, 0x10000);
                        assert_int_equal(r->length, 0x2000);
                }
        }
}

static void test_pidfd_of_an_exited_process_is_no_such_process(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_close_ int fd = -EBADF;
        pid_t dead;
        uint32_t id;

        new_manager(NULL);
        assert_int_equal(connect_client(0), 0);
        dead = fork();
        assert_true(dead >= 0);
        if (dead == 0)
                _exit(0);
        fd = pidfd_open(dead, 0);
        assert_true(fd >= 0);
        assert_int_equal(waitpid(dead, NULL, 0), dead);

        assert_true(register_process_by_pidfd(0, fd, NULL, &e, &id) < 0);
        assert_error(&e, BUS_ERROR_NO_SUCH_PROCESS, NULL);
        assert_int_equal(region_registry_count(f.m->registry), 0);
}

static void test_fd_that_is_not_a_pidfd_is_refused(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_close_ int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        uint32_t id;

        assert_true(fd >= 0);
        new_manager(NULL);
        assert_int_equal(connect_client(0), 0);
        assert_int_equal(register_process_by_pidfd(0, fd, "vm-01", &e, &id), -EINVAL);
        assert_error(&e, SD_BUS_ERROR_INVALID_ARGS, "not a pidfd");
        assert_int_equal(region_registry_count(f.m->registry), 0);
}

static void test_bad_options_are_refused_naming_the_key(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error unknown = SD_BUS_ERROR_NULL, typed = SD_BUS_ERROR_NULL,
                                                  twice = SD_BUS_ERROR_NULL, hostile = SD_BUS_ERROR_NULL;
        _cleanup_close_ int fd = -EBADF;

        new_manager(NULL);
        assert_int_equal(connect_client(0), 0);
        fd = pidfd_open(start_child(), 0);
        assert_true(fd >= 0);

        assert_int_equal(call_method(0, "RegisterProcessByPIDFD", &unknown, NULL, "ha{sv}", fd, 1, "Colour",
                                     "s", "blue"),
                         -EINVAL);
        assert_error(&unknown, SD_BUS_ERROR_INVALID_ARGS, "\"Colour\"");
        assert_int_equal(call_method(0, "RegisterProcessByPIDFD", &typed, NULL, "ha{sv}", fd, 1, "Name", "u",
                                     (uint32_t) 7),
                         -EINVAL);
        assert_error(&typed, SD_BUS_ERROR_INVALID_ARGS, "Name");
        assert_int_equal(call_method(0, "RegisterProcessByPIDFD", &twice, NULL, "ha{sv}", fd, 2, "Name", "s",
                                     "a", "Name", "s", "b"),
                         -EINVAL);
        assert_error(&twice, SD_BUS_ERROR_INVALID_ARGS, "Name");
        /* A key is echoed back escaped (a terminal shows the message) and cut. */
        assert_int_equal(call_method(0, "RegisterProcessByPIDFD", &hostile, NULL, "ha{sv}", fd, 1,
                                     "\x1b[2J\n\xc2\x9b\\kkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
                                     "kkkkkkkkkkkkkkkkkkkkkkkkkk",
                                     "s", "x"),
                         -EINVAL);
        assert_error(&hostile, SD_BUS_ERROR_INVALID_ARGS,
                     "Unknown option \"\\x1b[2J\\x0a\\xc2\\x9b\\x5ckkkkkkkkkkkkkkkkkkkkk"
                     "kkkkkkkkkkkkkkkkkkkk...\"; the known options are Domain, Memory and Name");
        /* Nothing is registered then. */
        assert_int_equal(region_registry_count(f.m->registry), 0);
}

static void test_unregister_of_unknown_region_is_no_such_region(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error unknown = SD_BUS_ERROR_NULL, again = SD_BUS_ERROR_NULL,
                                                  unmerge = SD_BUS_ERROR_NULL;
        _cleanup_close_ int fd = -EBADF;
        uint32_t id;

        new_manager(NULL);
        assert_int_equal(connect_client(0), 0);
        assert_true(call_method(0, "Unregister", &unknown, NULL, "u", (uint32_t) 4242) < 0);
        assert_error(&unknown, BUS_ERROR_NO_SUCH_REGION, "4242");

        fd = pidfd_open(start_child(), 0);
        assert_true(fd >= 0);
        assert_int_equal(register_process_by_pidfd(0, fd, NULL, NULL, &id), 0);
        assert_int_equal(call_method(0, "Unregister", NULL, NULL, "u", id), 0);
        assert_int_equal(region_registry_count(f.m->registry), 0);
        assert_true(call_method(0, "Unregister", &again, NULL, "u", id) < 0);
        assert_error(&again, BUS_ERROR_NO_SUCH_REGION, NULL);
        assert_true(call_method(0, "Unmerge", &unmerge, NULL, "u", id) < 0);
        assert_error(&unmerge, BUS_ERROR_NO_SUCH_REGION, NULL);
}

static void test_root_connects_beyond_max_connections_only_within_its_reserve(void **state) {
        size_t n = 1 + BUS_AUTH_ROOT_RESERVE;

        new_manager(STRV_MAKE("MaxConnections=1"));
        for (size_t i = 0; i < n; i++)
                assert_int_equal(connect_client(i), 0);
        assert_int_equal(connect_client(n), -ECONNRESET);
        assert_int_equal(bus_server_n_connections(f.m->bus), n);
        /* The accepted ones are served. */
        for (size_t i = 0; i < n; i++)
                assert_int_equal(get_number(i, "MaxConnections"), 1);

        /* Raising the bound over D-Bus lets one more in. */
        assert_int_equal(set_number(0, "MaxConnections", 2, NULL), 0);
        assert_int_equal(connect_client(n), 0);
        assert_int_equal(bus_server_n_connections(f.m->bus), n + 1);
        assert_int_equal(get_number(n, "MaxConnections"), 2);
}

static void test_property_set_emits_properties_changed_to_every_client(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot0 = NULL, *slot1 = NULL;
        PeerChangedProbe changed[2] = { { .interface = BUS_INTERFACE, .property = "PagesToScan" },
                                        { .interface = BUS_INTERFACE, .property = "PagesToScan" } };

        new_manager(NULL);
        assert_int_equal(connect_client(0), 0);
        assert_int_equal(connect_client(1), 0);
        assert_true(sd_bus_match_signal(f.clients[0], &slot0, NULL, BUS_OBJECT_PATH,
                                        PROPERTIES_INTERFACE, "PropertiesChanged",
                                        peer_client_on_properties_changed, &changed[0]) >= 0);
        assert_true(sd_bus_match_signal(f.clients[1], &slot1, NULL, BUS_OBJECT_PATH,
                                        PROPERTIES_INTERFACE, "PropertiesChanged",
                                        peer_client_on_properties_changed, &changed[1]) >= 0);

        assert_int_equal(set_number(0, "PagesToScan", 100, NULL), 0);
        for (size_t i = 0; i < ELEMENTSOF(changed); i++) {
                assert_true(peer_client_pump_until(f.m->event, f.clients[i], peer_client_saw_change,
                                                   &changed[i]));
                assert_int_equal(changed[i].n_signals, 1);
                assert_true(changed[i].has_value);
                assert_int_equal(changed[i].value, 100);
        }

        /*
         * A refused Set announces nothing. The server writes a signal before the
         * reply on the same connection, so once client 0 has its error and
         * client 1 its answer to a later call, any signal would be here already.
         */
        assert_int_equal(set_number(0, "PagesToScan", 0, &e), -EINVAL);
        assert_int_equal(get_number(1, "PagesToScan"), 100);
        assert_int_equal(changed[0].n_signals, 1);
        assert_int_equal(changed[1].n_signals, 1);
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
                TEST(test_setting_properties_read_the_settings_in_effect),
                TEST(test_root_sets_a_number_in_range_and_it_applies),
                TEST(test_number_out_of_range_is_refused_naming_the_range),
                TEST(test_read_only_setting_cannot_be_set),
                TEST(test_statistics_carry_the_rate_in_effect),
                TEST(test_scan_threads_change_over_the_bus_and_show_in_statistics),
                TEST(test_statistics_show_what_merged_pages_cost),
                TEST(test_pidfd_registration_is_listed_with_its_name),
                TEST(test_pidfd_of_an_exited_process_is_no_such_process),
                TEST(test_fd_that_is_not_a_pidfd_is_refused),
                TEST(test_bad_options_are_refused_naming_the_key),
                TEST(test_unregister_of_unknown_region_is_no_such_region),
                TEST(test_root_connects_beyond_max_connections_only_within_its_reserve),
                TEST(test_property_set_emits_properties_changed_to_every_client),
        };

        if (geteuid() != 0) {
                printf("1..0 # SKIP needs root: calls carry this process's credentials; only root sets\n");
                return 0;
        }
        /* A client the server closes must not kill the test with SIGPIPE. */
        (void) signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
