#!/usr/bin/python3
"""55: examples/, the order system taken apart, end to end: the Go pricing
service and the Python worker started as daemons, then the Perl front
daemon placing orders; every order is priced once, processed (or rejected)
once and reported once, with the right totals, JSON and UTF-8 intact across
the three languages; the daemons stop cleanly on SIGTERM. And the front's
bad path: with no worker's queue bound, its mandatory orders come back and
it fails saying so.

PLEXUS_TEST_BROKER=amqp://guest:guest@127.0.0.1:PORT runs it against that
broker instead (see harness.py).
"""
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest
from collections import Counter

from harness import ROOT, broker091, go_build, main, missing, stop091, track, url091, watchdog

try:
    import pika
except ImportError:  # counted as a skip here, a failure in CI
    pika = None

EX = os.path.join(ROOT, "examples")
PRICES = {"tea": 450, "coffee": 390, "cake": 525, "bagel": 275}  # the pricing service's list, in cents


def orders(n):
    """n orders; every seventh has a SKU nobody sells."""
    out = []
    for i in range(1, n + 1):
        items = [{"sku": sku, "qty": 1 + (i + k) % 3} for k, sku in enumerate(sorted(PRICES)) if (i >> k) & 1]
        if not items:
            items = [{"sku": "tea", "qty": 1}]
        if i % 7 == 0:
            items.append({"sku": "caviar", "qty": 1})
        out.append({"id": i, "customer": f"cüstomer-{i}", "items": items})
    return out


def expected(order):
    if any(it["sku"] not in PRICES for it in order["items"]):
        return None
    return sum(PRICES[it["sku"]] * it["qty"] for it in order["items"])


class Daemon:
    """A daemon with its output in a file; waits for its ready line."""

    def __init__(self, test, args, env, ready):
        self.out = tempfile.NamedTemporaryFile("w+", prefix="plexus-example-", suffix=".out", delete=False)
        test.addCleanup(os.unlink, self.out.name)
        self.p = track(subprocess.Popen(args, env=env, stdout=self.out, stderr=subprocess.STDOUT))
        test.addCleanup(lambda: self.p.poll() is None and (self.p.kill(), self.p.wait()))
        deadline = time.time() + 15
        while ready not in self.text():
            if self.p.poll() is not None or time.time() > deadline:
                raise AssertionError(f"{args[0]} not ready (exit {self.p.poll()}):\n{self.text()}")
            time.sleep(0.05)

    def text(self):
        with open(self.out.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        return self.p.wait(15)


class Examples(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pricing_bin = go_build("examples/pricing", "pricing")
        cls.b = broker091()

    @classmethod
    def tearDownClass(cls):
        stop091(cls.b)

    def setUp(self):
        if pika is None:
            missing("python3-pika")
        if subprocess.run(["perl", "-MAnyEvent::RabbitMQ", "-e", "1"], capture_output=True).returncode != 0:
            missing("libanyevent-rabbitmq-perl")
        self.env = dict(os.environ, AMQP_URL=url091(self.b, vhost=False) + "/", FRONT_TIMEOUT="20")
        # A shared broker (PLEXUS_TEST_BROKER) may hold an earlier run's queues.
        c = pika.BlockingConnection(pika.URLParameters(url091(self.b)))
        for q in ("work.orders", "pricing"):
            c.channel().queue_delete(q)
        c.close()

    def front(self, lines):
        f = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8")
        f.write("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in lines))
        f.close()
        self.addCleanup(os.unlink, f.name)
        return subprocess.run(["perl", os.path.join(EX, "front", "front.pl"), f.name], env=self.env,
                              capture_output=True, timeout=60)

    def test_every_order_priced_processed_and_reported_once(self):
        pricing = Daemon(self, [self.pricing_bin], self.env, "pricing: ready")
        worker = Daemon(self, ["/usr/bin/python3", os.path.join(EX, "worker", "worker.py")],
                        dict(self.env, AMQP_URL=url091(self.b)), "worker: ready")
        placed = orders(30)
        p = self.front(placed)
        out = p.stdout.decode("utf-8")
        self.assertEqual(p.returncode, 0, out + p.stderr.decode(errors="replace"))
        self.assertIn("front: all 30 orders reported", out)

        reported = Counter()
        for o in placed:
            want = expected(o)
            if want is None:
                line = f'front: order {o["id"]} rejected: cannot price 1 x "caviar"'
            else:
                line = f'front: order {o["id"]} processed for {o["customer"]}: {want // 100}.{want % 100:02d} EUR'
            self.assertIn(line + "\n", out)
            reported[o["id"]] = len(re.findall(rf"^front: order {o['id']} (processed|rejected)", out, re.M))
        self.assertEqual(set(reported.values()), {1}, reported)
        self.assertEqual(len(re.findall(r"^front: order \d+ placed$", out, re.M)), 30)

        self.assertEqual(pricing.stop(), 0)
        self.assertEqual(worker.stop(), 0)
        priced = Counter(int(m) for m in re.findall(r"^pricing: order (\d+)", pricing.text(), re.M))
        done = Counter(int(m) for m in re.findall(r"^worker: order (\d+) (?:processed|rejected)$", worker.text(),
                                                   re.M))
        self.assertEqual(priced, Counter(range(1, 31)), pricing.text())
        self.assertEqual(done, Counter(range(1, 31)), worker.text())
        self.assertIn("pricing: stopping", pricing.text())
        self.assertIn("worker: stopped", worker.text())
        rejected = [o["id"] for o in placed if expected(o) is None]
        self.assertEqual(rejected, [7, 14, 21, 28])
        for i in rejected:
            self.assertIn(f"worker: order {i} rejected", worker.text())
        # Nothing left behind in the work queue.
        c = pika.BlockingConnection(pika.URLParameters(url091(self.b)))
        self.assertEqual(c.channel().queue_declare("work.orders", passive=True).method.message_count, 0)
        c.close()

    def test_front_fails_when_nobody_takes_orders(self):
        p = self.front([{"id": 1, "customer": "x", "items": [{"sku": "tea", "qty": 1}]}])
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn(b"order 1 unroutable: nobody takes orders", p.stderr)


if __name__ == "__main__":
    watchdog(180)  # a client waiting forever for a broker's answer fails the file
    main()
