#!/usr/bin/python3
"""57: AMQP 0-9-1 sessions made of random but plausible frames, then the same
sessions with bytes flipped, cut or moved to other channels, thrown at the
real broker. The codec's fuzz target covers single frames; this covers the
state the channel layer keeps between them (publishes cut between header and
body, acks of tags never given, consumers cancelled twice, channels closed
under a get...). Seeded, so a failure names the session that caused it.

After every session the broker must still answer a fresh client (SurvivorTest
checks with AMQP 1.0 after each test; each test checks 0-9-1 itself every
few sessions), no connection may be left behind once the sockets close, and
at the end the broker must stop cleanly (exit 0), which an ASan build turns
into "nothing leaked, nothing touched after free"."""
import os
import random
import socket
import struct
import time

from admin_api import Api
from harness import SurvivorTest, main
from raw091 import HEADER, frame, longstr, method, shortstr

SESSIONS = int(os.environ.get("PLEXUS_CHAOS_SESSIONS", "150"))
BUDGET_S = float(os.environ.get("PLEXUS_CHAOS_SECONDS", "12"))


def handshake():
    props = longstr(shortstr("product") + b"S" + longstr(b"chaos"))
    return [
        HEADER,
        method(0, 10, 11, props + shortstr("PLAIN") + longstr(b"\0guest\0guest") + shortstr("en_US")),
        method(0, 10, 31, struct.pack(">HIH", 16, 8192, 0)),
        method(0, 10, 40, shortstr("/") + shortstr("") + b"\0"),
    ]


class Gen:
    """Frames a client could send, with arguments drawn from small sets so
    that they meet each other (the same queue names, tags near the ones the
    broker gives)."""

    QUEUES = ["c1", "c2", "", "amq.rabbitmq.reply-to", "amq.gen-x"]
    EXCHANGES = ["", "amq.direct", "amq.topic", "amq.fanout", "cx", "nope"]

    def __init__(self, rnd):
        self.r = rnd

    def q(self):
        return shortstr(self.r.choice(self.QUEUES))

    def x(self):
        return shortstr(self.r.choice(self.EXCHANGES))

    def bits(self, n):
        return bytes([self.r.getrandbits(n)])

    def table(self):
        c = self.r.random()
        if c < 0.6:
            return longstr(b"")
        if c < 0.8:
            return longstr(shortstr("x-max-length") + b"I" + struct.pack(">i", self.r.randint(-1, 3)))
        if c < 0.9:
            return longstr(shortstr("x-expires") + b"l" + struct.pack(">q", self.r.randint(0, 50)))
        return longstr(shortstr("x-match") + b"S" + longstr(b"any") + shortstr("k") + b"t\x01")

    def publish(self, ch):
        body = os.urandom(self.r.choice([0, 1, 10, 3000, 9000]))
        key = shortstr(self.r.choice(["c1", "c2", "k", ""]))
        out = [method(ch, 60, 40, struct.pack(">H", 0) + self.x() + key + self.bits(2))]
        flags = self.r.choice([0, 0x8000, 0x1000, 0x0200, 0x0100, 0xFFFC])
        props = b""
        if flags & 0x8000:
            props += shortstr("application/json")
        if flags & 0x1000:
            props += b"\x02"
        if flags & 0x0200:
            props += shortstr(self.r.choice(["amq.rabbitmq.reply-to", "c2"]))
        if flags & 0x0100:
            props += shortstr(self.r.choice(["100", "-1", "x", ""]))
        if flags == 0xFFFC:  # every flag, garbage behind them
            props = os.urandom(self.r.randint(0, 40))
        out.append(frame(2, ch, struct.pack(">HHQH", 60, 0, len(body), flags) + props))
        step = self.r.choice([len(body) or 1, 4000, 100])
        for i in range(0, len(body), step):
            out.append(frame(3, ch, body[i:i + step]))
        return out

    def one(self, ch):
        r = self.r
        close = struct.pack(">H", 200) + shortstr("bye") + struct.pack(">HH", 0, 0)
        xtype = shortstr(r.choice(["direct", "topic", "headers", "fanout", "bogus"]))
        choices = [
            lambda: [method(ch, 20, 10, shortstr(""))],  # channel.open
            lambda: [method(ch, 20, 40, close)],
            lambda: [method(ch, 20, 41)],
            lambda: [method(ch, 20, 20, self.bits(1))],  # flow
            lambda: [method(ch, 40, 10, struct.pack(">H", 0) + self.x() + xtype + self.bits(5) + self.table())],
            lambda: [method(ch, 40, 20, struct.pack(">H", 0) + self.x() + self.bits(2))],
            lambda: [method(ch, 40, 30, struct.pack(">H", 0) + self.x() + self.x() + shortstr("k") + self.bits(1)
                            + self.table())],
            lambda: [method(ch, 50, 10, struct.pack(">H", 0) + self.q() + self.bits(5) + self.table())],
            lambda: [method(ch, 50, 20, struct.pack(">H", 0) + self.q() + self.x() + shortstr("k") + self.bits(1)
                            + self.table())],
            lambda: [method(ch, 50, 30, struct.pack(">H", 0) + self.q() + self.bits(1))],
            lambda: [method(ch, 50, 40, struct.pack(">H", 0) + self.q() + self.bits(3))],
            lambda: [method(ch, 50, 50, struct.pack(">H", 0) + self.q() + self.x() + shortstr("k") + self.table())],
            lambda: [method(ch, 60, 10, struct.pack(">IHB", r.choice([0, 0, 1]), r.randint(0, 3), r.getrandbits(1)))],
            lambda: [method(ch, 60, 20, struct.pack(">H", 0) + self.q() + shortstr(r.choice(["", "t1", "t2"]))
                            + self.bits(4) + self.table())],
            lambda: [method(ch, 60, 30, shortstr(r.choice(["t1", "t2", "zz"])) + self.bits(1))],
            lambda: self.publish(ch),
            lambda: [method(ch, 60, 70, struct.pack(">H", 0) + self.q() + self.bits(1))],  # get
            lambda: [method(ch, 60, 80, struct.pack(">Q", r.randint(0, 5)) + self.bits(1))],  # ack
            lambda: [method(ch, 60, 90, struct.pack(">Q", r.randint(0, 5)) + self.bits(1))],  # reject
            lambda: [method(ch, 60, 120, struct.pack(">Q", r.randint(0, 5)) + self.bits(2))],  # nack
            lambda: [method(ch, 60, 110, self.bits(1))],  # recover
            lambda: [method(ch, 85, 10, self.bits(1))],  # confirm.select
            lambda: [method(ch, 90, 10)],  # tx.select
            lambda: [frame(8, 0, b"")],
        ]
        return r.choice(choices)()

    def session(self, mutate):
        frames = []
        for _ in range(self.r.randint(1, 25)):
            frames += self.one(self.r.choice([1, 1, 1, 2, 3]))
        if mutate:
            for _ in range(self.r.randint(1, 3)):
                i = self.r.randrange(len(frames))
                f = bytearray(frames[i])
                how = self.r.random()
                if how < 0.4 and f:
                    f[self.r.randrange(len(f))] ^= 1 << self.r.randrange(8)
                elif how < 0.6:
                    f = f[:self.r.randrange(len(f) + 1)]
                elif how < 0.8 and len(f) > 3:
                    f[1:3] = struct.pack(">H", self.r.choice([0, 5, 17, 65535]))
                else:
                    frames.insert(self.r.randrange(len(frames)), bytes(f))
                frames[i] = bytes(f)
        return frames


def play(port, frames):
    """Sends the handshake and the frames, reading what comes back, until
    the broker closes or goes quiet."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    got = 0
    try:
        s.sendall(b"".join(handshake()))
        s.sendall(b"".join(frames))
        s.settimeout(0.2)
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += len(d)
    except (socket.timeout, TimeoutError, ConnectionResetError, BrokenPipeError):
        pass
    finally:
        s.close()
    return got


def alive_091(port):
    """A fresh 0-9-1 client is still served: a queue declared, a message in and out."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(b"".join(handshake()))
        q = b"alive-091"
        s.sendall(method(1, 20, 10, shortstr(""))
                  + method(1, 50, 10, struct.pack(">H", 0) + shortstr(q) + b"\0" + longstr(b"")))
        s.sendall(method(1, 60, 40, struct.pack(">H", 0) + shortstr("") + shortstr(q) + b"\0")
                  + frame(2, 1, struct.pack(">HHQH", 60, 0, 5, 0)) + frame(3, 1, b"hello"))
        s.sendall(method(1, 60, 70, struct.pack(">H", 0) + shortstr(q) + b"\x01"))
        buf = b""
        deadline = time.time() + 10
        while b"hello" not in buf and time.time() < deadline:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        return b"hello" in buf
    finally:
        s.close()


class Chaos(SurvivorTest):
    def run_sessions(self, seed, mutate):
        rnd = random.Random(seed)
        gen = Gen(rnd)
        port = self.b.port
        start = time.time()
        n = 0
        while n < SESSIONS and time.time() - start < BUDGET_S:
            play(port, gen.session(mutate))
            n += 1
            if n % 25 == 0:
                self.assertTrue(alive_091(port), f"broker not serving 0-9-1 after session {n} (seed {seed})")
        self.assertGreater(n, 10)
        self.assertTrue(alive_091(port), f"seed {seed}")
        api = Api(self.b.admin_port)
        deadline = time.time() + 10
        conns = None
        while time.time() < deadline:
            conns = api.get("/api/connections")[1]
            if not conns:
                break
            time.sleep(0.2)
        self.assertEqual(conns, [], "connections left behind")

    def test_plausible_sessions(self):
        self.run_sessions(56001, mutate=False)

    def test_mutated_sessions(self):
        self.run_sessions(56002, mutate=True)


if __name__ == "__main__":
    main()
