#!/usr/bin/python3
"""44: permissions and the failed-login slowdown over AMQP 0-9-1 (pika),
against the real bin/plexus: RabbitMQ's rules per method (configure to
declare and delete, write to publish and to be bound to, read to consume,
get, purge and be bound from), each refusal a 403 channel error that names
the permission and the resource while the connection stays up; no
permissions on "/" means Connection.Open is refused; wrong passwords are
answered ever later."""
import time
import unittest

from admin_api import Api
from harness import Broker, main, missing

try:
    import pika
    from pika.exceptions import (ChannelClosedByBroker, ConnectionClosedByBroker, ProbableAccessDeniedError,
                                 ProbableAuthenticationError)
except ImportError:  # counted as a skip here, a failure in CI
    pika = None


class Permissions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = Broker().start()
        api = Api(cls.b.admin_port)
        for user in ("ro", "wo", "none"):
            status, body, _ = api.put(f"/api/users/{user}", {"password": user, "tags": ""})
            assert status == 201, (status, body)
        # ro: read anything; wo: write to the "in" exchange and configure
        # queues called "w.*"; none: nothing on "/".
        for user, perms in (("ro", {"configure": "", "write": "", "read": ".*"}),
                            ("wo", {"configure": "^w\\.", "write": "^in$", "read": ""})):
            status, body, _ = api.put(f"/api/permissions/%2F/{user}", perms)
            assert status == 201, (status, body)
        admin = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", cls.b.port))
        ch = admin.channel()
        ch.exchange_declare("in", "direct")
        ch.queue_declare("q44")
        ch.queue_bind("q44", "in", "k")
        ch.basic_publish("", "q44", b"for the reader")
        admin.close()

    @classmethod
    def tearDownClass(cls):
        code = cls.b.stop()
        log = cls.b.log()
        cls.b.tmp.cleanup()
        assert code == 0, f"plexus exited {code}:\n{log[-3000:]}"

    def setUp(self):
        if pika is None:
            missing("python3-pika")

    def connect(self, user):
        c = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", self.b.port, credentials=pika.PlainCredentials(user, user)))
        self.addCleanup(lambda: c.is_open and c.close())
        return c

    def refused(self, c, fn):
        ch = c.channel()
        with self.assertRaises(ChannelClosedByBroker) as e:
            fn(ch)
            ch.queue_declare("q44", passive=True)  # a round trip: a publish refusal comes after it
        self.assertTrue(c.is_open, "a channel error leaves the connection up")
        self.assertEqual(e.exception.reply_code, 403)
        return e.exception.reply_text

    def test_read_only_user_consumes_but_may_not_publish_or_declare(self):
        c = self.connect("ro")
        ch = c.channel()
        m, _, body = ch.basic_get("q44", auto_ack=True)
        self.assertEqual(body, b"for the reader")
        ch.basic_consume("q44", lambda *a: None)  # read on the queue: allowed
        text = self.refused(c, lambda ch: ch.basic_publish("in", "k", b"x"))
        self.assertIn("write access to exchange 'in' in vhost '/' refused for user 'ro'", text)
        text = self.refused(c, lambda ch: ch.basic_publish("", "q44", b"x"))
        self.assertIn("exchange 'amq.default'", text)
        text = self.refused(c, lambda ch: ch.queue_declare("mine"))
        self.assertIn("configure access to queue 'mine' in vhost '/' refused for user 'ro'", text)
        text = self.refused(c, lambda ch: ch.exchange_declare("mine", "fanout"))
        self.assertIn("configure access to exchange 'mine'", text)
        text = self.refused(c, lambda ch: ch.queue_delete("q44"))
        self.assertIn("configure access to queue 'q44'", text)
        text = self.refused(c, lambda ch: ch.queue_bind("q44", "in", "other"))
        self.assertIn("write access to queue 'q44'", text)
        # A passive declare needs no permission, as in RabbitMQ.
        self.assertEqual(c.channel().queue_declare("q44", passive=True).method.queue, "q44")

    def test_write_only_user_publishes_and_declares_what_it_may(self):
        c = self.connect("wo")
        ch = c.channel()
        ch.confirm_delivery()
        ch.basic_publish("in", "k", b"from wo")  # write on "in": allowed, confirmed
        ch.queue_declare("w.mine")  # configure on ^w\.
        text = self.refused(c, lambda ch: ch.basic_get("q44"))
        self.assertIn("read access to queue 'q44' in vhost '/' refused for user 'wo'", text)
        text = self.refused(c, lambda ch: ch.basic_consume("q44", lambda *a: None))
        self.assertIn("read access to queue 'q44'", text)
        text = self.refused(c, lambda ch: ch.queue_purge("q44"))
        self.assertIn("read access to queue 'q44'", text)
        text = self.refused(c, lambda ch: ch.queue_declare("other"))
        self.assertIn("configure access to queue 'other'", text)
        # A binding needs write on the queue (wo writes to "in" only) and read
        # on the exchange (wo reads nothing).
        text = self.refused(c, lambda ch: ch.queue_bind("w.mine", "in", "k"))
        self.assertIn("write access to queue 'w.mine' in vhost '/' refused for user 'wo'", text)

    def test_no_permissions_on_the_vhost_refuses_the_connection(self):
        with self.assertRaises(ProbableAccessDeniedError) as e:  # pika's name for a 530 at Open
            pika.BlockingConnection(pika.ConnectionParameters(
                "127.0.0.1", self.b.port, credentials=pika.PlainCredentials("none", "none")))
        self.assertIn("(530) \"NOT_ALLOWED - access to vhost '/' refused for user 'none'\"", str(e.exception))


class LoginSlowdown(unittest.TestCase):
    def test_wrong_passwords_are_answered_ever_later(self):
        if pika is None:
            missing("python3-pika")
        with Broker() as b:
            def attempt(password):
                t0 = time.monotonic()
                try:
                    pika.BlockingConnection(pika.ConnectionParameters(
                        "127.0.0.1", b.port, credentials=pika.PlainCredentials("guest", password),
                        connection_attempts=1, socket_timeout=30)).close()
                    ok = True
                except (ProbableAuthenticationError, ConnectionClosedByBroker):
                    ok = False
                return ok, time.monotonic() - t0

            right = [attempt("guest") for _ in range(3)]
            self.assertTrue(all(ok for ok, _ in right))
            wrong = [attempt("nope") for _ in range(4)]
            self.assertFalse(any(ok for ok, _ in wrong))
            waits = [t for _, t in wrong]
            # Each refusal waits longer than the one before (the delay doubles
            # per address), and the later ones far longer than a right login.
            self.assertGreater(waits[-1], waits[0])
            self.assertGreater(waits[-1], 0.15)
            self.assertGreater(waits[-1], 3 * max(t for _, t in right))
            b.wait_log("AMQP 0-9-1 authentication failed for guest")


if __name__ == "__main__":
    main()
