#!/usr/bin/python3
"""52: AMQP 0-9-1 with AnyEvent::RabbitMQ, the Perl client (Debian's
libanyevent-rabbitmq-perl): tests/clients/perl/amqp091check.pl runs one
scenario per case against the real broker and fails with the reason when
the broker does not behave as RabbitMQ does — exchanges of each kind and
topic routing with confirms, prefetch with manual acks and a reject that
requeues (redelivered), RPC over an exclusive server-named queue and over
direct reply-to, a 404 channel error the connection survives, and a
mandatory publish with no route returned before its confirm.

PLEXUS_TEST_BROKER=amqp://guest:guest@127.0.0.1:PORT runs them against that
broker instead (see harness.py).
"""
import os
import subprocess

from harness import Broker091Test, ROOT, main, missing, watchdog

SCRIPT = os.path.join(ROOT, "tests", "clients", "perl", "amqp091check.pl")


class Perl(Broker091Test):
    def setUp(self):
        if subprocess.run(["perl", "-MAnyEvent::RabbitMQ", "-e", "1"], capture_output=True).returncode != 0:
            missing("libanyevent-rabbitmq-perl")

    def scenario(self, name):
        p = subprocess.run(["perl", "-w", SCRIPT, "--port", str(self.b.port), "--user", getattr(self.b, "user", "guest"),
                            "--pass", getattr(self.b, "password", "guest"), "--scenario", name],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(), f"ok {name}")

    def test_declare_route_confirm(self):
        self.scenario("declare")

    def test_consume_prefetch_ack_reject(self):
        self.scenario("consume")

    def test_rpc(self):
        self.scenario("rpc")

    def test_channel_error_and_mandatory_return(self):
        self.scenario("errors")

    def test_unknown_scenario_is_refused(self):
        """The driver itself can fail: a scenario it does not know."""
        p = subprocess.run(["perl", SCRIPT, "--scenario", "nope"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown --scenario", p.stderr)


if __name__ == "__main__":
    watchdog(120)  # a client waiting forever for a broker's answer fails the file
    main()
