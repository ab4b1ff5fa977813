#!/usr/bin/python3
"""54: kombu, Celery's messaging library (Debian's python3-kombu), over its
pyamqp transport (py-amqp, the one Celery uses), against the real broker:
a producer and a consumer on a direct exchange with JSON payloads and
headers, reject/requeue, publisher confirms as Celery turns them on
(confirm_publish; a full reject-publish queue nacks), kombu's SimpleQueue,
and a 404 the connection survives.

PLEXUS_TEST_BROKER=amqp://guest:guest@127.0.0.1:PORT runs them against that
broker instead (see harness.py).
"""
import socket
import time

from harness import Broker091Test, main, missing, uniq, watchdog

try:
    import amqp.exceptions
    import kombu
    from kombu import Connection, Consumer, Exchange, Producer, Queue
except ImportError:  # counted as a skip here, a failure in CI
    kombu = None


class Kombu(Broker091Test):
    def setUp(self):
        if kombu is None:
            missing("python3-kombu")

    def connect(self, **options):
        user, pw = getattr(self.b, "user", "guest"), getattr(self.b, "password", "guest")
        c = Connection(f"pyamqp://{user}:{pw}@127.0.0.1:{self.b.port}//", connect_timeout=5,
                       transport_options=options)
        c.connect()
        self.addCleanup(c.release)
        return c

    def drain(self, conn, until, timeout=5):
        """Serves conn until until() is true; fails after timeout seconds."""
        deadline = time.time() + timeout
        while not until():
            left = deadline - time.time()
            self.assertGreater(left, 0, "nothing more came")
            try:
                conn.drain_events(timeout=min(left, 0.5))
            except socket.timeout:
                pass

    def test_producer_consumer_json(self):
        c = self.connect()
        x = Exchange(uniq("k-x"), type="direct", auto_delete=True)
        q = Queue(uniq("k-q"), x, routing_key="task.add", auto_delete=True)
        got = []

        def on_message(body, message):
            got.append((body, message.content_type, message.headers, message.properties.get("correlation_id"),
                        message.delivery_info["redelivered"]))
            message.ack()

        with Consumer(c, queues=[q], callbacks=[on_message], accept=["json"], prefetch_count=2):
            p = Producer(c.default_channel, exchange=x)
            for i in range(4):
                p.publish({"task": "add", "args": [i, i]}, routing_key="task.add", serializer="json",
                          headers={"task": "add", "retries": i}, correlation_id=f"t-{i}", declare=[q])
            p.publish({"lost": True}, routing_key="no.such.key", serializer="json")  # routed nowhere
            self.drain(c, lambda: len(got) >= 4)
            try:
                c.drain_events(timeout=0.3)
            except socket.timeout:
                pass
        self.assertEqual(got, [({"task": "add", "args": [i, i]}, "application/json", {"task": "add", "retries": i},
                                f"t-{i}", False) for i in range(4)])

    def test_reject_and_requeue(self):
        c = self.connect()
        name = uniq("k-rq")
        self.addCleanup(lambda: Queue(name).bind(self.connect().default_channel).delete())
        sq = c.SimpleQueue(name)
        sq.put({"n": 1})
        m = sq.get(timeout=3)
        self.assertEqual((m.payload, m.delivery_info["redelivered"]), ({"n": 1}, False))
        m.requeue()  # Basic.Reject, requeue: it comes back, marked
        m = sq.get(timeout=3)
        self.assertEqual((m.payload, m.delivery_info["redelivered"]), ({"n": 1}, True))
        m.reject()  # dropped
        sq.put({"n": 2})
        m = sq.get(timeout=3)
        self.assertEqual((m.payload, m.delivery_info["redelivered"]), ({"n": 2}, False))
        m.ack()
        with self.assertRaises(sq.Empty):
            sq.get(timeout=0.5)
        sq.close()

    def test_simple_queue(self):
        c = self.connect()
        name = uniq("k-simple")
        sq = c.SimpleQueue(name)
        self.addCleanup(lambda: Queue(name).bind(self.connect().default_channel).delete())
        for i in range(3):
            sq.put({"order": i, "item": "tea"}, headers={"source": "kombu"})
        # qsize is a passive declare on another channel: the puts may still be on their way.
        deadline = time.time() + 3
        while sq.qsize() != 3 and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(sq.qsize(), 3)
        out = []
        for _ in range(3):
            m = sq.get(block=True, timeout=3)
            out.append((m.payload, m.headers.get("source")))
            m.ack()
        self.assertEqual(out, [({"order": i, "item": "tea"}, "kombu") for i in range(3)])
        with self.assertRaises(sq.Empty):
            sq.get(block=True, timeout=0.5)
        sq.close()

    def test_confirm_publish_as_celery_does(self):
        c = self.connect(confirm_publish=True)
        ch = c.channel()
        self.addCleanup(ch.close)
        q = Queue(uniq("k-full"), queue_arguments={"x-max-length": 1, "x-overflow": "reject-publish"},
                  auto_delete=True)
        p = Producer(ch)
        p.publish({"first": 1}, routing_key=q.name, declare=[q])  # returns once the broker acked it
        with self.assertRaises(amqp.exceptions.MessageNacked):
            p.publish({"second": 2}, routing_key=q.name)
        self.assertEqual(q.bind(ch).queue_declare(passive=True).message_count, 1)

    def test_not_found_keeps_the_connection(self):
        c = self.connect()
        with self.assertRaises(amqp.exceptions.NotFound) as e:
            Queue(uniq("k-missing")).bind(c.channel()).queue_declare(passive=True)
        self.assertEqual(e.exception.code, 404)
        self.assertTrue(c.connected)
        sq = c.SimpleQueue(uniq("k-after"), queue_opts={"auto_delete": True})
        sq.put("still fine")
        self.assertEqual(sq.get(timeout=3).payload, "still fine")
        sq.close()


if __name__ == "__main__":
    watchdog(120)  # a client waiting forever for a broker's answer fails the file
    main()
