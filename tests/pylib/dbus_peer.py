# SPDX-License-Identifier: GPL-2.0-or-later
"""A minimal D-Bus client for the tests: one method call on a peer-to-peer
socket (no Hello, as ksmd's private socket needs), with file descriptors.

dbus-send cannot pass file descriptors or send a{sv} with variant values, and
busctl always sends Hello first; this speaks the wire protocol directly
(https://dbus.freedesktop.org/doc/dbus-specification.html) for the few types
the tests send: y b u t s o g h v a{sv}. Replies are decoded as far as the tests
need: the error name and message, or a body of basic types."""

import array
import os
import socket
import struct

ALIGN = {"y": 1, "b": 4, "u": 4, "t": 8, "s": 4, "o": 4, "g": 1, "h": 4, "v": 1, "a": 4, "{": 8, "(": 8}


class Variant:
    def __init__(self, signature, value):
        self.signature = signature
        self.value = value


def _split(sig):
    """The single complete types of a signature."""
    out, i = [], 0
    while i < len(sig):
        j = _end(sig, i)
        out.append(sig[i:j])
        i = j
    return out


def _end(sig, i):
    c = sig[i]
    if c == "a":
        return _end(sig, i + 1)
    if c in "({":
        close = ")" if c == "(" else "}"
        i += 1
        while sig[i] != close:
            i = _end(sig, i)
        return i + 1
    return i + 1


class _Writer:
    def __init__(self):
        self.buf = bytearray()
        self.fds = []

    def pad(self, n):
        while len(self.buf) % n:
            self.buf.append(0)

    def write(self, t, v):
        c = t[0]
        self.pad(ALIGN[c])
        if c == "y":
            self.buf += struct.pack("<B", v)
        elif c == "b":
            self.buf += struct.pack("<I", 1 if v else 0)
        elif c == "u":
            self.buf += struct.pack("<I", v)
        elif c == "t":
            self.buf += struct.pack("<Q", v)
        elif c in "so":
            b = v.encode()
            self.buf += struct.pack("<I", len(b)) + b + b"\0"
        elif c == "g":
            b = v.encode()
            self.buf += struct.pack("<B", len(b)) + b + b"\0"
        elif c == "h":
            self.buf += struct.pack("<I", len(self.fds))
            self.fds.append(v)
        elif c == "v":
            self.write("g", v.signature)
            self.write(v.signature, v.value)
        elif c == "a":
            elem = t[1:]
            self.pad(4)
            at = len(self.buf)
            self.buf += b"\0\0\0\0"
            self.pad(ALIGN[elem[0]])
            start = len(self.buf)
            # A dict entry array from a dict, or from (key, value) pairs to repeat a key.
            items = v.items() if isinstance(v, dict) else v
            for item in items:
                self.write(elem, item)
            struct.pack_into("<I", self.buf, at, len(self.buf) - start)
        elif c in "({":
            for sub, x in zip(_split(t[1:-1]), v):
                self.write(sub, x)
        else:
            raise ValueError(f"type {t} not supported")


class _Reader:
    def __init__(self, buf, pos=0):
        self.buf = buf
        self.pos = pos

    def pad(self, n):
        self.pos = (self.pos + n - 1) // n * n

    def read(self, t):
        c = t[0]
        self.pad(ALIGN.get(c, 1))
        if c == "y":
            v = self.buf[self.pos]
            self.pos += 1
        elif c in "buh":
            (v,) = struct.unpack_from("<I", self.buf, self.pos)
            self.pos += 4
            v = bool(v) if c == "b" else v
        elif c == "t":
            (v,) = struct.unpack_from("<Q", self.buf, self.pos)
            self.pos += 8
        elif c in "so":
            (n,) = struct.unpack_from("<I", self.buf, self.pos)
            v = self.buf[self.pos + 4:self.pos + 4 + n].decode()
            self.pos += 4 + n + 1
        elif c == "g":
            n = self.buf[self.pos]
            v = self.buf[self.pos + 1:self.pos + 1 + n].decode()
            self.pos += 1 + n + 1
        elif c == "v":
            sig = self.read("g")
            v = self.read(sig)
        elif c == "a":
            (n,) = struct.unpack_from("<I", self.buf, self.pos)
            self.pos += 4
            self.pad(ALIGN[t[1]])
            end = self.pos + n
            v = []
            while self.pos < end:
                v.append(self.read(t[1:]))
        elif c in "({":
            v = tuple(self.read(sub) for sub in _split(t[1:-1]))
        else:
            raise ValueError(f"type {t} not supported")
        return v


class Reply:
    def __init__(self, error_name, body):
        self.error_name = error_name
        self.body = body

    @property
    def error_message(self):
        return self.body[0] if self.error_name and self.body else ""


def call(socket_path, member, signature="", args=(), interface="org.ksmd.Manager1", path="/org/ksmd/Manager1"):
    """Calls member on the peer at socket_path; returns a Reply (error_name is None on success)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(socket_path)
        f = s.makefile("rb")
        # Pipelined, as sd-bus and libdbus do: the server has read BEGIN once it
        # answered, so the first message (which may carry file descriptors)
        # never arrives in the same read as the authentication lines.
        s.sendall(b"\0AUTH EXTERNAL " + str(os.geteuid()).encode().hex().encode() + b"\r\n"
                  b"NEGOTIATE_UNIX_FD\r\nBEGIN\r\n")
        if not f.readline().startswith(b"OK "):
            raise ConnectionError("EXTERNAL authentication refused")
        if not f.readline().startswith(b"AGREE_UNIX_FD"):
            raise ConnectionError("the peer does not take file descriptors")

        body = _Writer()
        for t, v in zip(_split(signature), args):
            body.write(t, v)
        fields = [(1, Variant("o", path)), (2, Variant("s", interface)), (3, Variant("s", member))]
        if signature:
            fields.append((8, Variant("g", signature)))
        if body.fds:
            fields.append((9, Variant("u", len(body.fds))))
        head = _Writer()
        for t, v in (("y", ord("l")), ("y", 1), ("y", 0), ("y", 1), ("u", len(body.buf)), ("u", 1)):
            head.write(t, v)
        head.write("a(yv)", fields)
        head.pad(8)
        msg = bytes(head.buf + body.buf)
        if body.fds:
            s.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", body.fds))])
        else:
            s.sendall(msg)

        # The answer: skip signals (PropertiesChanged) until the reply to serial 1.
        while True:
            fixed = f.read(16)
            if len(fixed) < 16:
                raise ConnectionError("the peer closed the connection without a reply")
            if fixed[0:1] != b"l":
                raise ValueError("big-endian reply not supported")
            body_len, _serial, fields_len = struct.unpack_from("<III", fixed, 4)
            rest_len = (fields_len + 7) // 8 * 8 + body_len
            msg = fixed + f.read(rest_len)
            r = _Reader(msg, 12)
            header = dict(r.read("a(yv)"))
            r.pad(8)
            if header.get(5) != 1:
                continue
            sig = header.get(8, "")
            body_r = _Reader(msg[r.pos:])
            values = [body_r.read(t) for t in _split(sig)]
            return Reply(header.get(4) if msg[1] == 3 else None, values)
