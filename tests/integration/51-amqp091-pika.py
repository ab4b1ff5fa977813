#!/usr/bin/python3
"""51: AMQP 0-9-1 messaging with Debian's pika (python3-pika) and amqp-tools,
against the real broker: exchanges of each type and what they route,
queues (durable, exclusive, auto-delete, server-named) and their arguments
(x-max-length, x-max-length-bytes, x-overflow, x-message-ttl, x-expires,
x-dead-letter-exchange and -routing-key), consumers with manual acks and
prefetch (per consumer and global), Basic.Get, nack/reject/recover and the
redelivered flag, bodies over several frames and empty ones, RPC over an
exclusive server-named queue and over direct reply-to, publisher confirms
(ack and nack), mandatory returns, the server's Basic.Cancel, heartbeats,
the AMQP 1 1 0 9 header Net::AMQP sends, and channel errors (404, 405,
406, 403) that close the channel and leave the connection working; and
amqp-tools' declare, publish, get and consume.

PLEXUS_TEST_BROKER=amqp://guest:guest@127.0.0.1:PORT runs every case here
against that broker (RabbitMQ) instead of bin/plexus (see harness.py).
"""
import json
import shutil
import socket
import struct
import subprocess
import time

from harness import Broker091Test, main, missing, uniq, url091, watchdog

try:
    import pika
    from pika.exceptions import ChannelClosedByBroker, NackError, UnroutableError
except ImportError:  # counted as a skip here, a failure in CI
    pika = None


class Case(Broker091Test):
    """One broker for the file; each test opens its own connections, and
    what it declares is deleted afterwards (a PLEXUS_TEST_BROKER broker is
    shared)."""

    def setUp(self):
        if pika is None:
            missing("python3-pika")
        self.made = []  # ("queue" | "exchange", name)

    def tearDown(self):
        if not self.made:
            return
        c = pika.BlockingConnection(self.params())
        for kind, n in self.made:
            ch = c.channel()
            try:
                ch.queue_delete(n) if kind == "queue" else ch.exchange_delete(n)
            except ChannelClosedByBroker:
                pass
        c.close()

    def params(self, **kw):
        return pika.ConnectionParameters(host="127.0.0.1", port=self.b.port,
                                         credentials=pika.PlainCredentials(getattr(self.b, "user", "guest"),
                                                                           getattr(self.b, "password", "guest")),
                                         connection_attempts=1, **kw)

    def connect(self, **kw):
        c = pika.BlockingConnection(self.params(**kw))
        self.addCleanup(lambda: c.is_open and c.close())
        return c

    def queue(self, ch, prefix="q", **kw):
        """Declares a queue with a fresh name; returns the name."""
        n = uniq(prefix)
        ch.queue_declare(n, **kw)
        self.made.append(("queue", n))
        return n

    def exchange(self, ch, kind, **kw):
        n = uniq(f"x-{kind}")
        ch.exchange_declare(n, exchange_type=kind, **kw)
        self.made.append(("exchange", n))
        return n

    def drain(self, ch, q):
        """Every body waiting in q, by Basic.Get with acks."""
        out = []
        while True:
            m, _, body = ch.basic_get(q)
            if m is None:
                return out
            out.append(body)
            ch.basic_ack(m.delivery_tag)

    def assert_usable(self, c):
        """The connection still works after a channel error: a new channel
        declares, publishes and gets."""
        self.assertTrue(c.is_open)
        ch = c.channel()
        q = self.queue(ch, "alive", auto_delete=False)
        ch.confirm_delivery()
        ch.basic_publish("", q, b"alive")
        self.assertEqual(self.drain(ch, q), [b"alive"])
        ch.close()

    def channel_error(self, c, fn):
        """Runs fn(channel) on a fresh channel; returns (code, text) of the
        Channel.Close it must cause."""
        ch = c.channel()
        with self.assertRaises(ChannelClosedByBroker) as e:
            fn(ch)
            ch.queue_declare(uniq("sync"), passive=False, auto_delete=True)  # an asynchronous error shows here
        self.assertFalse(ch.is_open)
        return e.exception.reply_code, e.exception.reply_text

    def until(self, cond, timeout=3.0, conns=()):
        """Waits (serving conns) until cond() is true."""
        deadline = time.time() + timeout
        while not cond():
            if time.time() > deadline:
                return False
            for c in conns:
                c.process_data_events(time_limit=0.05)
            if not conns:
                time.sleep(0.05)
        return True


class Exchanges(Case):
    def test_each_exchange_type_routes(self):
        c = self.connect()
        ch = c.channel()
        ch.confirm_delivery()  # each publish is routed before the next line reads the queues
        direct, fanout, topic, headers = (self.exchange(ch, k) for k in ("direct", "fanout", "topic", "headers"))
        q = {n: self.queue(ch, n) for n in ("d-red", "d-blue", "f1", "f2", "t-orange", "t-lazy", "t-all",
                                            "h-all", "h-any")}
        ch.queue_bind(q["d-red"], direct, "red")
        ch.queue_bind(q["d-blue"], direct, "blue")
        ch.queue_bind(q["d-blue"], direct, "navy")  # two keys, one queue
        ch.queue_bind(q["f1"], fanout)
        ch.queue_bind(q["f2"], fanout, "ignored")
        ch.queue_bind(q["t-orange"], topic, "*.orange.*")
        ch.queue_bind(q["t-lazy"], topic, "lazy.#")
        ch.queue_bind(q["t-all"], topic, "#")
        ch.queue_bind(q["h-all"], headers, arguments={"x-match": "all", "kind": "order", "region": "eu"})
        ch.queue_bind(q["h-any"], headers, arguments={"x-match": "any", "kind": "order", "region": "eu"})

        for key in ("red", "blue", "navy", "green"):
            ch.basic_publish(direct, key, key.encode())
        ch.basic_publish(fanout, "whatever", b"fan")
        for key in ("quick.orange.rabbit", "lazy.orange.elephant", "lazy", "quick.brown.fox", "a.orange.b.c"):
            ch.basic_publish(topic, key, key.encode())
        for h in ({"kind": "order", "region": "eu"}, {"kind": "order", "region": "us"}, {"kind": "refund"}):
            ch.basic_publish(headers, "", json.dumps(h).encode(), pika.BasicProperties(headers=h))

        got = {n: self.drain(ch, qn) for n, qn in q.items()}
        self.assertEqual(got["d-red"], [b"red"])
        self.assertEqual(got["d-blue"], [b"blue", b"navy"])
        self.assertEqual(got["f1"], [b"fan"])
        self.assertEqual(got["f2"], [b"fan"])
        self.assertEqual(got["t-orange"], [b"quick.orange.rabbit", b"lazy.orange.elephant"])
        self.assertEqual(got["t-lazy"], [b"lazy.orange.elephant", b"lazy"])
        self.assertEqual(len(got["t-all"]), 5)
        self.assertEqual([json.loads(b) for b in got["h-all"]], [{"kind": "order", "region": "eu"}])
        self.assertEqual([json.loads(b) for b in got["h-any"]],
                         [{"kind": "order", "region": "eu"}, {"kind": "order", "region": "us"}])

    def test_default_exchange_and_unbind(self):
        c = self.connect()
        ch = c.channel()
        ch.confirm_delivery()
        x = self.exchange(ch, "direct")
        qn = self.queue(ch)
        ch.basic_publish("", qn, b"by name")
        ch.queue_bind(qn, x, "k")
        ch.basic_publish(x, "k", b"bound")
        ch.queue_unbind(qn, x, "k")
        ch.basic_publish(x, "k", b"after unbind")
        self.assertEqual(self.drain(ch, qn), [b"by name", b"bound"])
        # Deleting the exchange leaves the queue; publishing to it then is 404.
        ch.exchange_delete(x)
        self.made.remove(("exchange", x))
        code, text = self.channel_error(c, lambda ch2: ch2.basic_publish(x, "k", b"gone"))
        self.assertEqual(code, 404, text)
        self.assert_usable(c)

    def test_exchange_errors(self):
        c = self.connect()
        ch = c.channel()
        x = self.exchange(ch, "direct")
        code, text = self.channel_error(c, lambda ch2: ch2.exchange_declare(x, exchange_type="fanout"))
        self.assertEqual(code, 406, text)  # redeclared with another type
        code, text = self.channel_error(c, lambda ch2: ch2.exchange_declare(uniq("nope"), passive=True))
        self.assertEqual(code, 404, text)
        code, text = self.channel_error(c, lambda ch2: ch2.exchange_declare(uniq("amq.mine"), exchange_type="direct"))
        self.assertEqual(code, 403, text)  # amq. names are the broker's
        code, text = self.channel_error(c, lambda ch2: ch2.queue_bind(uniq("noq"), x, "k"))
        self.assertEqual(code, 404, text)
        qn = self.queue(c.channel())
        code, text = self.channel_error(c, lambda ch2: ch2.queue_bind(qn, uniq("nox"), "k"))
        self.assertEqual(code, 404, text)
        self.assert_usable(c)


class Queues(Case):
    def test_declare_ok_counts_and_server_names(self):
        c = self.connect()
        ch = c.channel()
        ch.confirm_delivery()
        r = ch.queue_declare("", exclusive=True)
        self.assertTrue(r.method.queue.startswith("amq.gen-"), r.method.queue)
        self.assertEqual((r.method.message_count, r.method.consumer_count), (0, 0))
        qn = self.queue(ch, durable=True)
        for i in range(3):
            ch.basic_publish("", qn, str(i).encode())
        r = ch.queue_declare(qn, passive=True)
        self.assertEqual((r.method.queue, r.method.message_count, r.method.consumer_count), (qn, 3, 0))
        ch.basic_consume(qn, lambda *a: None)
        r = c.channel().queue_declare(qn, durable=True)  # same properties: fine, and counts the consumer
        self.assertEqual(r.method.consumer_count, 1)
        # Different properties: 406, the connection stays up.
        code, text = self.channel_error(c, lambda ch2: ch2.queue_declare(qn, durable=False))
        self.assertEqual(code, 406, text)
        code, text = self.channel_error(c, lambda ch2: ch2.queue_declare(qn, durable=True,
                                                                        arguments={"x-max-length": 5}))
        self.assertEqual(code, 406, text)
        code, text = self.channel_error(c, lambda ch2: ch2.queue_declare(uniq("missing"), passive=True))
        self.assertEqual(code, 404, text)
        code, text = self.channel_error(c, lambda ch2: ch2.queue_declare(uniq("amq.mine")))
        self.assertEqual(code, 403, text)
        self.assert_usable(c)

    def test_exclusive_queue_belongs_to_its_connection(self):
        c1, c2 = self.connect(), self.connect()
        qn = self.queue(c1.channel(), "excl", exclusive=True)
        for fn in (lambda ch: ch.queue_declare(qn, exclusive=True),
                   lambda ch: ch.basic_consume(qn, lambda *a: None),
                   lambda ch: ch.basic_get(qn),
                   lambda ch: ch.queue_delete(qn)):
            code, text = self.channel_error(c2, fn)
            self.assertEqual(code, 405, text)
        self.assert_usable(c2)
        # Its own connection uses it; when that closes the queue goes.
        ch1 = c1.channel()
        ch1.confirm_delivery()
        ch1.basic_publish("", qn, b"mine")
        self.assertEqual(self.drain(ch1, qn), [b"mine"])
        c1.close()

        def gone():
            ch = c2.channel()
            try:
                ch.queue_declare(qn, passive=True)
                ch.close()
                return False
            except ChannelClosedByBroker as e:
                # 405 a moment longer: the queue's owner is gone but the
                # manager (which watches it) has not deleted it yet.
                self.assertIn(e.reply_code, (404, 405))
                return e.reply_code == 404
        self.assertTrue(self.until(gone), "the exclusive queue outlived its connection")

    def test_auto_delete_goes_with_its_last_consumer(self):
        c = self.connect()
        ch = c.channel()
        qn = self.queue(ch, "auto", auto_delete=True)
        t1 = ch.basic_consume(qn, lambda *a: None)
        t2 = ch.basic_consume(qn, lambda *a: None)
        ch.basic_cancel(t1)
        self.assertEqual(c.channel().queue_declare(qn, passive=True).method.consumer_count, 1)
        ch.basic_cancel(t2)

        def gone():
            try:
                c.channel().queue_declare(qn, passive=True)
                return False
            except ChannelClosedByBroker as e:
                return e.reply_code == 404
        self.assertTrue(self.until(gone), "the auto-delete queue outlived its last consumer")

    def test_max_length_and_overflow(self):
        c = self.connect()
        ch = c.channel()
        ch.confirm_delivery()
        head = self.queue(ch, "maxlen", arguments={"x-max-length": 2})
        for i in range(5):
            ch.basic_publish("", head, f"m{i}".encode())
        self.assertEqual(self.drain(ch, head), [b"m3", b"m4"])  # drop-head: the oldest go
        byts = self.queue(ch, "maxbytes", arguments={"x-max-length-bytes": 10})
        for i in range(3):
            ch.basic_publish("", byts, f"b{i}xx".encode())  # 4 bytes each: two fit
        self.assertEqual(self.drain(ch, byts), [b"b1xx", b"b2xx"])
        rej = self.queue(ch, "reject", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        ch.basic_publish("", rej, b"first")
        with self.assertRaises(NackError):  # confirm mode: the broker nacks what the full queue refuses
            ch.basic_publish("", rej, b"second")
        self.assertEqual(self.drain(ch, rej), [b"first"])
        ch.basic_publish("", rej, b"third")  # room again
        self.assertEqual(self.drain(ch, rej), [b"third"])

    def test_ttl_expiry_and_dead_letters(self):
        c = self.connect()
        ch = c.channel()
        ch.confirm_delivery()
        dlx = self.exchange(ch, "direct")
        dlq = self.queue(ch, "dlq")
        ch.queue_bind(dlq, dlx, "dead")
        ttl = self.queue(ch, "ttl", arguments={"x-message-ttl": 100, "x-dead-letter-exchange": dlx,
                                               "x-dead-letter-routing-key": "dead"})
        plain = self.queue(ch, "perttl")
        ch.basic_publish("", ttl, b"expires")
        ch.basic_publish("", plain, b"short", pika.BasicProperties(expiration="100"))
        ch.basic_publish("", plain, b"long", pika.BasicProperties(expiration="60000"))
        time.sleep(0.5)
        self.assertEqual(self.drain(ch, plain), [b"long"])
        self.assertEqual(self.drain(ch, ttl), [])
        self.assertTrue(self.until(lambda: ch.queue_declare(dlq, passive=True).method.message_count == 1))
        m, props, body = ch.basic_get(dlq, auto_ack=True)
        self.assertEqual((body, m.routing_key), (b"expires", "dead"))
        # A rejected message is dead-lettered too.
        rej = self.queue(ch, "rej", arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"})
        ch.basic_publish("", rej, b"refused")
        m, _, _ = ch.basic_get(rej)
        ch.basic_reject(m.delivery_tag, requeue=False)
        self.assertTrue(self.until(lambda: ch.queue_declare(dlq, passive=True).method.message_count == 1))
        self.assertEqual(self.drain(ch, dlq), [b"refused"])
        self.assertEqual(self.drain(ch, rej), [])

    def test_unused_queue_expires(self):
        c = self.connect()
        ch = c.channel()
        qn = self.queue(ch, "expires", arguments={"x-expires": 300})
        kept = self.queue(ch, "kept", arguments={"x-expires": 60000})
        time.sleep(1.0)  # untouched: a declare, even passive, is a use and restarts the clock
        ch.queue_declare(kept, passive=True)
        code, text = self.channel_error(c, lambda ch2: ch2.queue_declare(qn, passive=True))
        self.assertEqual(code, 404, "x-expires did not delete the unused queue: " + text)

    def test_purge_and_delete_conditions(self):
        c = self.connect()
        ch = c.channel()
        ch.confirm_delivery()
        qn = self.queue(ch)
        for i in range(4):
            ch.basic_publish("", qn, b"x")
        self.assertEqual(ch.queue_purge(qn).method.message_count, 4)
        self.assertEqual(ch.basic_get(qn), (None, None, None))
        ch.basic_publish("", qn, b"one")
        code, text = self.channel_error(c, lambda ch2: ch2.queue_delete(qn, if_empty=True))
        self.assertEqual(code, 406, text)
        self.assertEqual(self.drain(ch, qn), [b"one"])
        ch2 = c.channel()
        ch2.basic_consume(qn, lambda *a: None)
        code, text = self.channel_error(c, lambda ch3: ch3.queue_delete(qn, if_unused=True))
        self.assertEqual(code, 406, text)
        ch2.close()
        ch.basic_publish("", qn, b"a")
        ch.basic_publish("", qn, b"b")
        self.assertEqual(ch.queue_delete(qn).method.message_count, 2)
        code, _ = self.channel_error(c, lambda ch3: ch3.queue_declare(qn, passive=True))
        self.assertEqual(code, 404)
        self.assert_usable(c)


class Consumers(Case):
    def test_prefetch_limits_unacked_deliveries(self):
        c = self.connect()
        ch = c.channel()
        ch.confirm_delivery()
        qn = self.queue(ch)
        for i in range(10):
            ch.basic_publish("", qn, str(i).encode())
        ch.basic_qos(prefetch_count=3)
        got = []
        ch.basic_consume(qn, lambda _ch, m, p, body: got.append((m, body)))
        c.process_data_events(time_limit=0.5)
        self.assertEqual([b for _, b in got], [b"0", b"1", b"2"])  # three unacked, no more
        ch.basic_ack(got[0][0].delivery_tag)
        c.process_data_events(time_limit=0.5)
        self.assertEqual(len(got), 4)
        ch.basic_ack(got[-1][0].delivery_tag, multiple=True)  # acks 1..3: three more may come
        c.process_data_events(time_limit=0.5)
        self.assertEqual(len(got), 7)
        ch.basic_ack(got[-1][0].delivery_tag, multiple=True)
        c.process_data_events(time_limit=0.5)
        ch.basic_ack(got[-1][0].delivery_tag, multiple=True)
        c.process_data_events(time_limit=0.3)
        self.assertEqual([b for _, b in got], [str(i).encode() for i in range(10)])
        self.assertFalse(any(m.redelivered for m, _ in got))
        self.assertEqual(len({m.delivery_tag for m, _ in got}), 10)
        self.assertEqual(c.channel().queue_declare(qn, passive=True).method.message_count, 0)

    def test_global_prefetch_spans_the_channels_consumers(self):
        c = self.connect()
        ch = c.channel()
        ch.confirm_delivery()
        qs = [self.queue(ch), self.queue(ch)]
        for q in qs:
            for i in range(5):
                ch.basic_publish("", q, f"{q}:{i}".encode())
        ch.basic_qos(prefetch_count=3, global_qos=True)  # for the channel: both consumers together
        got = []
        for q in qs:
            ch.basic_consume(q, lambda _ch, m, p, body: got.append(m))
        c.process_data_events(time_limit=0.5)
        self.assertEqual(len(got), 3)
        ch.basic_ack(got[-1].delivery_tag, multiple=True)
        c.process_data_events(time_limit=0.5)
        self.assertEqual(len(got), 6)
        ch.basic_ack(got[-1].delivery_tag, multiple=True)
        for _ in range(3):
            c.process_data_events(time_limit=0.3)
            ch.basic_ack(got[-1].delivery_tag, multiple=True)
        self.assertEqual(len(got), 10)

    def test_unacked_come_back_redelivered_when_the_channel_closes(self):
        c = self.connect()
        ch = c.channel()
        ch.confirm_delivery()
        qn = self.queue(ch)
        for b in (b"a", b"b"):
            ch.basic_publish("", qn, b)
        ch2 = c.channel()
        got = []
        ch2.basic_consume(qn, lambda _ch, m, p, body: got.append(body))
        self.until(lambda: len(got) == 2, conns=[c])
        self.assertEqual(got, [b"a", b"b"])
        ch2.close()
        m, _, body = ch.basic_get(qn, auto_ack=True)
        self.assertEqual((body, m.redelivered), (b"a", True))
        m, _, body = ch.basic_get(qn, auto_ack=True)
        self.assertEqual((body, m.redelivered), (b"b", True))

    def test_cancel_stops_deliveries_and_no_ack_consumers(self):
        c = self.connect()
        ch = c.channel()
        ch.confirm_delivery()
        qn = self.queue(ch)
        got = []
        tag = ch.basic_consume(qn, lambda _ch, m, p, body: got.append(body), auto_ack=True)
        ch.basic_publish("", qn, b"1")
        self.until(lambda: got, conns=[c])
        ch.basic_cancel(tag)
        ch.basic_publish("", qn, b"2")
        c.process_data_events(time_limit=0.3)
        self.assertEqual(got, [b"1"])
        self.assertEqual(self.drain(ch, qn), [b"2"])  # auto-ack: "1" is not coming back

    def test_exclusive_consumer(self):
        c = self.connect()
        ch = c.channel()
        qn = self.queue(ch)
        ch.basic_consume(qn, lambda *a: None, exclusive=True)
        code, text = self.channel_error(c, lambda ch2: ch2.basic_consume(qn, lambda *a: None))
        self.assertEqual(code, 403, text)
        self.assert_usable(c)

    def test_basic_get(self):
        c = self.connect()
        ch = c.channel()
        ch.confirm_delivery()
        qn = self.queue(ch)
        self.assertEqual(ch.basic_get(qn), (None, None, None))  # Get-Empty
        ch.basic_publish("", qn, b'{"n": 1}', pika.BasicProperties(content_type="application/json"))
        ch.basic_publish("", qn, b'{"n": 2}')
        m, props, body = ch.basic_get(qn)
        self.assertEqual((body, m.message_count, m.redelivered, m.routing_key, m.exchange),
                         (b'{"n": 1}', 1, False, qn, ""))
        self.assertEqual(props.content_type, "application/json")
        ch.basic_ack(m.delivery_tag)
        m, _, body = ch.basic_get(qn, auto_ack=True)
        self.assertEqual((body, m.message_count), (b'{"n": 2}', 0))
        self.assertEqual(ch.basic_get(qn), (None, None, None))
        code, text = self.channel_error(c, lambda ch2: ch2.basic_get(uniq("nothere")))
        self.assertEqual(code, 404, text)
        code, text = self.channel_error(c, lambda ch2: ch2.basic_consume(uniq("nothere"), lambda *a: None))
        self.assertEqual(code, 404, text)
        self.assert_usable(c)

    def test_basic_get_is_not_a_consumer(self):
        # A get takes a message; it does not consume: the queue counts no
        # consumer, an auto-delete queue stays (it never had one), and a
        # delete if-unused goes through while the got message is unacked.
        c = self.connect()
        ch = c.channel()
        ch.confirm_delivery()
        qn = self.queue(ch, auto_delete=True)
        for b in (b"1", b"2"):
            ch.basic_publish("", qn, b)
        m, _, body = ch.basic_get(qn)
        self.assertEqual(body, b"1")
        self.assertEqual(ch.queue_declare(qn, passive=True).method.consumer_count, 0)
        ch.basic_ack(m.delivery_tag)
        time.sleep(0.3)
        self.assertEqual(ch.queue_declare(qn, passive=True).method.message_count, 1, "the auto-delete queue stays")
        m, _, _ = ch.basic_get(qn)
        self.assertEqual(ch.queue_delete(qn, if_unused=True).method.message_count, 0)

    def test_nack_reject_recover_and_the_redelivered_flag(self):
        c = self.connect()
        ch = c.channel()
        ch.confirm_delivery()
        qn = self.queue(ch)
        for b in (b"a", b"b", b"c"):
            ch.basic_publish("", qn, b)
        m, _, body = ch.basic_get(qn)
        self.assertEqual((body, m.redelivered), (b"a", False))
        ch.basic_nack(m.delivery_tag, requeue=True)
        m, _, body = ch.basic_get(qn)
        self.assertEqual((body, m.redelivered), (b"a", True))  # back at the head, marked
        m2, _, body2 = ch.basic_get(qn)
        self.assertEqual((body2, m2.redelivered), (b"b", False))
        ch.basic_nack(m2.delivery_tag, multiple=True, requeue=True)  # both a and b
        got = [ch.basic_get(qn) for _ in range(3)]
        self.assertEqual([(b, m.redelivered) for m, _, b in got], [(b"a", True), (b"b", True), (b"c", False)])
        ch.basic_reject(got[0][0].delivery_tag, requeue=False)  # dropped (no dead-letter exchange)
        ch.basic_reject(got[1][0].delivery_tag, requeue=True)
        ch.basic_recover(requeue=True)  # c, unacked, back too
        got = [ch.basic_get(qn, auto_ack=True) for _ in range(3)]
        self.assertEqual([(b, m.redelivered) for m, _, b in got[:2]], [(b"b", True), (b"c", True)])
        self.assertEqual(got[2], (None, None, None))
        # An unknown delivery tag is a channel error (406).
        code, text = self.channel_error(c, lambda ch2: ch2.basic_ack(12345))
        self.assertEqual(code, 406, text)
        self.assert_usable(c)

    def test_server_cancels_the_consumer_of_a_deleted_queue(self):
        c, admin = self.connect(), self.connect()
        ch = c.channel()
        qn = self.queue(ch)
        cancelled = []
        ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
        tag = ch.basic_consume(qn, lambda *a: None)
        self.assertTrue(c._impl.server_capabilities.get("consumer_cancel_notify"))
        admin.channel().queue_delete(qn)
        self.assertTrue(self.until(lambda: cancelled, conns=[c]), "no Basic.Cancel from the broker")
        self.assertEqual(cancelled, [tag])
        self.assertTrue(ch.is_open)  # the channel goes on
        self.assert_usable(c)


class Publishing(Case):
    def test_confirms(self):
        c = self.connect()
        self.assertTrue(c._impl.server_capabilities.get("publisher_confirms"))
        self.assertTrue(c._impl.server_capabilities.get("basic.nack"))
        ch = c.channel()
        ch.confirm_delivery()
        qn = self.queue(ch, durable=True)
        for i in range(20):  # pika waits for each Basic.Ack; an error raises
            ch.basic_publish("", qn, json.dumps({"i": i}).encode(), pika.BasicProperties(delivery_mode=2))
        ch.basic_publish("", uniq("nowhere"), b"unroutable, not mandatory: still acked")
        self.assertEqual(ch.queue_declare(qn, passive=True, durable=True).method.message_count, 20)
        with self.assertRaises(UnroutableError):  # mandatory and unroutable: returned, then acked
            ch.basic_publish("", uniq("nowhere"), b"back", mandatory=True)
        self.assertTrue(ch.is_open)

    def test_mandatory_return(self):
        c = self.connect()
        ch = c.channel()
        returned = []
        ch.add_on_return_callback(lambda _ch, m, p, body: returned.append((m, p, body)))
        x = self.exchange(ch, "direct")
        qn = self.queue(ch)
        ch.queue_bind(qn, x, "routed")
        ch.basic_publish(x, "routed", b"kept", mandatory=True)
        ch.basic_publish(x, "unrouted", b"bounced", pika.BasicProperties(correlation_id="c1"), mandatory=True)
        ch.basic_publish(x, "unrouted", b"dropped silently")  # not mandatory
        self.assertTrue(self.until(lambda: returned, conns=[c]))
        c.process_data_events(time_limit=0.3)
        self.assertEqual(len(returned), 1)
        m, p, body = returned[0]
        self.assertEqual((m.reply_code, m.reply_text, m.exchange, m.routing_key), (312, "NO_ROUTE", x, "unrouted"))
        self.assertEqual((body, p.correlation_id), (b"bounced", "c1"))
        self.assertEqual(self.drain(ch, qn), [b"kept"])

    def test_large_and_empty_bodies(self):
        """A body over several frames (pika splits it at frame_max) and an
        empty one (a header frame and no body frame) come back as sent."""
        c = self.connect()
        ch = c.channel()
        ch.confirm_delivery()
        qn = self.queue(ch)
        big = bytes(range(256)) * 2048  # 512 KiB
        self.assertGreater(len(big), c._impl.params.frame_max)
        ch.basic_publish("", qn, big)
        ch.basic_publish("", qn, b"")
        ch.basic_publish("", qn, big[:c._impl.params.frame_max - 8])  # exactly one full frame of body
        m, _, body = ch.basic_get(qn, auto_ack=True)
        self.assertEqual(body, big)
        got = []
        ch.basic_consume(qn, lambda _ch, m, p, body: got.append(body), auto_ack=True)
        self.until(lambda: len(got) == 2, conns=[c])
        self.assertEqual(got, [b"", big[:c._impl.params.frame_max - 8]])

    def test_properties_cross_unchanged(self):
        c = self.connect()
        ch = c.channel()
        ch.confirm_delivery()
        qn = self.queue(ch)
        props = pika.BasicProperties(content_type="application/json", content_encoding="utf-8",
                                     headers={"s": "text", "n": 42, "b": True, "neg": -7},
                                     delivery_mode=2, priority=5, correlation_id="corr-1", reply_to="replies",
                                     expiration="60000", message_id="msg-1", timestamp=1700000000,
                                     type="order.created", user_id=getattr(self.b, "user", "guest"), app_id="shop")
        body = json.dumps({"id": 7, "name": "ünïcode", "items": [1, 2]}).encode()
        ch.basic_publish("", qn, body, props)
        m, p, got = ch.basic_get(qn, auto_ack=True)
        self.assertEqual(got, body)
        for f in ("content_type", "content_encoding", "delivery_mode", "priority", "correlation_id", "reply_to",
                  "expiration", "message_id", "timestamp", "type", "user_id", "app_id"):
            self.assertEqual(getattr(p, f), getattr(props, f), f)
        self.assertEqual(p.headers, props.headers)
        # user_id must be the connection's own user.
        code, text = self.channel_error(c, lambda ch2: ch2.basic_publish(
            "", qn, b"x", pika.BasicProperties(user_id="someone-else")))
        self.assertEqual(code, 406, text)
        self.assert_usable(c)


class Rpc(Case):
    def serve(self, conn, queue):
        """An RPC server on its own connection: doubles {"n"} and replies to
        reply_to with the request's correlation_id."""
        ch = conn.channel()

        def on_request(_ch, m, p, body):
            reply = json.dumps({"n2": json.loads(body)["n"] * 2}).encode()
            _ch.basic_publish("", p.reply_to, reply, pika.BasicProperties(correlation_id=p.correlation_id))
            _ch.basic_ack(m.delivery_tag)
            self.reply_tos.append(p.reply_to)
        ch.basic_qos(prefetch_count=1)
        ch.basic_consume(queue, on_request)
        self.reply_tos = []

    def test_rpc_over_an_exclusive_server_named_queue(self):
        server, client = self.connect(), self.connect()
        rpc = self.queue(server.channel(), "rpc")
        self.serve(server, rpc)
        ch = client.channel()
        reply_q = ch.queue_declare("", exclusive=True).method.queue
        replies = {}
        ch.basic_consume(reply_q, lambda _ch, m, p, body: replies.__setitem__(p.correlation_id, json.loads(body)),
                         auto_ack=True)
        for n in range(5):
            ch.basic_publish("", rpc, json.dumps({"n": n}).encode(),
                             pika.BasicProperties(reply_to=reply_q, correlation_id=f"req-{n}"))
        self.until(lambda: len(replies) == 5, timeout=5, conns=[server, client])
        self.assertEqual(replies, {f"req-{n}": {"n2": 2 * n} for n in range(5)})
        self.assertEqual(set(self.reply_tos), {reply_q})

    def test_rpc_over_direct_reply_to(self):
        server, client = self.connect(), self.connect()
        self.assertTrue(client._impl.server_capabilities.get("direct_reply_to"))
        rpc = self.queue(server.channel(), "rpc")
        self.serve(server, rpc)
        ch = client.channel()
        replies = {}
        ch.basic_consume("amq.rabbitmq.reply-to",
                         lambda _ch, m, p, body: replies.__setitem__(p.correlation_id, json.loads(body)),
                         auto_ack=True)
        for n in range(3):
            ch.basic_publish("", rpc, json.dumps({"n": n}).encode(),
                             pika.BasicProperties(reply_to="amq.rabbitmq.reply-to", correlation_id=f"d-{n}"))
        self.until(lambda: len(replies) == 3, timeout=5, conns=[server, client])
        self.assertEqual(replies, {f"d-{n}": {"n2": 2 * n} for n in range(3)})
        # The server saw a per-channel name in place of the pseudo-queue.
        self.assertEqual(len(set(self.reply_tos)), 1)
        self.assertTrue(self.reply_tos[0].startswith("amq.rabbitmq.reply-to."), self.reply_tos)

    def test_direct_reply_to_misuse(self):
        c = self.connect()
        # The pseudo-queue is consumed in no-ack mode only,
        code, text = self.channel_error(c, lambda ch: ch.basic_consume("amq.rabbitmq.reply-to", lambda *a: None))
        self.assertEqual(code, 406, text)
        # and a request naming it needs such a consumer on its channel.
        qn = self.queue(c.channel())
        code, text = self.channel_error(c, lambda ch: ch.basic_publish(
            "", qn, b"?", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to")))
        self.assertEqual(code, 406, text)
        self.assert_usable(c)


class Heartbeats(Case):
    def test_pika_heartbeats_keep_the_connection(self):
        c = self.connect(heartbeat=1)
        self.assertEqual(c._impl.params.heartbeat, 1)
        c.sleep(3.5)  # pika sends heartbeats and checks the broker's meanwhile
        self.assertTrue(c.is_open)
        self.assert_usable(c)

    def test_silent_peer_is_dropped(self):
        """A client that negotiates 1 s heartbeats and then says nothing:
        the broker sends heartbeats, then closes the socket."""
        r = RawClient(self, self.b)
        r.open(b"AMQP\x00\x00\x09\x01", heartbeat=1)
        start, beats = time.time(), 0
        with self.assertRaises((EOFError, ConnectionResetError)):
            while time.time() - start < 8:
                t, _ = r.frame()
                beats += t == 8
        self.assertGreaterEqual(beats, 1)
        self.assertLess(time.time() - start, 6)


class ProtocolHeader(Case):
    def test_the_0_9_header_net_amqp_sends(self):
        """Net::AMQP (under AnyEvent::RabbitMQ and Mojo::RabbitMQ::Client)
        opens with AMQP 1 1 0 9; RabbitMQ answers it as 0-9-1, announcing
        version 0-9, and the connection works."""
        r = RawClient(self, self.b)
        start = r.open(b"AMQP\x01\x01\x00\x09")
        self.assertEqual(start[:2], b"\x00\x09")  # version-major, version-minor
        r.send(r.method(10, 50, struct.pack(">HB", 200, 0) + struct.pack(">HH", 0, 0)))  # Connection.Close
        t, p = r.frame()
        self.assertEqual((t, p[:4]), (1, struct.pack(">HH", 10, 51)))  # Close-Ok


class RawClient:
    """Just enough of a 0-9-1 client by hand for what libraries will not
    do: another protocol header, a peer that goes silent."""

    def __init__(self, test, b):
        self.b = b
        self.s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
        test.addCleanup(self.s.close)
        self.buf = bytearray()

    def send(self, data):
        self.s.sendall(data)

    def frame(self):
        """(type, payload) of the next frame."""
        while True:
            if len(self.buf) >= 7:
                t, _ch, size = struct.unpack(">BHI", self.buf[:7])
                if len(self.buf) >= 8 + size:
                    payload = bytes(self.buf[7:7 + size])
                    del self.buf[:8 + size]
                    return t, payload
            d = self.s.recv(65536)
            if not d:
                raise EOFError
            self.buf.extend(d)

    @staticmethod
    def method(cls, mid, args):
        p = struct.pack(">HH", cls, mid) + args
        return struct.pack(">BHI", 1, 0, len(p)) + p + b"\xce"

    def open(self, header, heartbeat=0):
        """Header to Open-Ok, PLAIN as the broker's user; returns the
        arguments of Connection.Start."""
        user, pw = getattr(self.b, "user", "guest").encode(), getattr(self.b, "password", "guest").encode()
        resp = b"\0" + user + b"\0" + pw
        self.send(header)
        t, start = self.frame()
        if (t, start[:4]) != (1, struct.pack(">HH", 10, 10)):
            raise AssertionError(f"no Connection.Start for {header!r}: frame type {t}, {start[:16]!r}")
        self.send(self.method(10, 11, struct.pack(">I", 0) + b"\x05PLAIN" + struct.pack(">I", len(resp)) + resp
                              + b"\x05en_US"))
        _, tune = self.frame()
        ch_max, frame_max, _ = struct.unpack(">HIH", tune[4:12])  # take the broker's limits
        self.send(self.method(10, 31, struct.pack(">HIH", ch_max, frame_max, heartbeat))
                  + self.method(10, 40, b"\x01/\x00\x00"))
        t, p = self.frame()
        assert (t, p[:4]) == (1, struct.pack(">HH", 10, 41)), f"no Open-Ok: {t} {p[:16]!r}"
        return start[4:]


class AmqpTools(Case):
    """Debian's amqp-tools (librabbitmq's command line)."""

    def setUp(self):
        super().setUp()
        if not shutil.which("amqp-declare-queue"):
            missing("amqp-tools")
        self.url = url091(self.b, vhost=False)

    def tool(self, *args, ok=True, stdin=None):
        p = subprocess.run([args[0], "--url", self.url, *args[1:]], capture_output=True, text=True, timeout=20,
                           input=stdin)
        if ok:
            self.assertEqual(p.returncode, 0, p.stderr)
        else:
            self.assertNotEqual(p.returncode, 0, p.stdout)
        return p

    def test_declare_publish_get_consume(self):
        q = uniq("tools")
        self.made.append(("queue", q))
        self.assertEqual(self.tool("amqp-declare-queue", "-d", "-q", q).stdout.strip(), q)
        for i in range(3):
            self.tool("amqp-publish", "-r", q, "-p", "-C", "application/json", "-b", json.dumps({"i": i}))
        self.assertEqual(json.loads(self.tool("amqp-get", "-q", q).stdout), {"i": 0})
        out = self.tool("amqp-consume", "-q", q, "-c", "2", "-p", "1", "cat").stdout
        self.assertEqual(out, '{"i": 1}{"i": 2}')
        p = self.tool("amqp-get", "-q", q, ok=False)  # empty now: exit status 2, nothing printed
        self.assertEqual(p.stdout, "")
        # Lines from standard input are messages, read back in order by pika.
        self.tool("amqp-publish", "-r", q, "-l", stdin="one\ntwo\n")
        c = self.connect()
        self.assertEqual(self.drain(c.channel(), q), [b"one\n", b"two\n"])  # each with its newline
        # Redeclaring with other properties fails, saying why.
        p = self.tool("amqp-declare-queue", "-q", q, ok=False)
        self.assertIn("PRECONDITION_FAILED", p.stderr)
        p = self.tool("amqp-get", "-q", uniq("missing"), ok=False)
        self.assertIn("NOT_FOUND", p.stderr)
        self.assertEqual(self.tool("amqp-delete-queue", "-q", q).returncode, 0)

    def test_consume_binds_to_an_exchange(self):
        c = self.connect()
        ch = c.channel()
        x = self.exchange(ch, "topic")
        ready = uniq("tools-bound")
        p = subprocess.Popen(["amqp-consume", "--url", self.url, "-q", ready, "-x", "-e", x, "-r", "orders.*",
                              "-c", "2", "cat"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: p.poll() is None and p.kill())

        def bound():
            try:
                c.channel().queue_declare(ready, passive=True)
                return True
            except ChannelClosedByBroker as e:
                return e.reply_code == 405  # there, and exclusive to amqp-consume's connection
        self.assertTrue(self.until(bound, timeout=5), "amqp-consume declared no queue")
        ch.confirm_delivery()
        for key in ("orders.new", "refunds.new", "orders.paid"):
            ch.basic_publish(x, key, key.encode())
        out, err = p.communicate(timeout=10)
        self.assertEqual((p.returncode, out), (0, "orders.neworders.paid"), err)


if __name__ == "__main__":
    watchdog(180)  # a client waiting forever for a broker's answer fails the file
    main()
