"""raw091: AMQP 0-9-1 by hand, for the tests that send what no client
library sends (bad frames, methods out of place, exact byte sequences):
frame and field encoders and Raw, a client that reads one frame at a time.
Shared by tests 50, 57 and 58."""
import socket
import struct

HEADER = b"AMQP\x00\x00\x09\x01"


def shortstr(s):
    b = s.encode() if isinstance(s, str) else s
    return bytes([len(b)]) + b


def longstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">I", len(b)) + b


def table(d):
    """A field table of strings and booleans, with its length."""
    out = b""
    for k, v in d.items():
        if isinstance(v, bool):
            out += shortstr(k) + b"t" + bytes([v])
        elif isinstance(v, dict):
            out += shortstr(k) + b"F" + table(v)
        else:
            out += shortstr(k) + b"S" + longstr(v)
    return struct.pack(">I", len(out)) + out


def frame(ftype, ch, payload):
    return struct.pack(">BHI", ftype, ch, len(payload)) + payload + b"\xce"


def method(ch, cls, mid, args=b""):
    return frame(1, ch, struct.pack(">HH", cls, mid) + args)


class Raw:
    """An AMQP 0-9-1 client by hand: one frame at a time."""

    def __init__(self, port, timeout=5):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, b):
        self.s.sendall(b)

    def read_exact(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise EOFError(f"closed by the broker ({len(self.buf)} of {n} bytes read)")
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self):
        """(type, channel, payload), skipping heartbeats."""
        while True:
            t, ch, size = struct.unpack(">BHI", self.read_exact(7))
            payload = self.read_exact(size)
            assert self.read_exact(1) == b"\xce", "frame-end"
            if t != 8:
                return t, ch, payload

    def method(self, skip_content=False):
        """(channel, class, method, arguments); skip_content: content
        frames before it are read past (else one is an error)."""
        while True:
            t, ch, p = self.frame()
            if t != 1 and skip_content:
                continue
            assert t == 1, f"frame type {t}, not a method"
            cls, mid = struct.unpack(">HH", p[:4])
            return ch, cls, mid, p[4:]

    def expect(self, cls, mid, skip_content=False):
        ch, c, m, args = self.method(skip_content)
        if (c, m) != (cls, mid):
            raise AssertionError(f"expected {cls}.{mid}, got {c}.{m}: {args!r}")
        return args

    def expect_close(self, ch=0):
        """The reply code and text of a Connection.Close (or Channel.Close)."""
        got_ch, c, m, args = self.method()
        want = (10, 50) if ch == 0 else (20, 40)
        assert (got_ch, c, m) == (ch, *want), f"expected a close on {ch}, got {got_ch} {c}.{m} {args!r}"
        code = struct.unpack(">H", args[:2])[0]
        text = args[3:3 + args[2]].decode()
        return code, text

    def eof(self, timeout=5):
        """True if the broker closes the socket within timeout (after any
        frames it still sends)."""
        self.s.settimeout(timeout)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
                self.buf += d
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True

    def start_ok(self, mech="PLAIN", response=b"\0guest\0guest", caps=None):
        self.send(HEADER)
        start = self.expect(10, 10)
        props = {"product": "raw test"}
        if caps:
            props["capabilities"] = caps
        self.send(method(0, 10, 11, table(props) + shortstr(mech) + longstr(response) + shortstr("en_US")))
        return start

    def handshake(self, frame_max=4096, heartbeat=0, vhost="/"):
        self.start_ok()
        tune = self.expect(10, 30)
        self.send(method(0, 10, 31, struct.pack(">HIH", 0, frame_max, heartbeat)))
        self.send(method(0, 10, 40, shortstr(vhost) + shortstr("") + b"\0"))
        return tune

    def open(self, channel=False, **kw):
        """Handshake and Connection.Open; channel: and Channel.Open on 1."""
        tune = self.handshake(**kw)
        self.expect(10, 41)
        if channel:
            self.send(method(1, 20, 10, shortstr("")))
            self.expect(20, 11)
        return tune

    def close(self):
        self.s.close()
