#!/usr/bin/python3
"""31: definitions: export from one broker, import into a fresh one, and
the fresh one exports the identical document (queues with arguments,
exchanges of each type, bindings with and without arguments, users);
importing a bad document changes nothing; a RabbitMQ export imports."""
import unittest

from admin_api import Api
from harness import Broker, main

RABBITMQ_EXPORT = {
    "rabbit_version": "3.12.13", "rabbitmq_version": "3.12.13", "product_name": "RabbitMQ",
    "product_version": "3.12.13",
    "users": [{"name": "ops", "password_hash": "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR",
               "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"], "limits": {}}],
    "vhosts": [{"name": "/"}],
    "permissions": [{"user": "ops", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}],
    "topic_permissions": [], "parameters": [], "global_parameters": [], "policies": [],
    "queues": [{"name": "jobs", "vhost": "/", "durable": True, "auto_delete": False,
                "arguments": {"x-queue-type": "classic", "x-max-length": 100}}],
    "exchanges": [{"name": "events", "vhost": "/", "type": "topic", "durable": True, "auto_delete": False,
                   "internal": False, "arguments": {}}],
    "bindings": [{"source": "events", "vhost": "/", "destination": "jobs", "destination_type": "queue",
                  "routing_key": "job.#", "arguments": {}}],
}


def populate(api):
    calls = [
        api.put("/api/exchanges/%2F/x.topic", {"type": "topic"}),
        api.put("/api/exchanges/%2F/x.headers", {"type": "headers", "durable": False}),
        api.put("/api/exchanges/%2F/x.fanout", {"type": "fanout", "auto_delete": True}),
        api.put("/api/queues/%2F/q.a", {"arguments": {"x-max-length": 7, "x-overflow": "reject-publish"}}),
        api.put("/api/queues/%2F/q.b", {"durable": False, "arguments": {
            "x-message-ttl": 1000, "x-dead-letter-exchange": "x.topic", "x-dead-letter-routing-key": "dead"}}),
        api.put("/api/queues/%2F/q.c", {"auto_delete": True}),
        api.post("/api/bindings/%2F/e/x.topic/q/q.a", {"routing_key": "a.#"}),
        api.post("/api/bindings/%2F/e/x.headers/q/q.b", {"arguments": {"x-match": "all", "kind": "x", "n": 3}}),
        api.post("/api/bindings/%2F/e/amq.fanout/e/x.fanout", {}),
        api.post("/api/bindings/%2F/e/x.fanout/q/q.c", {}),
        api.put("/api/users/alice", {"password": "pw", "tags": "administrator,monitoring"}),
    ]
    for status, body, _ in calls:
        assert status in (201, 204), (status, body)


class Definitions(unittest.TestCase):
    def test_export_import_into_a_fresh_broker_exports_the_same_document(self):
        with Broker() as a:
            api_a = Api(a.admin_port)
            populate(api_a)
            status, exported, _ = api_a.get("/api/definitions")
            self.assertEqual(status, 200)
        self.assertEqual(len(exported["queues"]), 3)
        self.assertEqual(len(exported["exchanges"]), 3)
        self.assertEqual(len(exported["bindings"]), 4)
        self.assertEqual([u["name"] for u in exported["users"]], ["alice", "guest"])
        self.assertEqual(exported["vhosts"], [{"name": "/"}])
        with Broker() as b:
            api_b = Api(b.admin_port)
            self.assertNotEqual(api_b.get("/api/definitions")[1], exported)
            status, body, _ = api_b.post("/api/definitions", exported)
            self.assertEqual(status, 204, body)
            self.assertEqual(api_b.get("/api/definitions")[1], exported)
            # Imported users log in with their old passwords.
            self.assertEqual(Api(b.admin_port, "alice", "pw").get("/api/whoami")[0], 200)

    def test_a_bad_document_is_refused_whole_and_changes_nothing(self):
        with Broker() as b:
            api = Api(b.admin_port)
            before = api.get("/api/definitions")[1]
            doc = {"queues": [{"name": "fine"}, {"name": "broken", "arguments": {"x-max-length": "many"}}],
                   "exchanges": [{"name": "x.ok", "type": "direct"}]}
            status, body, _ = api.post("/api/definitions", doc)
            self.assertEqual(status, 400)
            self.assertIn("queues[1]", body["reason"])
            status, body, _ = api.post("/api/definitions", {"users": [{"name": "u", "tags": "x"}]})
            self.assertEqual(status, 400)
            self.assertIn("users[0]", body["reason"])
            self.assertEqual(api.call("POST", "/api/definitions", raw=b'{"queues": [')[0], 400)
            self.assertEqual(api.get("/api/definitions")[1], before)

    def test_a_rabbitmq_export_imports(self):
        with Broker() as b:
            api = Api(b.admin_port)
            status, body, _ = api.post("/api/definitions", RABBITMQ_EXPORT)
            self.assertEqual(status, 204, body)
            q = api.get("/api/queues/%2F/jobs")[1]
            self.assertEqual(q["arguments"], {"x-max-length": 100})
            self.assertEqual(api.get("/api/bindings/%2F/e/events/q/jobs")[1][0]["routing_key"], "job.#")
            self.assertIn("ops", [u["name"] for u in api.get("/api/users")[1]])


if __name__ == "__main__":
    main()
