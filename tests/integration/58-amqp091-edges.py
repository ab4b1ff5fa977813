#!/usr/bin/python3
"""58: AMQP 0-9-1 edge cases found reviewing the channel layer, each one a
bug that once was: Basic.Get counted as a consumer (an auto-delete queue
deleted itself after a get, consumer_count and exclusive consumers saw it),
direct reply-to queues named alike on two connections, Basic.Ack multiple
with an unknown tag settling before the channel error, a Basic.Get racing
the deletion of its queue leaving the connection's input waiting forever,
a message over 64 MiB closing its consumer's connection, the ring of
unsettled deliveries growing without bound behind one unacked delivery,
and a cancelled no-ack consumer's waiting deliveries dropped.
Against the real broker with Debian's pika and a raw socket; the broker
must exit 0 (no ASan report) when the class ends.

PLEXUS_TEST_BROKER=amqp://guest:guest@127.0.0.1:PORT runs the cases against
that broker (RabbitMQ) instead of bin/plexus (see harness.py).
"""
import os
import socket
import struct
import time

import raw091
from harness import Broker, Broker091Test, TEST_BROKER, main, missing, stop091, uniq
from raw091 import frame, method, shortstr

try:
    import pika
    from pika.exceptions import ChannelClosedByBroker
except ImportError:  # counted as a skip here, a failure in CI
    pika = None

class Raw(raw091.Raw):
    """raw091's client as these cases use it: content frames read past,
    and open() with channel 1 open and a 128 KiB frame_max."""

    def method(self, skip_content=True):
        return super().method(skip_content=True)

    def open(self):
        return super().open(channel=True, frame_max=131072)


class Edges(Broker091Test):
    def setUp(self):
        if pika is None:
            missing("python3-pika")

    def params(self):
        return pika.ConnectionParameters(host="127.0.0.1", port=self.b.port,
                                         credentials=pika.PlainCredentials(getattr(self.b, "user", "guest"),
                                                                           getattr(self.b, "password", "guest")),
                                         connection_attempts=1)

    def connect(self):
        c = pika.BlockingConnection(self.params())
        self.addCleanup(lambda: c.is_open and c.close())
        return c

    def drop_queue(self, q):
        def drop():
            c = pika.BlockingConnection(self.params())
            c.channel().queue_delete(q)
            c.close()
        self.addCleanup(drop)

    def ready(self, q, want, timeout=3):
        """The queue's message count once it is want (or the last seen)."""
        c = self.connect()
        end = time.time() + timeout
        while True:
            n = c.channel().queue_declare(q, passive=True).method.message_count
            if n == want or time.time() > end:
                return n
            time.sleep(0.05)

    # Basic.Get is no consumer (RabbitMQ's semantics): its short-lived
    # queue consumer used to count as one, so an auto-delete queue that
    # never had a real consumer deleted itself once a get ended.
    def test_get_does_not_auto_delete(self):
        c = self.connect()
        ch = c.channel()
        q = uniq("ad-get")
        ch.queue_declare(q, auto_delete=True)
        self.drop_queue(q)
        ch.confirm_delivery()
        for i in range(3):
            ch.basic_publish("", q, b"m%d" % i)
        m, _, body = ch.basic_get(q, auto_ack=True)
        self.assertEqual(body, b"m0")
        time.sleep(0.3)  # a deletion the get's end asked for would be done by now
        m, _, body = ch.basic_get(q, auto_ack=False)
        self.assertEqual(body, b"m1")
        ok = ch.queue_declare(q, passive=True)
        self.assertEqual(ok.method.consumer_count, 0)  # an unacked get is no consumer
        ch.basic_ack(m.delivery_tag)
        time.sleep(0.3)
        ok = ch.queue_declare(q, passive=True)
        self.assertEqual(ok.method.message_count, 1)

    def test_exclusive_consume_beside_an_unacked_get(self):
        c = self.connect()
        ch = c.channel()
        q = uniq("x-get")
        ch.queue_declare(q)
        self.drop_queue(q)
        ch.confirm_delivery()
        ch.basic_publish("", q, b"one")
        ch.basic_publish("", q, b"two")
        m, _, body = ch.basic_get(q)  # kept unacked
        self.assertEqual(body, b"one")
        got = []
        ch2 = self.connect().channel()
        ch2.basic_consume(q, lambda _c, d, p, b: got.append(b), auto_ack=True, exclusive=True)
        end = time.time() + 3
        while not got and time.time() < end:
            ch2.connection.process_data_events(time_limit=0.1)
        self.assertEqual(got, [b"two"])
        ch.basic_ack(m.delivery_tag)

    # Direct reply-to's queue was named after the node and the channel's
    # opening only: the first channel of a second connection got the same
    # name, another connection's exclusive queue, and its consume failed.
    def test_direct_reply_to_on_two_connections(self):
        server = self.connect().channel()
        sq = uniq("rpc")
        server.queue_declare(sq)
        self.drop_queue(sq)
        clients = []
        for n in range(2):
            ch = self.connect().channel()
            replies = []
            ch.basic_consume("amq.rabbitmq.reply-to", lambda _c, d, p, b, r=replies: r.append(b), auto_ack=True)
            ch.basic_publish("", sq, b"req-%d" % n, pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
            clients.append((ch, replies))
        reply_tos = set()
        for _ in range(2):
            end = time.time() + 3
            while True:
                m, p, body = server.basic_get(sq, auto_ack=True)
                if m or time.time() > end:
                    break
                time.sleep(0.05)
            self.assertIsNotNone(m, "a request did not arrive")
            reply_tos.add(p.reply_to)
            server.basic_publish("", p.reply_to, b"re:" + body)
        self.assertEqual(len(reply_tos), 2, reply_tos)
        for n, (ch, replies) in enumerate(clients):
            end = time.time() + 3
            while not replies and time.time() < end:
                ch.connection.process_data_events(time_limit=0.1)
            self.assertEqual(replies, [b"re:req-%d" % n])

    # Basic.Ack multiple with a tag never given: RabbitMQ settles nothing
    # and closes the channel, so the deliveries go back to the queue. They
    # used to be acked (lost) first.
    def test_ack_multiple_unknown_tag_settles_nothing(self):
        for meth in ("ack", "nack"):
            with self.subTest(meth):
                c = self.connect()
                ch = c.channel()
                q = uniq("ack-x")
                ch.queue_declare(q)
                self.drop_queue(q)
                ch.confirm_delivery()
                for i in range(3):
                    ch.basic_publish("", q, b"m%d" % i)
                got = []
                ch.basic_qos(prefetch_count=10)
                ch.basic_consume(q, lambda _c, d, p, b: got.append(d.delivery_tag))
                end = time.time() + 3
                while len(got) < 3 and time.time() < end:
                    c.process_data_events(time_limit=0.1)
                self.assertEqual(len(got), 3)
                if meth == "ack":
                    ch.basic_ack(99, multiple=True)
                else:
                    ch.basic_nack(99, multiple=True, requeue=False)
                with self.assertRaises(ChannelClosedByBroker) as e:
                    ch.queue_declare(q, passive=True)  # the answer is the Channel.Close
                self.assertEqual(e.exception.reply_code, 406)
                self.assertEqual(self.ready(q, 3), 3)

    # A Basic.Get whose queue is deleted (by another connection) before the
    # queue has seen the get: the queue never answered, and the
    # connection's input waited for it forever. Now the get says empty (or
    # the channel says not found) and the connection goes on. A race: the
    # Queue.Delete goes out just before the get; it hung about once in 300
    # rounds here before the fix.
    def test_get_racing_queue_delete(self):
        a, d = Raw(self.b.port, timeout=3), Raw(self.b.port, timeout=3)
        for r in (a, d):
            self.addCleanup(r.close)
            r.open()
        for i in range(600):
            q = uniq("race")
            d.send(method(1, 50, 10, struct.pack(">H", 0) + shortstr(q) + b"\0" + struct.pack(">I", 0)))
            d.expect(50, 11)
            d.send(method(1, 50, 40, struct.pack(">H", 0) + shortstr(q) + b"\0"))  # Queue.Delete
            a.send(method(1, 60, 70, struct.pack(">H", 0) + shortstr(q) + b"\1"))  # Basic.Get, no-ack
            try:
                ch, cls, mid, args = a.method()
            except (socket.timeout, TimeoutError):
                self.fail(f"round {i}: the Basic.Get was never answered")
            d.expect(50, 41)
            self.assertIn((cls, mid), [(60, 72), (20, 40)], f"round {i}: {cls}.{mid} {args!r}")
            if (cls, mid) == (20, 40):  # 404 (the queue was gone): the channel is closed; open it again
                a.send(method(1, 20, 41))
                a.send(method(1, 20, 10, shortstr("")))
                a.expect(20, 11)


    # A message larger than the output's hard limit (64 MiB, for a client
    # that reads nothing) but within max_message_size (128 MiB): its
    # delivery alone went past the limit, and the consumer's connection was
    # closed as "not read" every time.
    def test_delivery_larger_than_the_output_limit(self):
        c = self.connect()
        ch = c.channel()
        q = uniq("big")
        ch.queue_declare(q)
        self.drop_queue(q)
        ch.confirm_delivery()
        body = bytes(range(256)) * (70 << 12)  # 70 MiB
        ch.basic_publish("", q, body)
        m, _, got = ch.basic_get(q, auto_ack=True)
        self.assertIsNotNone(m)
        self.assertEqual(len(got), len(body))
        self.assertTrue(got == body)
        self.assertTrue(c.is_open)


    # A client that keeps one delivery unacked and acks every later one (a
    # worker on a long job, prefetch > 1): the channel's ring of unsettled
    # deliveries dropped settled ones only from its front, so it grew by
    # one entry per delivery for as long as the first stayed unacked.
    def test_unacked_ring_stays_bounded(self):
        if TEST_BROKER:
            self.skipTest("measures the broker's memory: bin/plexus only")
        # A broker of its own, whose memory is the measure: under ASan
        # without the quarantine, which keeps freed memory resident.
        env = os.environ.get("ASAN_OPTIONS")
        if env is not None:
            os.environ["ASAN_OPTIONS"] = env + ":quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
        try:
            b = Broker().start()
        finally:
            if env is not None:
                os.environ["ASAN_OPTIONS"] = env
        self.addCleanup(stop091, b)
        r = Raw(b.port, timeout=10)
        self.addCleanup(r.close)
        r.open()
        q = uniq("ring")
        r.send(method(1, 50, 10, struct.pack(">H", 0) + shortstr(q) + b"\0" + struct.pack(">I", 0)))
        r.expect(50, 11)
        r.send(method(1, 60, 10, struct.pack(">IHB", 0, 500, 0)))  # Basic.Qos prefetch 500
        r.expect(60, 11)
        r.send(method(1, 60, 20, struct.pack(">H", 0) + shortstr(q) + shortstr("c") + b"\0" + struct.pack(">I", 0)))
        r.expect(60, 21)
        body = b"x"
        publish = (method(1, 60, 40, struct.pack(">H", 0) + shortstr("") + shortstr(q) + b"\0") +
                   frame(2, 1, struct.pack(">HHQH", 60, 0, len(body), 0)) + frame(3, 1, body))
        ack = struct.Struct(">BHIHHQB")
        seen = 0

        def rss():
            with open(f"/proc/{b.proc.pid}/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) * 1024

        def round_trip(n):
            """Publishes n, takes n deliveries, acks all but tag 1."""
            nonlocal seen
            r.send(publish * n)
            want = seen + n
            while seen < want:
                d = r.s.recv(1 << 20)
                if not d:
                    raise EOFError("closed by the broker")
                buf = r.buf + d
                off, acks = 0, []
                while len(buf) - off >= 8:
                    t, _, size = struct.unpack_from(">BHI", buf, off)
                    if len(buf) - off < size + 8:
                        break
                    if t == 1 and buf[off + 7:off + 11] == b"\0\x3c\0\x3c":  # Basic.Deliver
                        a = off + 11
                        tag = struct.unpack_from(">Q", buf, a + 1 + buf[a])[0]
                        seen += 1
                        if tag != 1:
                            acks.append(ack.pack(1, 1, 13, 60, 80, tag, 0) + b"\xce")
                    off += size + 8
                r.buf = buf[off:]
                if acks:
                    r.send(b"".join(acks))

        for _ in range(4):
            round_trip(10000)
        before = rss()
        for _ in range(26):
            round_trip(10000)
        grown = rss() - before
        # 260000 more deliveries: ~18 MB of ring before the fix, none after.
        self.assertLess(grown, 8 << 20, f"the broker grew by {grown >> 20} MiB")


    # A no-ack consumer cancelled while its deliveries wait in the broker
    # for the client to read (its queue has forgotten them): they were
    # dropped, and its drain pulled more from the queue to drop. Now they
    # are written before the Cancel-Ok (as the spec says: "the client may
    # receive an arbitrary number of messages in between sending the
    # cancel method and receiving the cancel-ok reply").
    def test_large_messages_flow_to_a_consumer_that_acks_every_few(self):
        # 100 KB messages, prefetch 20, a multiple ack every 5 deliveries:
        # each round wrote what fit 64 KiB of output and left the rest for
        # the client's next frame, which this client holds back until it
        # has 5 more, so after a few messages everything stopped.
        c = self.connect()
        ch = c.channel()
        q = uniq("big")
        ch.queue_declare(q)
        self.drop_queue(q)
        body = os.urandom(100_000)
        for _ in range(60):
            ch.basic_publish("", q, body)
        ch.basic_qos(prefetch_count=20)
        got = []

        def on_message(chx, m, props, b):
            got.append(len(b))
            if len(got) % 5 == 0:
                chx.basic_ack(m.delivery_tag, multiple=True)
            if len(got) == 60:
                chx.stop_consuming()
        ch.basic_consume(q, on_message)
        c.call_later(20, ch.stop_consuming)  # a stall ends the wait, and the test fails below
        ch.start_consuming()
        self.assertEqual(len(got), 60, "deliveries stalled")
        self.assertEqual(set(got), {100_000})

    def test_no_ack_cancel_loses_nothing(self):
        c = self.connect()
        ch = c.channel()
        q = uniq("noack")
        ch.queue_declare(q)
        self.drop_queue(q)
        ch.confirm_delivery()
        n, body = 300, b"y" * (32 << 10)
        for _ in range(n):
            ch.basic_publish("", q, body)
        r = Raw(self.b.port, timeout=10)
        self.addCleanup(r.close)
        r.open()
        r.send(method(1, 60, 20, struct.pack(">H", 0) + shortstr(q) + shortstr("c") + b"\2" + struct.pack(">I", 0)))
        r.expect(60, 21)
        time.sleep(1)  # not reading: most deliveries wait in the broker
        r.send(method(1, 60, 30, shortstr("c") + b"\0"))  # Basic.Cancel
        got = 0
        while True:
            _, cls, mid, _ = r.method()
            if (cls, mid) == (60, 60):
                got += 1
            elif (cls, mid) == (60, 31):
                break
            else:
                self.fail(f"unexpected {cls}.{mid}")
        left = self.ready(q, n - got)
        self.assertEqual(got + left, n, f"{got} delivered, {left} left in the queue")


    # Direct reply-to after Basic.Cancel of its consumer: RabbitMQ takes a
    # new reply consumer on the channel; Plexus refused it (406 "reply
    # consumer already set") and went on writing the deleted queue's name
    # into reply_to, so replies went nowhere.
    def test_direct_reply_to_consumed_again_after_cancel(self):
        server = self.connect().channel()
        sq = uniq("rpc2")
        server.queue_declare(sq)
        self.drop_queue(sq)
        ch = self.connect().channel()
        replies = []
        tag = ch.basic_consume("amq.rabbitmq.reply-to", lambda *a: None, auto_ack=True)
        ch.basic_cancel(tag)
        ch.basic_consume("amq.rabbitmq.reply-to", lambda _c, d, p, b: replies.append(b), auto_ack=True)
        ch.basic_publish("", sq, b"ping", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
        end = time.time() + 3
        while True:
            m, p, body = server.basic_get(sq, auto_ack=True)
            if m or time.time() > end:
                break
            time.sleep(0.05)
        self.assertIsNotNone(m, "the request did not arrive")
        server.basic_publish("", p.reply_to, b"pong")
        end = time.time() + 3
        while not replies and time.time() < end:
            ch.connection.process_data_events(time_limit=0.1)
        self.assertEqual(replies, [b"pong"])


if __name__ == "__main__":
    main()
