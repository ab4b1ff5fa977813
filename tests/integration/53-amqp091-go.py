#!/usr/bin/python3
"""53: AMQP 0-9-1 with amqp091-go, the Go client (Debian's
golang-github-rabbitmq-amqp091-go-dev, built offline in GOPATH mode into
build/clients): tests/clients/go/amqp091check runs one scenario per case
against the real broker and fails with the reason when the broker does not
behave as RabbitMQ does — declare and route, publisher confirms (acks in
order, a nack from a full reject-publish queue), prefetch with manual acks,
RPC over an exclusive server-named queue and over direct reply-to, channel
errors (404, 405, 406) the connection survives, NotifyReturn for mandatory
publishes.

PLEXUS_TEST_BROKER=amqp://guest:guest@127.0.0.1:PORT runs them against that
broker instead (see harness.py).
"""
import subprocess
import unittest

from harness import broker091, go_build, main, stop091, url091, watchdog


class Go(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.prog = go_build("tests/clients/go/amqp091check", "amqp091check")
        cls.b = broker091()

    @classmethod
    def tearDownClass(cls):
        stop091(cls.b)

    def scenario(self, name):
        p = subprocess.run([self.prog, "-url", url091(self.b, vhost=False) + "/", "-scenario", name],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(), f"ok {name}")

    def test_declare_and_route(self):
        self.scenario("declare")

    def test_publisher_confirms(self):
        self.scenario("confirms")

    def test_prefetch_and_acks(self):
        self.scenario("prefetch")

    def test_rpc(self):
        self.scenario("rpc")

    def test_channel_error_recovery(self):
        self.scenario("recovery")

    def test_mandatory_returns(self):
        self.scenario("returns")

    def test_unknown_scenario_is_refused(self):
        """The driver itself can fail: a scenario it does not know."""
        p = subprocess.run([self.prog, "-scenario", "nope"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown -scenario", p.stderr)


if __name__ == "__main__":
    watchdog(180)  # a client waiting forever for a broker's answer fails the file
    main()
