#!/usr/bin/python3
"""15: definitions survive restarts and crashes — durable exchanges, queues
and bindings (and users changed at run time) come back, transient ones do
not; the data directory is locked; a damaged definitions file is set aside,
a damaged users file stops the broker with a clear error."""
import json
import os
import shutil
import signal
import tempfile
import unittest

from admin_api import Api
from harness import Broker, Message, connect, main, receive_all, receiver, run, sender


def declare_all(api):
    """Durable and transient things of every kind, over the admin API."""
    for path, body in [
        ("/api/exchanges/%2F/orders", {"type": "topic", "durable": True}),
        ("/api/exchanges/%2F/events", {"type": "fanout", "durable": True}),
        ("/api/exchanges/%2F/scratch", {"type": "direct", "durable": False}),
        ("/api/queues/%2F/q.orders", {"durable": True, "arguments": {"x-max-length": 1000}}),
        ("/api/queues/%2F/q.temp", {"durable": False}),
        ("/api/users/alice", {"password": "s3cret", "tags": "administrator"}),
    ]:
        status = api.put(path, body)[0]
        assert status in (201, 204), (path, status)
    for path, body in [
        ("/api/bindings/%2F/e/orders/q/q.orders", {"routing_key": "order.*"}),
        ("/api/bindings/%2F/e/events/e/orders", {"routing_key": ""}),   # exchange to exchange
        ("/api/bindings/%2F/e/amq.topic/q/q.orders", {"routing_key": "legacy.#"}),
        ("/api/bindings/%2F/e/orders/q/q.temp", {"routing_key": "order.*"}),  # to a transient queue
    ]:
        status = api.post(path, body)[0]
        assert status == 201, (path, status)


def names(api, kind):
    return sorted(x["name"] for x in api.get(f"/api/{kind}")[1] if not x["name"].startswith("amq.") and x["name"])


def bindings(api):
    return sorted((b["source"], b["destination_type"], b["destination"], b["routing_key"])
                  for b in api.get("/api/bindings")[1] if b["source"])


class DefinitionsSurvive(unittest.TestCase):
    def setUp(self):
        self.data = tempfile.mkdtemp(prefix="plexus-defs-")
        self.addCleanup(shutil.rmtree, self.data, True)

    def check_restored(self, b):
        api = Api(b.admin_port)
        self.assertEqual(names(api, "exchanges"), ["events", "orders"])
        self.assertEqual(names(api, "queues"), ["q.orders"])
        self.assertEqual(api.get("/api/queues/%2F/q.orders")[1]["arguments"], {"x-max-length": 1000})
        self.assertEqual(api.get("/api/exchanges/%2F/orders")[1]["type"], "topic")
        self.assertEqual(bindings(api), [("amq.topic", "queue", "q.orders", "legacy.#"),
                                         ("events", "exchange", "orders", ""),
                                         ("orders", "queue", "q.orders", "order.*")])
        self.assertEqual(Api(b.admin_port, "alice", "s3cret").get("/api/whoami")[0], 200)
        # the bindings route: through events (fanout) to orders (topic) to q.orders
        c = connect(b)
        s = sender(c, "/exchanges/events")
        s.send(Message(subject="order.new", body="via events", durable=True))
        with self.assertRaisesRegex(Exception, "RELEASED"):  # unroutable: no binding matches
            s.send(Message(subject="nothing.here", body="dropped", durable=True))
        sender(c, "/exchanges/amq.topic").send(Message(subject="legacy.x", body="via amq.topic", durable=True))
        got = sorted(m.body for m in receive_all(receiver(c, "/queues/q.orders", credit=10), idle=0.5))
        c.close()
        self.assertEqual(got, ["via amq.topic", "via events"])

    def test_a_clean_restart_keeps_durable_definitions_only(self):
        with Broker(data_dir=self.data) as b:
            declare_all(Api(b.admin_port))
        with Broker(data_dir=self.data) as b:
            self.check_restored(b)
            self.assertIn("restored from", b.log())

    def test_kill_9_right_after_the_declare_oks_keeps_everything(self):
        b = Broker(data_dir=self.data).start()
        try:
            declare_all(Api(b.admin_port))
            b.proc.send_signal(signal.SIGKILL)  # at once: a declare-ok means it is on disk
            b.proc.wait(10)
        finally:
            b.logf.close()
            b.tmp.cleanup()
        with Broker(data_dir=self.data) as b:
            self.check_restored(b)

    def test_deletions_survive_too(self):
        with Broker(data_dir=self.data) as b:
            api = Api(b.admin_port)
            declare_all(api)
            self.assertEqual(api.delete("/api/exchanges/%2F/events")[0], 204)
            self.assertEqual(api.delete("/api/bindings/%2F/e/amq.topic/q/q.orders/legacy.%23")[0], 204)
            self.assertEqual(api.delete("/api/users/alice")[0], 204)
        with Broker(data_dir=self.data) as b:
            api = Api(b.admin_port)
            self.assertEqual(names(api, "exchanges"), ["orders"])
            self.assertEqual(bindings(api), [("orders", "queue", "q.orders", "order.*")])
            self.assertEqual(Api(b.admin_port, "alice", "s3cret").get("/api/whoami")[0], 401)
            self.assertEqual(api.get("/api/whoami")[0], 200)  # guest, from the configuration, is back

    def test_the_definitions_file_is_rabbitmq_shaped(self):
        with Broker(data_dir=self.data) as b:
            declare_all(Api(b.admin_port))
        with open(os.path.join(self.data, "definitions.json")) as f:
            doc = json.load(f)
        self.assertEqual(sorted(x["name"] for x in doc["exchanges"]), ["events", "orders"])
        self.assertEqual([x["name"] for x in doc["queues"]], ["q.orders"])
        self.assertTrue(all(x["vhost"] == "/" for x in doc["queues"] + doc["exchanges"] + doc["bindings"]))
        with open(os.path.join(self.data, "users.json")) as f:
            kept = json.load(f)  # the users and their permissions, as a definitions document has them
        users = kept["users"]
        self.assertIn({"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},
                      kept["permissions"])
        alice = [u for u in users if u["name"] == "alice"][0]
        self.assertNotIn("s3cret", json.dumps(users))  # salted hashes only
        self.assertEqual(alice["hashing_algorithm"], "rabbit_password_hashing_sha256")


class DataDirectory(unittest.TestCase):
    def setUp(self):
        self.data = tempfile.mkdtemp(prefix="plexus-dir-")
        self.addCleanup(shutil.rmtree, self.data, True)

    def test_two_brokers_cannot_share_a_data_directory(self):
        with Broker(data_dir=self.data) as b:
            code, out, err = run("--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--data-dir", self.data)
            self.assertEqual(code, 1)
            self.assertIn(f"data directory {self.data} is in use by another broker (pid {b.proc.pid})", err)
            self.assertEqual(len(err.strip().splitlines()), 1, err)
        # the lock goes with the process, even after kill -9
        b = Broker(data_dir=self.data).start()
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait(10)
        b.logf.close()
        b.tmp.cleanup()
        with Broker(data_dir=self.data) as b:
            self.assertIn("started", b.log())

    def test_a_damaged_definitions_file_is_set_aside_and_queues_still_come_back(self):
        with Broker(data_dir=self.data) as b:
            declare_all(Api(b.admin_port))
            c = connect(b)
            sender(c, "/queues/q.orders").send(Message(body="kept", durable=True))
            c.close()
        path = os.path.join(self.data, "definitions.json")
        with open(path, "w") as f:
            f.write('{"exchanges": [ garbage')
        with Broker(data_dir=self.data) as b:
            self.assertIn("exchanges and bindings not restored", b.log())
            self.assertTrue(os.path.exists(path + ".bad"))
            api = Api(b.admin_port)
            self.assertEqual(names(api, "queues"), ["q.orders"])  # from its own log
            c = connect(b)
            self.assertEqual([m.body for m in receive_all(receiver(c, "/queues/q.orders"), idle=0.5)], ["kept"])
            c.close()

    def test_a_damaged_users_file_stops_the_broker_with_a_clear_error(self):
        with open(os.path.join(self.data, "users.json"), "w") as f:
            f.write('[{"name": "x", "password_hash": "nope", "tags": ""}]')
        code, out, err = run("--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--data-dir", self.data)
        self.assertEqual(code, 1)
        self.assertIn("users.json", err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)


if __name__ == "__main__":
    main()
