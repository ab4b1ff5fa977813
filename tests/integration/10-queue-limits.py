#!/usr/bin/python3
"""10: bounded queues and expiry — max-length with reject-publish and
drop-head, max-length-bytes, message TTL (queue and per message) with
dead-lettering."""
import time
import unittest

from harness import BrokerTest, config_file, Broker, Message, Props, connect, main, receive_all, receiver, send_outcomes, sender


class QueueLimits(BrokerTest):
    def test_reject_publish_refuses_with_resource_limit_exceeded(self):
        out = send_outcomes(self.b, "/queues/rp", [Message(body=i) for i in range(4)],
                            {"x-max-length": 2, "x-overflow": "reject-publish"})
        self.assertEqual(out[:2], [("accepted", None)] * 2)
        self.assertEqual(out[2:], [("rejected", "amqp:resource-limit-exceeded")] * 2)
        self.assertEqual([m.body for m in receive_all(receiver(self.c, "/queues/rp"))], [0, 1])

    def test_drop_head_keeps_the_newest(self):
        s = sender(self.c, "/queues/dh", options=Props({"x-max-length": 3}))  # drop-head is the default
        for i in range(6):
            s.send(Message(body=i))
        self.assertEqual([m.body for m in receive_all(receiver(self.c, "/queues/dh"))], [3, 4, 5])

    def test_dropped_heads_are_dead_lettered(self):
        dlq = receiver(self.c, "/queues/dh-dlq", credit=10)
        s = sender(self.c, "/queues/dh2", options=Props({"x-max-length": 1, "x-overflow": "drop-head",
                                                         "x-dead-letter-exchange": "",
                                                         "x-dead-letter-routing-key": "dh-dlq"}))
        for i in range(3):
            s.send(Message(body=i))
        self.assertEqual(sorted(m.body for m in receive_all(dlq)), [0, 1])

    def test_max_length_bytes(self):
        out = send_outcomes(self.b, "/queues/mlb", [Message(body=b"x" * 1000) for _ in range(5)],
                            {"x-max-length-bytes": 2500, "x-overflow": "reject-publish"})
        self.assertEqual([o for o, _ in out], ["accepted"] * 2 + ["rejected"] * 3)

    def test_queue_ttl_expires_into_the_dead_letter_queue(self):
        dlq = receiver(self.c, "/queues/ttl-dlq")
        t0 = time.time()
        s = sender(self.c, "/queues/ttl-src", options=Props({"x-message-ttl": 200, "x-dead-letter-exchange": "",
                                                            "x-dead-letter-routing-key": "ttl-dlq"}))
        s.send(Message(body="stale"))
        m = dlq.receive(timeout=5)
        dlq.accept()
        self.assertEqual(m.body, "stale")
        self.assertGreaterEqual(time.time() - t0, 0.18)
        self.assertEqual(receive_all(receiver(self.c, "/queues/ttl-src")), [])

    def test_per_message_ttl_expires_too(self):
        dlq = receiver(self.c, "/queues/mttl-dlq")
        s = sender(self.c, "/queues/mttl-src", options=Props({"x-dead-letter-exchange": "amq.direct",
                                                             "x-dead-letter-routing-key": "mttl"}))
        sub = receiver(self.c, "/exchanges/amq.direct/mttl")
        s.send(Message(body="short", ttl=0.1))
        s.send(Message(body="long"))
        self.assertEqual(sub.receive(timeout=5).body, "short")
        sub.accept()
        self.assertEqual([m.body for m in receive_all(receiver(self.c, "/queues/mttl-src"))], ["long"])
        self.assertEqual(receive_all(dlq), [])

    def test_bad_queue_argument_refuses_the_link(self):
        with self.assertRaises(Exception) as e:
            sender(self.c, "/queues/bad-arg", options=Props({"x-max-length": "lots"}))
        self.assertIn("amqp:invalid-field", str(e.exception))
        with self.assertRaises(Exception) as e:
            sender(self.c, "/queues/bad-arg2", options=Props({"x-overflow": "explode"}))
        self.assertIn("x-overflow", str(e.exception))


class MemoryAlarm(unittest.TestCase):
    def test_publishers_block_over_the_memory_limit_and_resume_under_it(self):
        with Broker(config=config_file(self, "routing = { memory_limit = 1000000; };\n")) as b:
            c = connect(b, timeout=2)
            s = sender(c, "/queues/hog")
            body = b"m" * 200000
            sent = 0
            with self.assertRaises(Exception) as e:
                for _ in range(200):  # 40 MB against a 1 MB limit: credit must stop
                    s.send(Message(body=body))
                    sent += 1
            self.assertIn("Timeout", type(e.exception).__name__)
            self.assertGreaterEqual(sent, 4)
            self.assertLess(sent, 64)  # what credit was out when the alarm came
            b.wait_log("memory alarm: queues hold")
            other = connect(b)
            got = receive_all(receiver(other, "/queues/hog", credit=50), idle=1)
            self.assertGreaterEqual(len(got), sent)
            b.wait_log("memory alarm cleared")
            s2 = sender(other, "/queues/hog")
            s2.send(Message(body=body))  # credit again
            other.close()


if __name__ == "__main__":
    main()
