#!/usr/bin/python3
"""59: dead-lettered messages carry their death history, as on RabbitMQ 4.

- 0-9-1 (pika): a message rejected without requeue, expired by a queue's
  or its own TTL, or dropped from the head by x-max-length reaches the
  dead-letter queue with the `x-death` header (a list of dicts: count,
  reason, queue, time, exchange, routing-keys, original-expiration when a
  per-message TTL was taken off) and x-first-death-* / x-last-death-*;
  the delivery names the dead-letter exchange and key; the expiration is
  gone. A Celery-style retry loop (reject -> a delay queue with a TTL ->
  back) counts each (queue, reason) up instead of adding entries; a loop
  of TTLs with no rejection is cut, as RabbitMQ cuts it.
- An expiration of "0" expires at once unless a consumer takes the message
  right away (then it is delivered), as RabbitMQ does.
- AMQP 1.0 (python3-qpid-proton) consumers see RabbitMQ 4's annotations:
  x-opt-deaths (an array of maps), x-first-death-*, x-last-death-*.
- A message whose x-opt-deaths cannot be read is dead-lettered unchanged.
"""
import datetime
import time
import unittest
import uuid

from harness import (Broker091Test, Delivery, External, Message, broker091, connect, main, missing, plexus_only,
                     receiver, sender, settle, stop091, symbol, watchdog)

try:
    import pika
except ImportError:  # counted as a skip here, a failure in CI
    pika = None


def pika_connect(test, b):
    c = pika.BlockingConnection(pika.ConnectionParameters(host="127.0.0.1", port=b.port, connection_attempts=1,
                                                          credentials=pika.PlainCredentials("guest", "guest")))
    test.addCleanup(lambda: c.close() if c.is_open else None)
    return c


def get(test, ch, queue, timeout=5.0):
    """basic_get until a message is there (dead-lettering is asynchronous)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is not None:
            return method, props, body
        time.sleep(0.02)
    test.fail(f"nothing arrived in {queue}")


def reject_one(test, ch, queue):
    """Takes the next message of queue and rejects it without requeue."""
    method = props = body = None
    deadline = time.time() + 5
    while method is None and time.time() < deadline:
        method, props, body = ch.basic_get(queue, auto_ack=False)
        if method is None:
            time.sleep(0.02)
    test.assertIsNotNone(method, f"nothing to reject in {queue}")
    ch.basic_reject(method.delivery_tag, requeue=False)
    return props, body


class Deaths091(unittest.TestCase):
    """0-9-1 only: also runs against PLEXUS_TEST_BROKER (RabbitMQ), with
    names of its own there (that broker outlives a run)."""

    @classmethod
    def setUpClass(cls):
        cls.b = broker091()
        cls.sfx = "-" + uuid.uuid4().hex[:8] if isinstance(cls.b, External) else ""

    @classmethod
    def tearDownClass(cls):
        stop091(cls.b)

    def q(self, name):
        return name + self.sfx

    def setUp(self):
        if pika is None:
            missing("python3-pika")
        self.c = pika_connect(self, self.b)
        self.ch = self.c.channel()

    def check_time(self, t):
        self.assertIsInstance(t, datetime.datetime)
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None).timestamp()
        self.assertLess(abs(t.replace(tzinfo=None).timestamp() - now), 120, t)

    def test_rejected(self):
        ch = self.ch
        ch.exchange_declare(self.q("dlx-59"), "direct")
        ch.queue_declare(self.q("dl-59"))
        ch.queue_bind(self.q("dl-59"), self.q("dlx-59"), self.q("work-59"))
        ch.queue_declare(self.q("work-59"), arguments={"x-dead-letter-exchange": self.q("dlx-59")})
        ch.exchange_declare(self.q("in-59"), "direct")
        ch.queue_bind(self.q("work-59"), self.q("in-59"), self.q("work-59"))
        ch.basic_publish(self.q("in-59"), self.q("work-59"), b'{"job": 1}', pika.BasicProperties(
            headers={"app": "shop"}, expiration="60000", content_type="application/json", delivery_mode=2))
        reject_one(self, ch, self.q("work-59"))
        method, props, body = get(self, ch, self.q("dl-59"))
        self.assertEqual(body, b'{"job": 1}')
        self.assertEqual(method.exchange, self.q("dlx-59"))
        self.assertEqual(method.routing_key, self.q("work-59"))
        self.assertIsNone(props.expiration)  # taken off, kept as original-expiration
        self.assertEqual(props.content_type, "application/json")
        self.assertEqual(props.delivery_mode, 2)
        h = props.headers
        self.assertEqual(h["app"], "shop")
        xd = h["x-death"]
        self.assertIsInstance(xd, list)
        self.assertEqual(len(xd), 1)
        d = xd[0]
        self.assertIsInstance(d, dict)
        self.assertEqual(set(d), {"count", "reason", "queue", "time", "exchange", "routing-keys",
                                  "original-expiration"})
        self.assertEqual(d["count"], 1)
        self.assertEqual(d["reason"], "rejected")
        self.assertEqual(d["queue"], self.q("work-59"))
        self.assertEqual(d["exchange"], self.q("in-59"))
        self.assertEqual(d["routing-keys"], [self.q("work-59")])
        self.assertEqual(d["original-expiration"], "60000")
        self.check_time(d["time"])
        self.assertEqual(h["x-first-death-queue"], self.q("work-59"))
        self.assertEqual(h["x-first-death-reason"], "rejected")
        self.assertEqual(h["x-first-death-exchange"], self.q("in-59"))
        self.assertEqual(h["x-last-death-queue"], self.q("work-59"))
        self.assertEqual(h["x-last-death-reason"], "rejected")
        self.assertEqual(h["x-last-death-exchange"], self.q("in-59"))
        for k in ("x-opt-deaths", "x-exchange", "x-routing-key"):
            self.assertNotIn(k, h)

    def test_expired_by_queue_ttl_and_by_its_own(self):
        ch = self.ch
        ch.queue_declare(self.q("ttl-dl-59"))
        ch.queue_declare(self.q("ttl-59"), arguments={"x-message-ttl": 50, "x-dead-letter-exchange": "",
                                              "x-dead-letter-routing-key": self.q("ttl-dl-59")})
        ch.queue_declare(self.q("own-59"), arguments={"x-dead-letter-exchange": "",
                                              "x-dead-letter-routing-key": self.q("ttl-dl-59")})
        ch.basic_publish("", self.q("ttl-59"), b"queue ttl")
        method, props, body = get(self, ch, self.q("ttl-dl-59"))
        self.assertEqual(body, b"queue ttl")
        self.assertEqual(method.routing_key, self.q("ttl-dl-59"))
        self.assertEqual(method.exchange, "")
        d, = props.headers["x-death"]
        self.assertEqual((d["reason"], d["queue"], d["count"], d["exchange"], d["routing-keys"]),
                         ("expired", self.q("ttl-59"), 1, "", [self.q("ttl-59")]))
        self.assertNotIn("original-expiration", d)  # a queue's TTL is not the message's
        ch.basic_publish("", self.q("own-59"), b"own ttl", pika.BasicProperties(expiration="30"))
        method, props, body = get(self, ch, self.q("ttl-dl-59"))
        self.assertEqual(body, b"own ttl")
        self.assertIsNone(props.expiration)
        d, = props.headers["x-death"]
        self.assertEqual((d["reason"], d["queue"], d["original-expiration"]), ("expired", self.q("own-59"), "30"))

    def test_maxlen(self):
        ch = self.ch
        ch.queue_declare(self.q("len-dl-59"))
        ch.queue_declare(self.q("len-59"), arguments={"x-max-length": 1, "x-dead-letter-exchange": "",
                                              "x-dead-letter-routing-key": self.q("len-dl-59")})
        ch.basic_publish("", self.q("len-59"), b"first")
        ch.basic_publish("", self.q("len-59"), b"second")
        method, props, body = get(self, ch, self.q("len-dl-59"))
        self.assertEqual(body, b"first")  # drop-head: the oldest goes
        d, = props.headers["x-death"]
        self.assertEqual((d["reason"], d["queue"], d["count"]), ("maxlen", self.q("len-59"), 1))
        self.assertEqual(props.headers["x-first-death-reason"], "maxlen")
        self.assertEqual(get(self, ch, self.q("len-59"))[2], b"second")

    def test_retry_loop_counts_up(self):
        """Celery-style: reject from the work queue into a delay queue whose
        TTL sends it back; each (queue, reason) is one entry, counted."""
        ch = self.ch
        ch.queue_declare(self.q("retry-work-59"), arguments={"x-dead-letter-exchange": "",
                                                     "x-dead-letter-routing-key": self.q("retry-wait-59")})
        ch.queue_declare(self.q("retry-wait-59"), arguments={"x-message-ttl": 20, "x-dead-letter-exchange": "",
                                                     "x-dead-letter-routing-key": self.q("retry-work-59")})
        ch.basic_publish("", self.q("retry-work-59"), b"task", pika.BasicProperties(headers={"task": "add"}))
        for attempt in (1, 2, 3):
            props, body = reject_one(self, ch, self.q("retry-work-59"))
            self.assertEqual(body, b"task")
            if attempt == 1:
                self.assertNotIn("x-death", props.headers)
                continue
            xd = props.headers["x-death"]
            self.assertEqual([(d["queue"], d["reason"], d["count"]) for d in xd],
                             [(self.q("retry-wait-59"), "expired", attempt - 1),
                              (self.q("retry-work-59"), "rejected", attempt - 1)])
            self.assertEqual(xd[1]["routing-keys"], [self.q("retry-work-59")])
            self.assertEqual(xd[0]["routing-keys"], [self.q("retry-wait-59")])
            self.assertEqual(props.headers["x-first-death-queue"], self.q("retry-work-59"))
            self.assertEqual(props.headers["x-first-death-reason"], "rejected")
            self.assertEqual(props.headers["x-last-death-queue"], self.q("retry-wait-59"))
            self.assertEqual(props.headers["x-last-death-reason"], "expired")
            self.assertEqual(props.headers["task"], "add")
        # the third rejection is on its way back: wait for it and read it
        method, props, body = get(self, ch, self.q("retry-work-59"))
        counts = {(d["queue"], d["reason"]): d["count"] for d in props.headers["x-death"]}
        self.assertEqual(counts, {(self.q("retry-wait-59"), "expired"): 3, (self.q("retry-work-59"), "rejected"): 3})

    def test_cycle_without_rejection_is_dropped(self):
        """Two queues whose TTLs dead-letter into each other: RabbitMQ drops
        the message when it would come back with no rejection on the way."""
        ch, qa, qb = self.ch, self.q("cyc-a-59"), self.q("cyc-b-59")
        ch.queue_declare(qa, arguments={"x-message-ttl": 20, "x-dead-letter-exchange": "",
                                        "x-dead-letter-routing-key": qb})
        ch.queue_declare(qb, arguments={"x-message-ttl": 20, "x-dead-letter-exchange": "",
                                        "x-dead-letter-routing-key": qa})
        ch.basic_publish("", qa, b"round")
        if isinstance(self.b, External):
            time.sleep(1)
        else:
            said = f"queue {qb}: dead letter dropped: it would cycle back to queue {qa}"
            deadline = time.time() + 5
            while said not in self.b.log() and time.time() < deadline:
                time.sleep(0.05)
            self.assertIn(said, self.b.log())
            time.sleep(0.1)
        for q in (qa, qb):
            self.assertEqual(ch.queue_declare(q, passive=True).method.message_count, 0)

    def test_expiration_zero(self):
        ch = self.ch
        ch.queue_declare(self.q("zero-dl-59"))
        ch.queue_declare(self.q("zero-59"), arguments={"x-dead-letter-exchange": "",
                                               "x-dead-letter-routing-key": self.q("zero-dl-59")})
        # nobody consumes: it expires at once
        ch.basic_publish("", self.q("zero-59"), b"nobody", pika.BasicProperties(expiration="0"))
        method, props, body = get(self, ch, self.q("zero-dl-59"))
        self.assertEqual(body, b"nobody")
        d, = props.headers["x-death"]
        self.assertEqual((d["reason"], d["queue"], d["original-expiration"]), ("expired", self.q("zero-59"), "0"))
        self.assertEqual(ch.basic_get(self.q("zero-59")), (None, None, None))
        # a consumer waits: it is delivered, not dead-lettered
        got = []
        ch.basic_consume(self.q("zero-59"), lambda c, m, p, b: got.append((p, b)), auto_ack=True)
        self.c.process_data_events(time_limit=0.2)
        c2 = pika_connect(self, self.b)
        c2.channel().basic_publish("", self.q("zero-59"), b"taken", pika.BasicProperties(expiration="0"))
        deadline = time.time() + 5
        while not got and time.time() < deadline:
            self.c.process_data_events(time_limit=0.1)
        self.assertEqual([b for _, b in got], [b"taken"])
        self.assertEqual(got[0][0].expiration, "0")
        time.sleep(0.2)
        self.assertEqual(self.ch.basic_get(self.q("zero-dl-59")), (None, None, None))


@plexus_only("Plexus's /queues/NAME addresses for the AMQP 1.0 side")
class Deaths10(Broker091Test):
    def setUp(self):
        if pika is None:
            missing("python3-pika")
        self.c = pika_connect(self, self.b)
        self.ch = self.c.channel()
        self.a = connect(self.b)
        self.addCleanup(self.a.close)

    def test_amqp10_consumer_sees_x_opt_deaths(self):
        ch = self.ch
        ch.queue_declare("a10-dl-59")
        ch.queue_declare("a10-59", arguments={"x-dead-letter-exchange": "",
                                              "x-dead-letter-routing-key": "a10-dl-59"})
        ch.basic_publish("", "a10-59", b"from 0-9-1", pika.BasicProperties(expiration="60000"))
        reject_one(self, ch, "a10-59")
        r = receiver(self.a, "/queues/a10-dl-59", credit=10)
        m = r.receive(timeout=5)
        r.accept()
        self.assertEqual(bytes(m.body), b"from 0-9-1")
        self.assertIsNone(m.ttl or None)  # the ttl is gone
        ann = m.annotations
        deaths = ann["x-opt-deaths"]
        elems = list(deaths.elements)
        self.assertEqual(len(elems), 1)
        d = {str(k): v for k, v in elems[0].items()}
        self.assertEqual(d["queue"], "a10-59")
        self.assertEqual(d["reason"], "rejected")
        self.assertIsInstance(d["reason"], symbol)
        self.assertEqual(d["count"], 1)
        self.assertEqual(d["exchange"], "")
        self.assertEqual(list(d["routing-keys"].elements), ["a10-59"])
        self.assertEqual(d["ttl"], 60000)
        self.assertEqual(d["first-time"], d["last-time"])
        self.assertLess(abs(d["first-time"] / 1000 - time.time()), 120)
        self.assertEqual(ann["x-first-death-queue"], "a10-59")
        self.assertEqual(ann["x-first-death-reason"], "rejected")
        self.assertEqual(ann["x-last-death-queue"], "a10-59")
        self.assertEqual(ann["x-exchange"], "")
        self.assertEqual(ann["x-routing-key"], "a10-dl-59")

    def test_amqp10_publish_rejected_over_amqp10(self):
        ch = self.ch
        ch.queue_declare("b10-dl-59")
        ch.queue_declare("b10-59", arguments={"x-dead-letter-exchange": "",
                                              "x-dead-letter-routing-key": "b10-dl-59"})
        ch.queue_declare("b10-dl2-59")
        s = sender(self.a, "/queues/b10-59")
        s.send(Message(body=b"from 1.0", properties={"k": "v"}))
        r = receiver(self.a, "/queues/b10-59", credit=1)
        r.receive(timeout=5)
        settle(r, Delivery.REJECTED)
        r.close()  # the blocking client sends the disposition on its next wait
        method, props, body = get(self, ch, "b10-dl-59")
        self.assertEqual(body, b"from 1.0")
        self.assertEqual(props.headers["k"], "v")
        d, = props.headers["x-death"]
        self.assertEqual((d["queue"], d["reason"], d["exchange"], d["routing-keys"]),
                         ("b10-59", "rejected", "", ["b10-59"]))

    def test_malformed_history_is_forwarded_unchanged(self):
        ch = self.ch
        ch.queue_declare("bad-dl-59")
        ch.queue_declare("bad-59", arguments={"x-dead-letter-exchange": "",
                                              "x-dead-letter-routing-key": "bad-dl-59"})
        s = sender(self.a, "/queues/bad-59")
        s.send(Message(body=b"odd", annotations={symbol("x-opt-deaths"): "not a history",
                                                 symbol("x-app"): "shop"}))
        r = receiver(self.a, "/queues/bad-59", credit=1)
        r.receive(timeout=5)
        settle(r, Delivery.REJECTED)
        r2 = receiver(self.a, "/queues/bad-dl-59", credit=1)
        m = r2.receive(timeout=5)
        r2.accept()
        self.assertEqual(bytes(m.body), b"odd")
        self.assertEqual(m.annotations["x-opt-deaths"], "not a history")
        self.assertEqual(m.annotations["x-app"], "shop")
        self.assertNotIn("x-first-death-queue", m.annotations)
        # and the broker is fine
        self.assertIn("started", self.b.log())


if __name__ == "__main__":
    watchdog(120)
    main()
