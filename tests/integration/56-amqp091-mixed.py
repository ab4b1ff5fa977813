#!/usr/bin/python3
"""56: one message model for both protocols, and 0-9-1 durability.

- Mixed traffic: pika (0-9-1) publishes, python3-qpid-proton (AMQP 1.0)
  receives and answers, pika reads the answer. JSON bodies cross byte for
  byte; headers <-> application-properties, content-type, correlation-id,
  reply-to (a queue name <-> /queues/NAME), message-id, priority and
  delivery-mode 2 <-> durable map as RabbitMQ 4 documents.
- A durable queue filled over 0-9-1 with persistent messages and publisher
  confirms, some consumed and acked, then `kill -9` of the broker and a
  restart on the same data directory: every confirmed, unacked persistent
  message is there, in order; transient ones, the non-durable queue and
  nothing else are gone; durable exchanges and bindings route again.

Both need the Plexus process (its AMQP 1.0 addresses; kill -9): under
PLEXUS_TEST_BROKER they are skipped, and only there.
"""
import json
import shutil
import signal
import tempfile
import unittest

from harness import Broker091Test, Broker, Message, connect, main, missing, plexus_only, receiver, sender, watchdog

try:
    import pika
    from pika.exceptions import ChannelClosedByBroker
except ImportError:  # counted as a skip here, a failure in CI
    pika = None


def pika_connect(test, b):
    c = pika.BlockingConnection(pika.ConnectionParameters(host="127.0.0.1", port=b.port, connection_attempts=1,
                                                          credentials=pika.PlainCredentials("guest", "guest")))
    test.addCleanup(close_quietly, c)
    return c


def close_quietly(c):
    """Closes a pika connection whose broker may have been killed under it."""
    try:
        if c.is_open:
            c.close()
    except pika.exceptions.AMQPError:
        pass


@plexus_only("AMQP 1.0 on the same port with Plexus's /queues/NAME addresses")
class Mixed(Broker091Test):
    def setUp(self):
        if pika is None:
            missing("python3-pika")

    def test_091_in_10_out_and_back(self):
        c = pika_connect(self, self.b)
        ch = c.channel()
        ch.confirm_delivery()
        ch.queue_declare("mixed-req", durable=True)
        ch.queue_declare("mixed-rep", durable=True)
        body = json.dumps({"order": 17, "customer": "Zoë", "lines": [{"sku": "A-1", "qty": 2}], "total": 12.5},
                          ensure_ascii=False, separators=(",", ":")).encode()
        ch.basic_publish("", "mixed-req", body, pika.BasicProperties(
            content_type="application/json", content_encoding="utf-8",
            headers={"region": "eu", "attempt": 3, "vip": True},
            correlation_id="corr-17", reply_to="mixed-rep", message_id="order-17", priority=5, delivery_mode=2))
        ch.basic_publish("", "mixed-req", b"\x00\xff raw \xfe", pika.BasicProperties(delivery_mode=1))

        a = connect(self.b)
        self.addCleanup(a.close)
        r = receiver(a, "/queues/mixed-req", credit=10)
        m = r.receive(timeout=5)
        r.accept()
        self.assertEqual(bytes(m.body), body)  # a data section, the same bytes
        self.assertEqual(m.content_type, "application/json")
        self.assertEqual(m.content_encoding, "utf-8")
        self.assertEqual(dict(m.properties), {"region": "eu", "attempt": 3, "vip": True})
        self.assertEqual(m.correlation_id, "corr-17")
        self.assertEqual(m.reply_to, "/queues/mixed-rep")
        self.assertEqual(m.id, "order-17")
        self.assertEqual(m.priority, 5)
        self.assertIs(m.durable, True)
        m2 = r.receive(timeout=5)
        r.accept()
        self.assertEqual(bytes(m2.body), b"\x00\xff raw \xfe")
        self.assertIs(m2.durable, False)

        # The AMQP 1.0 side answers where reply-to says, as a 1.0 client would.
        reply = json.dumps({"order": 17, "price": 12.5, "currency": "EUR"}).encode()
        s = sender(a, m.reply_to)
        s.send(Message(body=reply, content_type="application/json", correlation_id=m.correlation_id,
                       id="price-17", properties={"status": "priced", "lines": 1}, priority=7, durable=True,
                       reply_to="/queues/mixed-req"))
        s.send(Message(body=b"transient", durable=False))

        got, props, gbody = ch.basic_get("mixed-rep", auto_ack=True)
        self.assertIsNotNone(got, "the 1.0 reply did not reach the 0-9-1 queue")
        self.assertEqual(gbody, reply)
        self.assertEqual(props.content_type, "application/json")
        self.assertEqual(props.correlation_id, "corr-17")
        self.assertEqual(props.message_id, "price-17")
        self.assertEqual(props.headers, {"status": "priced", "lines": 1})
        self.assertEqual(props.priority, 7)
        self.assertEqual(props.delivery_mode, 2)
        self.assertEqual(props.reply_to, "mixed-req")  # /queues/NAME back to a queue name
        got, props, gbody = ch.basic_get("mixed-rep", auto_ack=True)
        self.assertEqual(gbody, b"transient")
        self.assertNotEqual(props.delivery_mode, 2)
        self.assertEqual(ch.basic_get("mixed-rep"), (None, None, None))

    def test_10_properties_too_large_for_a_091_frame(self):
        # An AMQP 1.0 publisher may send application properties larger than
        # the 0-9-1 client's frame_max (a content header is one frame): the
        # 0-9-1 consumer gets the body without them, not an empty message.
        c = pika_connect(self, self.b)
        ch = c.channel()
        ch.queue_declare("mixed-big-props")
        a = connect(self.b)
        self.addCleanup(a.close)
        body = json.dumps({"n": 1}).encode()
        sender(a, "/queues/mixed-big-props").send(Message(body=body, properties={"big": "x" * 200000, "k": 1}))
        m, props, got = ch.basic_get("mixed-big-props", auto_ack=True)
        self.assertEqual(got, body)
        self.assertFalse(props.headers)
        self.b.wait_log("properties do not fit a 0-9-1 frame")

    def test_10_consumer_and_091_consumer_share_a_queue(self):
        c = pika_connect(self, self.b)
        ch = c.channel()
        ch.confirm_delivery()
        ch.queue_declare("mixed-shared")
        a = connect(self.b)
        self.addCleanup(a.close)
        s = sender(a, "/queues/mixed-shared")
        for i in range(4):
            s.send(Message(body=json.dumps({"i": i}).encode(), durable=True))
        m, _, body = ch.basic_get("mixed-shared")
        self.assertEqual(json.loads(body), {"i": 0})
        ch.basic_nack(m.delivery_tag, requeue=True)  # back to the queue, marked delivered
        # Basic.Nack has no answer: a synchronous method after it on the same
        # channel makes sure the broker has read it before the 1.0 side
        # attaches (on another connection, which could otherwise get there first).
        ch.queue_declare("mixed-shared", passive=True)
        r = receiver(a, "/queues/mixed-shared", credit=10)
        first = r.receive(timeout=5)
        r.accept()
        self.assertEqual((json.loads(bytes(first.body)), first.delivery_count >= 1), ({"i": 0}, True))
        rest = []
        for _ in range(3):
            x = r.receive(timeout=5)
            r.accept()
            rest.append(json.loads(bytes(x.body))["i"])
        self.assertEqual(rest, [1, 2, 3])


@plexus_only("kills the Plexus process with SIGKILL and restarts it")
class Kill9(unittest.TestCase):
    def setUp(self):
        if pika is None:
            missing("python3-pika")

    def test_confirmed_persistent_messages_survive_kill_9(self):
        data = tempfile.mkdtemp(prefix="plexus-091-kill-")
        self.addCleanup(shutil.rmtree, data, True)
        b = Broker(data_dir=data).start()
        try:
            c = pika_connect(self, b)
            ch = c.channel()
            ch.confirm_delivery()
            ch.queue_declare("k9", durable=True, arguments={"x-max-length": 10000})
            ch.queue_declare("k9-temp", durable=False)
            ch.exchange_declare("k9-x", exchange_type="topic", durable=True)
            ch.queue_bind("k9", "k9-x", "order.*")
            for i in range(200):  # each returns once the broker confirmed it
                ch.basic_publish("k9-x" if i % 2 else "", "order.new" if i % 2 else "k9",
                                 json.dumps({"i": i}).encode(),
                                 pika.BasicProperties(delivery_mode=2, content_type="application/json"))
                if i % 50 == 0:
                    ch.basic_publish("", "k9", json.dumps({"transient": i}).encode(),
                                     pika.BasicProperties(delivery_mode=1))
            ch.basic_publish("", "k9-temp", b"gone", pika.BasicProperties(delivery_mode=2))
            acked = []
            while len(acked) < 50:
                m, _, body = ch.basic_get("k9")
                j = json.loads(body)
                if "i" in j:
                    acked.append(j["i"])
                ch.basic_ack(m.delivery_tag)
            ch.queue_declare("k9", passive=True)  # a round trip after the acks
        finally:
            b.stop(signal.SIGKILL)
            b.logf.close()
            b.tmp.cleanup()
        self.assertEqual(acked, list(range(50)))

        with Broker(data_dir=data) as b2:
            c = pika_connect(self, b2)
            ch = c.channel()
            r = ch.queue_declare("k9", durable=True, arguments={"x-max-length": 10000})  # same: fine
            self.assertGreaterEqual(r.method.message_count, 150)
            with self.assertRaises(ChannelClosedByBroker) as e:
                c.channel().queue_declare("k9-temp", passive=True)
            self.assertEqual(e.exception.reply_code, 404)
            seen = []
            while True:
                m, _, body = ch.basic_get("k9", auto_ack=True)
                if m is None:
                    break
                seen.append((json.loads(body), m.redelivered))
            ids = [j.get("i") for j, _ in seen]
            self.assertNotIn(None, ids, "a transient message survived kill -9")
            # An ack not yet on disk may bring its message back, marked; no
            # confirmed and unacked message is lost, and the order holds.
            again = [i for i in ids if i < 50]
            self.assertEqual(ids, again + list(range(50, 200)))
            self.assertTrue(all(red for (j, red) in seen if j["i"] < 50))
            self.assertEqual(again, sorted(again))
            # The durable exchange and its binding came back too.
            ch.confirm_delivery()
            ch.basic_publish("k9-x", "order.more", b'{"i": 200}', pika.BasicProperties(delivery_mode=2))
            m, _, body = ch.basic_get("k9", auto_ack=True)
            self.assertEqual(body, b'{"i": 200}')
            c.close()


if __name__ == "__main__":
    watchdog(180)  # a client waiting forever for a broker's answer fails the file
    main()
