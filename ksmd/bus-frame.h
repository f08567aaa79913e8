/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * DOC: the frame, a bound on what a peer of the private socket sends
 *
 * sd-bus (252) reads a message whole before it looks at it, and takes one of
 * up to 128 MiB (BUS_MESSAGE_SIZE_MAX): bus_socket_read_message() reads the
 * fixed header, reallocates its buffer to the size the header declares and
 * fills it as the bytes arrive. It has no setting for a smaller bound. So on
 * the private socket sd-bus does not read the peer's socket: it reads one end
 * of a socketpair, and the frame reads the peer's socket, cuts what arrives
 * into the SASL lines of authentication and then D-Bus messages, checks each,
 * and writes it into the other end with the file descriptors that came with
 * it. sd-bus writes to the peer's socket itself.
 *
 * bus_frame_pump() fails, and the server closes the connection, when the
 * peer sends
 *   - before BEGIN: more than BUS_FRAME_MAX_AUTH_BYTES, a first byte that is
 *     not NUL, or file descriptors (sd-bus closes on those too): -ENOBUFS,
 *     -EBADMSG, -EPROTO;
 *   - a message whose fixed header declares more than
 *     BUS_FRAME_MAX_MESSAGE_BYTES: -EMSGSIZE; fewer than
 *     BUS_FRAME_MIN_MESSAGE_BYTES, or an endianness other than 'l' and 'B':
 *     -EBADMSG;
 *   - more than BUS_FRAME_MAX_FDS file descriptors with one message:
 *     -ETOOMANYREFS.
 * The frame holds a fixed header until it has checked it, so sd-bus never
 * sees, nor allocates for, a message the frame refuses. The sizes are those
 * sd-bus computes (16 + ALIGN8(fields) + body), in 64 bits: a fields length
 * near 4 GiB, which sd-bus's 32-bit ALIGN8() wraps to 0, is refused.
 *
 * File descriptors belong to the message they arrive with. The kernel hands
 * the descriptors a write carries to the first read that takes a byte of
 * that write. sd-bus reads no further than the end of the message at hand
 * (if it is 24 bytes or more: to learn the size it first reads 24 bytes), so
 * it gives them to the message that holds the write's first byte. The frame
 * reads no further than sd-bus would, and forwards the bytes of one read, with
 * its descriptors, in one write that holds bytes of one message only: sd-bus
 * gives every descriptor to the message it would have on the peer's socket.
 * Authentication is read a line at a time (a peek finds its end), and after
 * BEGIN nothing more is forwarded until sd-bus has left authentication
 * (bus_frame_notify_bus()): sd-bus reads authentication in chunks that may
 * reach past BEGIN, and closes a connection whose descriptors arrive then.
 *
 * Credentials: sd-bus reads its peer's from its input socket, the
 * socketpair, so they are this daemon's own. Nothing may use them: callers
 * are known by the credentials of accept time (bus-server.h); the server
 * tells sd-bus to take any identity a peer names in EXTERNAL
 * (sd_bus_set_anonymous()), and refuses an object with a member that sd-bus
 * would authorize from those credentials (bus_server_new()).
 *
 * What a connection holds of the peer's, at most: BUS_FRAME_BUFFER_BYTES
 * here, BUS_FRAME_PAIR_SNDBUF_BYTES (doubled by the kernel) in the
 * socketpair, and in sd-bus the message it dispatches and the next one
 * arriving, each at most BUS_FRAME_MAX_MESSAGE_BYTES.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "macro.h"

/*
 * The largest message a peer may send, its fixed header included. The
 * largest call of the API, RegisterRangeByPIDFD() with a Name and a Domain of
 * 64 characters and Memory, is about 400 bytes; no call takes a list that a
 * caller makes long. 64 KiB leaves room for calls to come (a list of 256
 * group ids is 1 KiB) and is what sd-bus allows a whole authentication.
 */
#define BUS_FRAME_MAX_MESSAGE_BYTES (64u * 1024u)
/* The smallest message there is: the fixed header and one header field (a reply's serial). */
#define BUS_FRAME_MIN_MESSAGE_BYTES 24u
#define BUS_FRAME_HEADER_BYTES 16u
/* Everything before and including BEGIN: clients send under 100 bytes (sd-bus itself allows 64 KiB). */
#define BUS_FRAME_MAX_AUTH_BYTES 4096u
/* File descriptors with one message: a call takes at most two (a pidfd and the Memory option). */
#define BUS_FRAME_MAX_FDS 4u
/* What the frame reads at once, and so the most of the peer's it holds. */
#define BUS_FRAME_BUFFER_BYTES (16u * 1024u)
/* The send buffer of the frame's end of the socketpair: what waits there for sd-bus. */
#define BUS_FRAME_PAIR_SNDBUF_BYTES (64u * 1024u)

typedef struct BusFrame BusFrame;

/* Called when the frame refuses what the peer sent (an error of bus_frame_pump()). */
typedef void (*BusFrameFailed)(BusFrame *f, int error, void *userdata);

/*
 * A frame for the accepted socket peer_fd, which stays the caller's (the
 * frame reads a duplicate of it, so that it can watch it in the same event
 * loop as sd-bus, which writes to it). 0, *ret and in *ret_bus_fd the end of
 * a new socketpair for sd-bus to read (close-on-exec, non-blocking; the
 * caller's); -errno.
 */
int bus_frame_new(int peer_fd, BusFrameFailed failed, void *userdata, BusFrame **ret, int *ret_bus_fd);
BusFrame *bus_frame_free(BusFrame *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(BusFrame *, bus_frame_free);

/*
 * Moves what it can from the peer to sd-bus whenever event says the sockets
 * are ready, and calls failed() on a refusal; failed() may free the frame.
 */
int bus_frame_attach_event(BusFrame *f, sd_event *event, int64_t priority);

/*
 * One step: forwards what waits, then reads what may come next and forwards
 * it. 1 if it read or wrote anything, 0 if it can do nothing until a socket
 * is ready or sd-bus leaves authentication, or the -errno of a refusal (see
 * above). A peer that closes, or whose socket fails, is no refusal: sd-bus
 * reads what came before and then end of file.
 */
int bus_frame_pump(BusFrame *f);

/*
 * To be told after sd-bus processed what it could: whether it runs
 * (sd_bus_is_ready()). Once it does, messages flow. -EACCES if sd-bus read
 * the BEGIN forwarded to it and stays in authentication: it refused the
 * peer's authentication; then the connection must be closed, since nothing
 * more is forwarded.
 */
int bus_frame_notify_bus(BusFrame *f, bool bus_running);

/* The size the last fixed header read declared (0 before any): what -EMSGSIZE refused. */
uint64_t bus_frame_message_bytes(const BusFrame *f);

/* What a refusal of bus_frame_pump() or bus_frame_notify_bus() means, for a log line: "it sent ...". */
const char *bus_frame_describe(const BusFrame *f, int error, char *buf, size_t size);

/*
 * The size of the message a fixed header declares, as sd-bus computes it
 * (16 + ALIGN8(fields length) + body length, in the header's byte order),
 * but in 64 bits. 0 and *ret; -EBADMSG if the first byte is neither 'l' nor 'B'.
 */
int bus_frame_message_size(const uint8_t header[static BUS_FRAME_HEADER_BYTES], uint64_t *ret);
