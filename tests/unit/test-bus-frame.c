/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The frame between a peer of the private socket and sd-bus (bus-frame.c),
 * on real sockets: a socketpair stands for the accepted connection (the test
 * writes the peer's end) and the test reads what the frame forwards where
 * sd-bus would. No sd-bus here: what sd-bus then does is tested with the
 * server in test-bus-server.c. Hostile input first among them: headers that
 * claim too much or are not D-Bus, bytes that trickle, descriptors where
 * they do not belong, authentication that never ends.
 */
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "bus-frame.h"
#include "macro.h"

#define AUTH "\0AUTH EXTERNAL\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n"
#define AUTH_BYTES (sizeof(AUTH) - 1)

static struct {
        int peer;                        /* the peer's end: the test writes what a client sends here */
        int accepted;                    /* the daemon's end, which sd-bus writes and the frame reads */
        int bus;                         /* where sd-bus would read */
        BusFrame *frame;
} f;

static int setup(void **state) {
        int sv[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        f.peer = sv[0];
        f.accepted = sv[1];
        assert_int_equal(bus_frame_new(f.accepted, NULL, NULL, &f.frame, &f.bus), 0);
        return 0;
}

static int teardown(void **state) {
        f.frame = bus_frame_free(f.frame);
        f.bus = safe_close(f.bus);
        f.accepted = safe_close(f.accepted);
        f.peer = safe_close(f.peer);
        return 0;
}

/* Sends what a peer sends, with descriptors if n_fds > 0, in one write. */
static void peer_send(const void *p, size_t n, const int *fds, size_t n_fds) {
        struct iovec iov = { (void *) p, n };
        union {
                struct cmsghdr hdr;
                uint8_t buf[CMSG_SPACE(sizeof(int) * 8)];
        } control = {};
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

        assert_true(n_fds <= 8);
        if (n_fds > 0) {
                mh.msg_control = &control;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                control.hdr.cmsg_level = SOL_SOCKET;
                control.hdr.cmsg_type = SCM_RIGHTS;
                control.hdr.cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(&control.hdr), fds, sizeof(int) * n_fds);
        }
        assert_int_equal(sendmsg(f.peer, &mh, MSG_NOSIGNAL), (ssize_t) n);
}

/* Pumps until the frame can do nothing more: its last answer (0, or a refusal). */
static int pump(void) {
        int r;

        for (unsigned i = 0; i < 100000; i++) {
                r = bus_frame_pump(f.frame);
                if (r <= 0)
                        return r;
        }
        fail_msg("the frame never stops");
        return 0;
}

/*
 * Reads at most size bytes where sd-bus reads, in one read, and the
 * descriptors that come with them (closed; their number in *ret_n_fds).
 * The bytes read, 0 at end of file, -EAGAIN.
 */
static ssize_t bus_read(void *p, size_t size, size_t *ret_n_fds) {
        struct iovec iov = { p, size };
        union {
                struct cmsghdr hdr;
                uint8_t buf[CMSG_SPACE(sizeof(int) * 16)];
        } control;
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        size_t n_fds = 0;
        ssize_t k;

        k = recvmsg(f.bus, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (k < 0)
                return -errno;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

                        for (size_t i = 0; i < n; i++)
                                safe_close(((int *) CMSG_DATA(c))[i]);
                        n_fds += n;
                }
        if (ret_n_fds)
                *ret_n_fds = n_fds;
        return k;
}

/* Everything forwarded so far, into p (at most size); its length. */
static size_t bus_drain(void *p, size_t size) {
        size_t n = 0;
        ssize_t k;

        while (n < size && (k = bus_read((uint8_t *) p + n, size - n, NULL)) > 0)
                n += (size_t) k;
        return n;
}

/* The whole authentication, BEGIN included, goes to sd-bus; then it runs. */
static void authenticate(void) {
        char got[64];

        peer_send(AUTH, AUTH_BYTES, NULL, 0);
        assert_int_equal(pump(), 0);
        assert_int_equal(bus_drain(got, sizeof(got)), AUTH_BYTES);
        assert_memory_equal(got, AUTH, AUTH_BYTES);
        assert_int_equal(bus_frame_notify_bus(f.frame, true), 0);
}

/*
 * A message of fields_bytes of header fields (padded to 8) and body_bytes of
 * body in byte order endian, as much of it as fits in buf: its full size.
 * The frame reads only the fixed header; the rest is a pattern.
 */
static size_t make_message(uint8_t *buf, size_t size, char endian, uint32_t fields_bytes,
                           uint32_t body_bytes) {
        uint64_t total = 16 + ((fields_bytes + UINT64_C(7)) & ~UINT64_C(7)) + body_bytes;
        uint32_t u;

        assert_true(size >= 16);
        buf[0] = (uint8_t) endian;
        buf[1] = 1;                      /* METHOD_CALL */
        buf[2] = 0;
        buf[3] = 1;
        u = endian == 'B' ? htobe32(body_bytes) : htole32(body_bytes);
        memcpy(buf + 4, &u, sizeof(u));
        u = endian == 'B' ? htobe32(1) : htole32(1);
        memcpy(buf + 8, &u, sizeof(u));
        u = endian == 'B' ? htobe32(fields_bytes) : htole32(fields_bytes);
        memcpy(buf + 12, &u, sizeof(u));
        for (size_t i = 16; i < size && i < total; i++)
                buf[i] = (uint8_t) (i * 7);
        return (size_t) total;
}

static size_t open_fds(void) {
        size_t n = 0;

        for (int fd = 0; fd < 1024; fd++)
                n += fcntl(fd, F_GETFD) >= 0;
        return n;
}

static void test_message_size_is_read_in_either_byte_order(void **state) {
        uint8_t h[16];
        uint64_t size;

        make_message(h, sizeof(h), 'l', 13, 100);
        assert_int_equal(bus_frame_message_size(h, &size), 0);
        assert_int_equal(size, 16 + 16 + 100);
        make_message(h, sizeof(h), 'B', 13, 100);
        assert_int_equal(bus_frame_message_size(h, &size), 0);
        assert_int_equal(size, 16 + 16 + 100);
        /* The same bytes read the other way round are another size. */
        h[0] = 'l';
        assert_int_equal(bus_frame_message_size(h, &size), 0);
        assert_int_equal(size, 16 + ((be32toh(13) + UINT64_C(7)) & ~UINT64_C(7)) + be32toh(100));
}

static void test_bad_endianness_byte_is_refused(void **state) {
        uint8_t m[64];
        uint64_t size = 42;

        make_message(m, sizeof(m), 'x', 8, 8);
        assert_int_equal(bus_frame_message_size(m, &size), -EBADMSG);
        assert_int_equal(size, 42);

        authenticate();
        peer_send(m, 32, NULL, 0);
        assert_int_equal(pump(), -EBADMSG);
        assert_int_equal(bus_read(m, sizeof(m), NULL), -EAGAIN);
}

/* sd-bus's own sum wraps ALIGN8() of such a fields length in 32 bits, to a 16-byte message. */
static void test_fields_length_near_4_GiB_is_refused_not_wrapped(void **state) {
        uint8_t m[16];
        uint64_t size;

        make_message(m, sizeof(m), 'l', UINT32_MAX - 6, 0);
        assert_int_equal(bus_frame_message_size(m, &size), 0);
        assert_int_equal(size, 16 + (UINT64_C(1) << 32));

        authenticate();
        peer_send(m, sizeof(m), NULL, 0);
        assert_int_equal(pump(), -EMSGSIZE);
        assert_int_equal(bus_read(m, sizeof(m), NULL), -EAGAIN);
}

static void test_header_claiming_128_MiB_is_refused_before_sd_bus_sees_it(void **state) {
        static uint8_t m[4096];
        char text[128];

        authenticate();
        make_message(m, sizeof(m), 'l', 64, 128u << 20);
        peer_send(m, sizeof(m), NULL, 0);
        assert_int_equal(pump(), -EMSGSIZE);
        /* Not even the fixed header went on, so sd-bus allocated nothing for it. */
        assert_int_equal(bus_read(m, sizeof(m), NULL), -EAGAIN);
        assert_int_equal(bus_frame_message_bytes(f.frame), 16 + 64 + (128u << 20));
        bus_frame_describe(f.frame, -EMSGSIZE, text, sizeof(text));
        assert_non_null(strstr(text, "134217808 bytes (at most 65536)"));
}

static void test_message_at_the_bound_is_forwarded_whole(void **state) {
        static uint8_t m[BUS_FRAME_MAX_MESSAGE_BYTES], got[BUS_FRAME_MAX_MESSAGE_BYTES + 1];
        size_t n = 0;

        authenticate();
        assert_int_equal(make_message(m, sizeof(m), 'l', 64, BUS_FRAME_MAX_MESSAGE_BYTES - 16 - 64),
                         sizeof(m));
        peer_send(m, sizeof(m), NULL, 0);
        while (n < sizeof(m)) {
                int r = pump();

                assert_true(r == 0);
                n += bus_drain(got + n, sizeof(got) - n);
        }
        assert_int_equal(n, sizeof(m));
        assert_memory_equal(got, m, sizeof(m));
}

static void test_message_shorter_than_a_header_field_is_refused(void **state) {
        uint8_t m[16];

        authenticate();
        make_message(m, sizeof(m), 'l', 0, 0);
        peer_send(m, sizeof(m), NULL, 0);
        assert_int_equal(pump(), -EBADMSG);
}

static void test_big_endian_message_is_forwarded_intact(void **state) {
        uint8_t m[200], got[256];
        size_t n;

        authenticate();
        n = make_message(m, sizeof(m), 'B', 40, 100);
        assert_int_equal(n, 16 + 40 + 100);
        peer_send(m, n, NULL, 0);
        assert_int_equal(pump(), 0);
        assert_int_equal(bus_drain(got, sizeof(got)), n);
        assert_memory_equal(got, m, n);
}

/* Bytes that trickle reach sd-bus as they come, and the frame reads nothing past the message's end. */
static void test_body_arriving_byte_by_byte_is_forwarded_as_it_comes(void **state) {
        uint8_t m[128], next[64], got[256];
        size_t n, n_got = 0, n_fds;
        int fd;

        authenticate();
        n = make_message(m, sizeof(m), 'l', 16, 64);
        for (size_t i = 0; i < n; i++) {
                peer_send(m + i, 1, NULL, 0);
                assert_int_equal(pump(), 0);
                n_got += bus_drain(got + n_got, sizeof(got) - n_got);
                /* The fixed header is held until it is whole and checked. */
                assert_int_equal(n_got, i < 15 ? 0 : i + 1);
        }
        assert_memory_equal(got, m, n);

        /* The next message comes with a descriptor, which stays with it. */
        make_message(next, sizeof(next), 'l', 8, 40);
        fd = STDERR_FILENO;
        peer_send(next, sizeof(next), &fd, 1);
        assert_int_equal(pump(), 0);
        assert_int_equal(bus_read(got, sizeof(got), &n_fds), (ssize_t) sizeof(next));
        assert_int_equal(n_fds, 1);
}

/*
 * Two messages queued at once, the second with descriptors in its own write:
 * read up to the first one's end, the frame leaves the descriptors in the
 * socket until it reads the second, and hands them on with the second's
 * bytes. sd-bus, reading up to the first one's end, gets none with it.
 */
static void test_descriptors_stay_with_the_message_they_came_with(void **state) {
        uint8_t a[96], b[64], got[256];
        int fds[2] = { STDIN_FILENO, STDERR_FILENO };
        size_t n_a, n_b, n_fds;

        authenticate();
        n_a = make_message(a, sizeof(a), 'l', 16, 64);
        n_b = make_message(b, sizeof(b), 'B', 8, 40);
        peer_send(a, n_a, NULL, 0);
        peer_send(b, n_b, fds, 2);
        assert_int_equal(pump(), 0);
        assert_int_equal(bus_read(got, n_a, &n_fds), (ssize_t) n_a);
        assert_int_equal(n_fds, 0);
        assert_memory_equal(got, a, n_a);
        assert_int_equal(bus_read(got, sizeof(got), &n_fds), (ssize_t) n_b);
        assert_int_equal(n_fds, 2);
        assert_memory_equal(got, b, n_b);
}

static void test_descriptors_reach_sd_bus_as_the_same_files(void **state) {
        uint8_t m[64], got[64];
        int pipe_fds[2], fds[2];
        union {
                struct cmsghdr hdr;
                uint8_t buf[CMSG_SPACE(sizeof(int) * 4)];
        } control;
        struct iovec iov = { got, sizeof(got) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                             .msg_controllen = sizeof(control) };
        struct cmsghdr *c;
        struct stat a, b;

        authenticate();
        assert_int_equal(pipe2(pipe_fds, O_CLOEXEC), 0);
        make_message(m, sizeof(m), 'l', 8, 40);
        peer_send(m, sizeof(m), pipe_fds, 2);
        assert_int_equal(pump(), 0);
        assert_int_equal(recvmsg(f.bus, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC), (ssize_t) sizeof(m));
        c = CMSG_FIRSTHDR(&mh);
        assert_non_null(c);
        if (!c)
                return;
        assert_int_equal(c->cmsg_len, CMSG_LEN(sizeof(int) * 2));
        memcpy(fds, CMSG_DATA(c), sizeof(fds));
        for (size_t i = 0; i < 2; i++) {
                assert_int_equal(fstat(pipe_fds[i], &a), 0);
                assert_int_equal(fstat(fds[i], &b), 0);
                assert_int_equal(a.st_ino, b.st_ino);
                safe_close(fds[i]);
                safe_close(pipe_fds[i]);
        }
}

static void test_more_descriptors_than_the_bound_are_refused_and_closed(void **state) {
        int fds[BUS_FRAME_MAX_FDS + 1];
        size_t before;
        uint8_t m[64];

        authenticate();
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                fds[i] = STDERR_FILENO;
        before = open_fds();
        make_message(m, sizeof(m), 'l', 8, 40);
        peer_send(m, 16, NULL, 0);
        peer_send(m + 16, sizeof(m) - 16, fds, ELEMENTSOF(fds));
        assert_int_equal(pump(), -ETOOMANYREFS);
        f.frame = bus_frame_free(f.frame);
        /* Only the frame's own sockets are gone: its duplicate and its end of the socketpair. */
        assert_int_equal(open_fds(), before - 2);
}

static void test_descriptors_before_begin_are_refused(void **state) {
        int fd = STDERR_FILENO;

        peer_send("\0AUTH EXTERNAL\r\n", 16, &fd, 1);
        assert_int_equal(pump(), -EPROTO);
}

static void test_first_byte_not_nul_is_refused(void **state) {
        peer_send("AUTH EXTERNAL\r\n", 15, NULL, 0);
        assert_int_equal(pump(), -EBADMSG);
}

static void test_authentication_without_newline_is_refused_at_the_bound(void **state) {
        static char line[BUS_FRAME_MAX_AUTH_BYTES + 1024], got[sizeof(line)];

        memset(line, 'A', sizeof(line));
        line[0] = 0;
        line[sizeof(line) - 1] = '\r';   /* never a "\r\n" */
        peer_send(line, sizeof(line), NULL, 0);
        assert_int_equal(pump(), -ENOBUFS);
        /* sd-bus got no more than the bound. */
        assert_int_equal(bus_drain(got, sizeof(got)), BUS_FRAME_MAX_AUTH_BYTES);
}

/* A line's "\r" at the end of one read and its "\n" at the start of the next still end it. */
static void test_line_end_split_across_reads_is_seen(void **state) {
        uint8_t m[64], got[64];
        size_t n;

        peer_send("\0AUTH EXTERNAL\r", 15, NULL, 0);
        assert_int_equal(pump(), 0);
        peer_send("\nBEGIN\r", 7, NULL, 0);
        assert_int_equal(pump(), 0);
        peer_send("\n", 1, NULL, 0);
        assert_int_equal(pump(), 0);
        assert_int_equal(bus_drain(got, sizeof(got)), 23);
        n = make_message(m, sizeof(m), 'l', 8, 8);
        peer_send(m, n, NULL, 0);
        /* BEGIN was seen: nothing more until sd-bus runs. */
        assert_int_equal(pump(), 0);
        assert_int_equal(bus_read(got, sizeof(got), NULL), -EAGAIN);
        assert_int_equal(bus_frame_notify_bus(f.frame, true), 0);
        assert_int_equal(pump(), 0);
        assert_int_equal(bus_drain(got, sizeof(got)), n);
}

/* A message in the same write as BEGIN waits until sd-bus has left authentication. */
static void test_nothing_after_begin_goes_on_until_sd_bus_runs(void **state) {
        uint8_t w[128], got[128];
        size_t n, n_fds;
        int fd = STDERR_FILENO;

        memcpy(w, AUTH, AUTH_BYTES);
        n = make_message(w + AUTH_BYTES, sizeof(w) - AUTH_BYTES, 'l', 8, 8);
        peer_send(w, AUTH_BYTES + n, NULL, 0);
        peer_send(w + AUTH_BYTES, n, &fd, 1);
        assert_int_equal(pump(), 0);
        /* sd-bus has not read BEGIN yet. */
        assert_int_equal(bus_frame_notify_bus(f.frame, false), 0);
        assert_int_equal(bus_drain(got, sizeof(got)), AUTH_BYTES);
        assert_int_equal(pump(), 0);
        assert_int_equal(bus_frame_notify_bus(f.frame, true), 0);
        assert_int_equal(pump(), 0);
        /* Each read no longer than a message, as sd-bus reads: the kernel glues writes otherwise. */
        assert_int_equal(bus_read(got, n, &n_fds), (ssize_t) n);
        assert_int_equal(n_fds, 0);
        assert_memory_equal(got, w + AUTH_BYTES, n);
        assert_int_equal(bus_read(got, n, &n_fds), (ssize_t) n);
        assert_int_equal(n_fds, 1);
}

static void test_begin_that_sd_bus_read_and_refused_is_reported(void **state) {
        char got[16];

        peer_send("\0BEGIN\r\n", 8, NULL, 0);
        assert_int_equal(pump(), 0);
        assert_int_equal(bus_frame_notify_bus(f.frame, false), 0);
        assert_int_equal(bus_drain(got, sizeof(got)), 8);
        /* It read BEGIN and still authenticates. */
        assert_int_equal(bus_frame_notify_bus(f.frame, false), -EACCES);
}

static void test_end_of_file_reaches_sd_bus_after_what_came_before(void **state) {
        uint8_t m[64], got[128];
        size_t n;

        authenticate();
        n = make_message(m, sizeof(m), 'l', 8, 40);
        peer_send(m, n, NULL, 0);
        peer_send(m, 10, NULL, 0);       /* a fixed header cut short: not forwarded */
        f.peer = safe_close(f.peer);
        assert_int_equal(pump(), 0);
        assert_int_equal(bus_drain(got, sizeof(got)), n);
        assert_int_equal(bus_read(got, sizeof(got), NULL), 0);
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
                TEST(test_message_size_is_read_in_either_byte_order),
                TEST(test_bad_endianness_byte_is_refused),
                TEST(test_fields_length_near_4_GiB_is_refused_not_wrapped),
                TEST(test_header_claiming_128_MiB_is_refused_before_sd_bus_sees_it),
                TEST(test_message_at_the_bound_is_forwarded_whole),
                TEST(test_message_shorter_than_a_header_field_is_refused),
                TEST(test_big_endian_message_is_forwarded_intact),
                TEST(test_body_arriving_byte_by_byte_is_forwarded_as_it_comes),
                TEST(test_descriptors_stay_with_the_message_they_came_with),
                TEST(test_descriptors_reach_sd_bus_as_the_same_files),
                TEST(test_more_descriptors_than_the_bound_are_refused_and_closed),
                TEST(test_descriptors_before_begin_are_refused),
                TEST(test_first_byte_not_nul_is_refused),
                TEST(test_authentication_without_newline_is_refused_at_the_bound),
                TEST(test_line_end_split_across_reads_is_seen),
                TEST(test_nothing_after_begin_goes_on_until_sd_bus_runs),
                TEST(test_begin_that_sd_bus_read_and_refused_is_reported),
                TEST(test_end_of_file_reaches_sd_bus_after_what_came_before),
        };

        (void) signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
