#!/usr/bin/python3
"""32: GET /metrics is Prometheus's text format, parsed strictly here
(names, HELP and TYPE before samples, label syntax and escapes, values,
no duplicate series, counters named _total), and its figures follow what
happens: queues, messages, consumers, connections, restarts."""
import math
import re
import time
import unittest

from admin_api import Api
from harness import BrokerTest, Message, main, receiver, sender

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({NAME})(\{{(?:{LABEL}(?:,{LABEL})*)?\}})? (\S+)$")


def parse(text):
    """{(name, labels-tuple): value}, failing on anything not in the format."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    types, helps, samples = {}, set(), {}
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert re.fullmatch(NAME, name), f"line {n}: bad name {name!r}"
            assert name not in helps, f"line {n}: second HELP for {name}"
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            assert len(parts) == 4 and parts[3] in ("counter", "gauge", "histogram", "summary", "untyped"), line
            assert parts[2] not in types, f"line {n}: second TYPE for {parts[2]}"
            assert not any(k[0] == parts[2] for k in samples), f"line {n}: TYPE after samples of {parts[2]}"
            types[parts[2]] = parts[3]
            continue
        assert not line.startswith("#"), f"line {n}: unknown comment {line!r}"
        m = SAMPLE.match(line)
        assert m, f"line {n}: not a sample: {line!r}"
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        assert name in types, f"line {n}: {name} has no TYPE before it"
        v = float(value)
        assert not math.isnan(v), f"line {n}: NaN"
        if types[name] == "counter":
            assert name.endswith("_total"), f"{name}: a counter's name ends in _total"
            assert v >= 0
        key = (name, tuple(re.findall(LABEL, labels)))
        assert key not in samples, f"line {n}: duplicate series {key}"
        samples[key] = v
    assert helps == set(types), "every family has HELP and TYPE"
    return samples


def value(samples, name, **labels):
    want = tuple(f'{k}="{v}"' for k, v in labels.items())
    for (n, ls), v in samples.items():
        if n == name and all(w in ls for w in want):
            return v
    raise AssertionError(f"no {name}{labels}")


class Metrics(BrokerTest):
    def setUp(self):
        super().setUp()
        self.api = Api(self.b.admin_port)

    def scrape(self):
        status, text, headers = self.api.get("/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        return parse(text)

    def test_metrics_parse_strictly_and_follow_the_broker(self):
        before = self.scrape()
        self.assertEqual(value(before, "plexus_build_info"), 1)
        self.assertGreater(value(before, "process_resident_memory_bytes"), 0)
        self.assertGreater(value(before, "plexus_processes"), 5)
        self.assertEqual(value(before, "plexus_process_restarts_total", supervisor="plexus/routing/queues"), 0)
        s = sender(self.c, '/queues/metric"q\\uoted')  # label escaping
        for i in range(5):
            s.send(Message(body=f"m{i}"))
        got = self.api.post("/api/queues/%2F/metric%22q%5Cuoted/get", {"count": 2, "ackmode": "ack_requeue_false"})
        self.assertEqual(len(got[1]), 2, got)
        q = dict(queue='metric\\"q\\\\uoted')
        # Counters follow the queue's turns, as RabbitMQ's statistics do: the
        # settlement of the get reaches the queue just after its answer.
        deadline = time.time() + 5
        after = self.scrape()
        while value(after, "plexus_queue_messages_acknowledged_total", **q) < 2 and time.time() < deadline:
            time.sleep(0.05)
            after = self.scrape()
        self.assertEqual(value(after, "plexus_queue_messages_published_total", **q), 5)
        self.assertEqual(value(after, "plexus_queue_messages_delivered_total", **q), 2)
        self.assertEqual(value(after, "plexus_queue_messages_acknowledged_total", **q), 2)
        self.assertEqual(value(after, "plexus_queue_messages_ready", **q), 3)
        self.assertEqual(value(after, "plexus_queue_consumers", **q), 0)
        # A persistent message in a durable queue: accepted after its sync.
        sender(self.c, "/queues/metrics.durable").send(Message(body="p" * 1000, durable=True))
        stored = self.scrape()
        self.assertGreater(value(stored, "plexus_store_syncs_total"), value(after, "plexus_store_syncs_total"))
        self.assertGreaterEqual(value(stored, "plexus_store_written_bytes_total"),
                                value(after, "plexus_store_written_bytes_total") + 1000)
        self.assertEqual(value(stored, "plexus_disk_alarm"), 0)
        # Work on a quiet node is followed by a spin (node.busy_wait_us).
        self.assertGreater(value(stored, "plexus_scheduler_spin_seconds_total"),
                           value(before, "plexus_scheduler_spin_seconds_total"))
        self.assertLess(value(stored, "plexus_scheduler_spin_seconds_total"), 60)
        r = receiver(self.c, '/queues/metric"q\\uoted', credit=1)
        r.receive(timeout=5)
        self.assertEqual(value(self.scrape(), "plexus_queue_consumers", **q), 1)
        self.assertGreaterEqual(value(after, "plexus_connections"), 1)
        self.assertGreaterEqual(value(after, "plexus_messages_published_total"),
                                value(before, "plexus_messages_published_total") + 5)
        # Deleting the queue does not take its messages out of the totals.
        r.close()
        self.assertEqual(self.api.delete("/api/queues/%2F/metric%22q%5Cuoted")[0], 204)
        gone = self.scrape()
        self.assertGreaterEqual(value(gone, "plexus_messages_published_total"),
                                value(after, "plexus_messages_published_total"))
        self.assertFalse(any(k[0] == "plexus_queue_messages_ready" and any("uoted" in x for x in k[1])
                             for k in gone))

    def test_the_parser_here_refuses_what_prometheus_would(self):
        for bad in ("x 1", "# TYPE x gauge\nx{a=b} 1\n", "# TYPE x counter\n# HELP x h\nx 1\n",
                    "# HELP x h\n# TYPE x gauge\nx 1\nx 1\n", "# HELP x h\n# TYPE x gauge\nx one\n"):
            with self.assertRaises((AssertionError, ValueError)):
                parse(bad)

    def test_metrics_need_a_login(self):
        self.assertEqual(self.api.get("/metrics", auth=False)[0], 401)


if __name__ == "__main__":
    main()
