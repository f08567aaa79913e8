/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <unistd.h>

#include "bus-frame.h"

/* What one wake-up moves at most (steps of BUS_FRAME_BUFFER_BYTES), so one peer cannot hold the loop. */
#define PUMPS_PER_WAKEUP 8u
/* Descriptors one read can return: those of one write, at most SCM_MAX_FD (253) in the kernel. */
#define RECV_MAX_FDS 253u

typedef enum FramePhase {
        FRAME_AUTH,                      /* SASL lines, up to BEGIN */
        FRAME_AWAIT_BUS,                 /* BEGIN forwarded: nothing more until sd-bus runs */
        FRAME_HEADER,                    /* the fixed header of a message, held until checked */
        FRAME_BODY,                      /* the rest of that message */
        FRAME_EOF,                       /* the peer closed: sd-bus gets what came before, then EOF */
} FramePhase;

struct BusFrame {
        int peer_fd;                     /* a duplicate of the accepted socket; the frame only reads it */
        int bus_fd;                      /* the frame's end of the socketpair; sd-bus reads the other */
        FramePhase phase;
        bool shut;                       /* FRAME_EOF passed on: bus_fd is shut down for writing */

        size_t auth_bytes;               /* read before BEGIN */
        char line[8];                    /* the start of the authentication line at hand, to spot BEGIN */
        size_t line_bytes;               /* the length of that line so far */
        bool cr;                         /* the last byte read before BEGIN was '\r' */

        uint8_t header[BUS_FRAME_HEADER_BYTES]; /* the fixed header at hand, until checked */
        size_t header_bytes;
        uint64_t message_bytes;          /* the size the last fixed header declared */
        uint64_t left_bytes;             /* of that message, still to read */
        size_t message_fds;              /* descriptors that came with it so far */

        /* Read, not yet forwarded: bytes of one line or message, and the descriptors that came with them. */
        uint8_t buf[BUS_FRAME_BUFFER_BYTES];
        size_t buf_start, buf_end;
        int fds[BUS_FRAME_MAX_FDS];
        size_t n_fds;

        sd_event_source *peer_source;    /* peer_fd readable */
        sd_event_source *bus_source;     /* bus_fd writable again */
        BusFrameFailed failed;
        void *userdata;
};

static void close_fds(int *fds, size_t n) {
        for (size_t i = 0; i < n; i++)
                safe_close(fds[i]);
}

int bus_frame_message_size(const uint8_t header[static BUS_FRAME_HEADER_BYTES], uint64_t *ret) {
        uint32_t body, fields;

        memcpy(&body, header + 4, sizeof(body));
        memcpy(&fields, header + 12, sizeof(fields));
        switch (header[0]) {
        case 'l':
                body = le32toh(body);
                fields = le32toh(fields);
                break;
        case 'B':
                body = be32toh(body);
                fields = be32toh(fields);
                break;
        default:
                return -EBADMSG;
        }
        *ret = BUS_FRAME_HEADER_BYTES + (((uint64_t) fields + 7) & ~UINT64_C(7)) + body;
        return 0;
}

BusFrame *bus_frame_free(BusFrame *f) {
        if (!f)
                return NULL;
        sd_event_source_disable_unref(f->peer_source);
        sd_event_source_disable_unref(f->bus_source);
        close_fds(f->fds, f->n_fds);
        safe_close(f->peer_fd);
        safe_close(f->bus_fd);
        free(f);
        return NULL;
}

int bus_frame_new(int peer_fd, BusFrameFailed failed, void *userdata, BusFrame **ret, int *ret_bus_fd) {
        _cleanup_(bus_frame_freep) BusFrame *f = NULL;
        int pair[2];

        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        f->bus_fd = -EBADF;
        f->failed = failed;
        f->userdata = userdata;
        f->phase = FRAME_AUTH;
        f->peer_fd = fcntl(peer_fd, F_DUPFD_CLOEXEC, 3);
        if (f->peer_fd < 0)
                return -errno;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) < 0)
                return -errno;
        f->bus_fd = pair[1];
        /* What waits for sd-bus stays small; the rest waits in the peer's socket, in the peer's memory. */
        if (setsockopt(f->bus_fd, SOL_SOCKET, SO_SNDBUF, &(int) { BUS_FRAME_PAIR_SNDBUF_BYTES },
                       sizeof(int)) < 0) {
                safe_close(pair[0]);
                return -errno;
        }
        *ret_bus_fd = pair[0];
        *ret = TAKE_PTR(f);
        return 0;
}

uint64_t bus_frame_message_bytes(const BusFrame *f) {
        return f->message_bytes;
}

/* Whether bytes read wait to go to sd-bus (a fixed header waits apart, in header, until checked). */
static bool frame_has_output(const BusFrame *f) {
        return f->buf_end > f->buf_start;
}

/* Writes what waits to sd-bus: 1 once nothing waits, 0 if the socketpair is full, -errno. */
static int frame_flush(BusFrame *f) {
        while (frame_has_output(f)) {
                struct iovec iov = { f->buf + f->buf_start, f->buf_end - f->buf_start };
                union {
                        struct cmsghdr hdr;
                        uint8_t buf[CMSG_SPACE(sizeof(int) * BUS_FRAME_MAX_FDS)];
                } control = {};
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
                ssize_t k;

                if (f->n_fds > 0) {
                        mh.msg_control = &control;
                        mh.msg_controllen = CMSG_SPACE(sizeof(int) * f->n_fds);
                        control.hdr.cmsg_level = SOL_SOCKET;
                        control.hdr.cmsg_type = SCM_RIGHTS;
                        control.hdr.cmsg_len = CMSG_LEN(sizeof(int) * f->n_fds);
                        memcpy(CMSG_DATA(&control.hdr), f->fds, sizeof(int) * f->n_fds);
                }
                k = sendmsg(f->bus_fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (k < 0)
                        return IN_SET(errno, EAGAIN, EINTR) ? 0 : -errno;
                /* The descriptors went with the first byte sent; sd-bus holds its own copies now. */
                close_fds(f->fds, f->n_fds);
                f->n_fds = 0;
                f->buf_start += (size_t) k;
        }
        f->buf_start = f->buf_end = 0;
        if (f->phase == FRAME_EOF && !f->shut) {
                /* sd-bus reads what came before, then end of file, as it would on the peer's socket. */
                if (shutdown(f->bus_fd, SHUT_WR) < 0 && errno != ENOTCONN)
                        return -errno;
                f->shut = true;
        }
        return 1;
}

/* The peer closed (or its socket failed): what came before still goes to sd-bus. */
static int frame_eof(BusFrame *f) {
        f->phase = FRAME_EOF;
        f->header_bytes = 0;             /* a fixed header cut short is not forwarded */
        return 1;
}

/*
 * Reads at most size bytes of the peer's into p, with the descriptors that
 * come with them, which join f->fds. The bytes read (> 0), 0 at end of file or
 * when the socket failed, -EAGAIN, or a refusal: -EPROTO (descriptors before
 * BEGIN, or more than a read can carry), -ETOOMANYREFS.
 */
static ssize_t frame_recv(BusFrame *f, void *p, size_t size) {
        struct iovec iov = { p, size };
        union {
                struct cmsghdr hdr;
                uint8_t buf[CMSG_SPACE(sizeof(int) * RECV_MAX_FDS)];
        } control;
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        int refusal = 0;
        ssize_t k;

        k = recvmsg(f->peer_fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (k < 0)
                return IN_SET(errno, EAGAIN, EINTR) ? -EAGAIN : 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                const int *fds = (const int *) CMSG_DATA(c);
                size_t n;

                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < n; i++) {
                        if (refusal == 0 && f->phase == FRAME_AUTH)
                                refusal = -EPROTO;
                        else if (refusal == 0 && f->message_fds >= BUS_FRAME_MAX_FDS)
                                refusal = -ETOOMANYREFS;
                        if (refusal < 0) {
                                safe_close(fds[i]);
                                continue;
                        }
                        f->fds[f->n_fds++] = fds[i];
                        f->message_fds++;
                }
        }
        if (refusal == 0 && (mh.msg_flags & MSG_CTRUNC))
                refusal = -EPROTO;       /* descriptors were lost: sd-bus would not get what was sent */
        return refusal < 0 ? refusal : k;
}

/* Reads authentication up to the end of the line at hand, and no further. */
static int frame_read_auth(BusFrame *f) {
        size_t room = BUS_FRAME_MAX_AUTH_BYTES - f->auth_bytes, end;
        ssize_t k;

        if (room == 0)
                return -ENOBUFS;
        /* Where the line ends, so as to read no further (a peek takes no descriptors). */
        k = recv(f->peer_fd, f->buf, MIN(room, sizeof(f->buf)), MSG_PEEK | MSG_DONTWAIT);
        if (k < 0)
                return IN_SET(errno, EAGAIN, EINTR) ? 0 : frame_eof(f);
        if (k == 0)
                return frame_eof(f);
        end = (size_t) k;
        for (size_t i = 0; i < (size_t) k; i++)
                if (f->buf[i] == '\n' && (i > 0 ? f->buf[i - 1] == '\r' : f->cr)) {
                        end = i + 1;
                        break;
                }

        k = frame_recv(f, f->buf, end);
        if (k == -EAGAIN)
                return 0;
        if (k < 0)
                return (int) k;
        if (k == 0)
                return frame_eof(f);
        for (size_t i = 0; i < (size_t) k; i++) {
                uint8_t b = f->buf[i];

                /* As sd-bus: a NUL byte first, then lines that end in "\r\n". */
                if (f->auth_bytes++ == 0) {
                        if (b != 0)
                                return -EBADMSG;
                        continue;
                }
                if (b == '\n' && f->cr) {
                        if (f->line_bytes == 6 && memcmp(f->line, "BEGIN\r", 6) == 0)
                                f->phase = FRAME_AWAIT_BUS;
                        f->line_bytes = 0;
                        f->cr = false;
                        continue;
                }
                if (f->line_bytes < sizeof(f->line))
                        f->line[f->line_bytes] = (char) b;
                f->line_bytes++;
                f->cr = b == '\r';
        }
        f->buf_end = (size_t) k;
        return 1;
}

/* Reads the message at hand, its fixed header first, and no further than its end. */
static int frame_read_message(BusFrame *f) {
        ssize_t k;
        int r;

        if (f->phase == FRAME_HEADER) {
                uint64_t size;

                k = frame_recv(f, f->header + f->header_bytes, sizeof(f->header) - f->header_bytes);
                if (k == -EAGAIN)
                        return 0;
                if (k < 0)
                        return (int) k;
                if (k == 0)
                        return frame_eof(f);
                f->header_bytes += (size_t) k;
                if (f->header_bytes < sizeof(f->header))
                        return 1;
                r = bus_frame_message_size(f->header, &size);
                if (r < 0)
                        return r;
                f->message_bytes = size;
                if (size > BUS_FRAME_MAX_MESSAGE_BYTES)
                        return -EMSGSIZE;
                /* sd-bus would read past the end of a shorter one, into the next. */
                if (size < BUS_FRAME_MIN_MESSAGE_BYTES)
                        return -EBADMSG;
                memcpy(f->buf, f->header, sizeof(f->header));
                f->buf_end = sizeof(f->header);
                f->header_bytes = 0;
                f->left_bytes = size - sizeof(f->header);
                f->phase = FRAME_BODY;
        }

        k = frame_recv(f, f->buf + f->buf_end, MIN(f->left_bytes, (uint64_t) (sizeof(f->buf) - f->buf_end)));
        if (k == -EAGAIN)
                return frame_has_output(f) ? 1 : 0;
        if (k < 0)
                return (int) k;
        if (k == 0)
                return frame_eof(f);
        f->buf_end += (size_t) k;
        f->left_bytes -= (uint64_t) k;
        if (f->left_bytes == 0) {
                f->phase = FRAME_HEADER;
                f->message_fds = 0;
        }
        return 1;
}

int bus_frame_pump(BusFrame *f) {
        int r;

        /* Nothing is read while something waits: what waits is all of one line or message. */
        r = frame_flush(f);
        if (r <= 0)
                return r;
        switch (f->phase) {
        case FRAME_AUTH:
                r = frame_read_auth(f);
                break;
        case FRAME_HEADER:
        case FRAME_BODY:
                r = frame_read_message(f);
                break;
        default:
                return 0;
        }
        if (r <= 0)
                return r;
        r = frame_flush(f);
        return r < 0 ? r : 1;
}

static void frame_update_events(BusFrame *f) {
        bool reading = IN_SET(f->phase, FRAME_AUTH, FRAME_HEADER, FRAME_BODY) && !frame_has_output(f);

        if (f->peer_source)
                (void) sd_event_source_set_enabled(f->peer_source, reading ? SD_EVENT_ON : SD_EVENT_OFF);
        if (f->bus_source)
                (void) sd_event_source_set_enabled(f->bus_source,
                                                   frame_has_output(f) ? SD_EVENT_ON : SD_EVENT_OFF);
}

static int on_ready(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        BusFrame *f = userdata;
        int r = 0;

        for (unsigned i = 0; i < PUMPS_PER_WAKEUP; i++) {
                r = bus_frame_pump(f);
                if (r <= 0)
                        break;
        }
        if (r < 0) {
                f->failed(f, r, f->userdata);
                return 0;                /* f may be gone */
        }
        frame_update_events(f);
        return 0;
}

int bus_frame_attach_event(BusFrame *f, sd_event *event, int64_t priority) {
        int r;

        r = sd_event_add_io(event, &f->peer_source, f->peer_fd, EPOLLIN, on_ready, f);
        if (r >= 0)
                r = sd_event_source_set_priority(f->peer_source, priority);
        if (r >= 0)
                r = sd_event_add_io(event, &f->bus_source, f->bus_fd, EPOLLOUT, on_ready, f);
        if (r >= 0)
                r = sd_event_source_set_priority(f->bus_source, priority);
        if (r < 0)
                return r;
        frame_update_events(f);
        return 0;
}

int bus_frame_notify_bus(BusFrame *f, bool bus_running) {
        int unread = 0;

        if (f->phase != FRAME_AWAIT_BUS)
                return 0;
        if (bus_running) {
                f->phase = FRAME_HEADER;
                frame_update_events(f);
                return 0;
        }
        if (frame_has_output(f))
                return 0;                /* BEGIN has not all reached sd-bus yet */
        /* Bytes sd-bus has not read yet (the kernel's count of what is queued on our end). */
        if (ioctl(f->bus_fd, SIOCOUTQ, &unread) < 0)
                return -errno;
        return unread > 0 ? 0 : -EACCES;
}

const char *bus_frame_describe(const BusFrame *f, int error, char *buf, size_t size) {
        switch (error) {
        case -EMSGSIZE:
                snprintf(buf, size, "it sent a message of %" PRIu64 " bytes (at most %u)", f->message_bytes,
                         BUS_FRAME_MAX_MESSAGE_BYTES);
                break;
        case -ETOOMANYREFS:
                snprintf(buf, size, "it sent more than %u file descriptors with one message",
                         BUS_FRAME_MAX_FDS);
                break;
        case -ENOBUFS:
                snprintf(buf, size, "it sent more than %u bytes before BEGIN", BUS_FRAME_MAX_AUTH_BYTES);
                break;
        case -EPROTO:
                snprintf(buf, size, "it sent file descriptors before BEGIN");
                break;
        case -EBADMSG:
                snprintf(buf, size, "it sent what is not the D-Bus protocol");
                break;
        case -EACCES:
                snprintf(buf, size, "sd-bus did not accept its authentication");
                break;
        default:
                snprintf(buf, size, "forwarding what it sent failed: %s", strerror(-error));
                break;
        }
        return buf;
}
