#!/usr/bin/python3
"""13: idle timeouts both ways — the broker closes a peer that went silent,
keeps a quiet but live one open, and never floods a peer that asks for a
tiny timeout with empty frames."""
import time
import unittest

from harness import config_file, CLOSE, Broker, Message, Raw, connect, main, receiver, sender


class Heartbeats(unittest.TestCase):
    def config(self, text):
        return config_file(self, text)

    def test_silent_peer_is_closed_after_the_broker_idle_timeout(self):
        with Broker(config=self.config("amqp = { idle_timeout = 600; };")) as b:
            r = Raw(b.port)
            opened = r.open()
            self.assertLessEqual(int(opened[3][4]), 600)  # proton advertises half: peers send in time
            t0 = time.time()
            frame = r.expect(CLOSE, timeout=5)  # we never send a thing
            self.assertEqual(str(frame[3][0].value[0]), "amqp:resource-limit-exceeded")
            self.assertTrue(r.closed(3))
            self.assertLess(time.time() - t0, 4)

    def test_quiet_client_with_heartbeats_stays_connected(self):
        with Broker(config=self.config("amqp = { idle_timeout = 1000; };")) as b:
            c = connect(b, heartbeat=1)  # asks the broker for frames at least every second
            s = sender(c, "/queues/quiet")
            try:  # idle well past both timeouts, the client's event loop running
                c.wait(lambda: False, timeout=3)
            except Exception as e:
                self.assertIn("Timeout", type(e).__name__, f"the connection dropped while idle: {e}")
            s.send(Message(body="still here"))
            self.assertEqual(receiver(c, "/queues/quiet").receive(timeout=5).body, "still here")
            c.close()

    def test_tiny_idle_timeout_gets_heartbeats_but_no_flood(self):
        with Broker() as b:
            r = Raw(b.port)
            r.open(idle_ms=1)  # "send me something every millisecond"
            empty, t0 = 0, time.time()
            while time.time() - t0 < 2:
                f = r.read(0.2)
                if isinstance(f, tuple) and f[2] is None:
                    empty += 1
            self.assertGreater(empty, 3, "no heartbeats at all")
            self.assertLess(empty, 40, f"{empty} empty frames in 2 s: a flood")
            r.close()


if __name__ == "__main__":
    main()
