#!/usr/bin/python3
"""30: the admin HTTP API, endpoint by endpoint, against the real broker:
queues, exchanges, bindings, publish and get, connections, users,
overview, nodes and the supervision tree; and every error status (400,
401, 403, 404, 405, 409, 413) with a JSON body, after which the broker
still serves."""
import base64
import socket
import time

from admin_api import Api, Q
from harness import BrokerTest, Message, connect, main, receiver, sender
from proton.utils import ConnectionClosed


class AdminApi(BrokerTest):
    def setUp(self):
        super().setUp()
        self.api = Api(self.b.admin_port)

    def assertError(self, result, status, error=None):
        code, body, _ = result
        self.assertEqual(code, status, body)
        self.assertIsInstance(body, dict, body)
        self.assertIn("reason", body)
        if error:
            self.assertEqual(body["error"], error)

    def queue(self, name):
        code, body, _ = self.api.get(f"/api/queues/%2F/{Q(name, safe='')}")
        self.assertEqual(code, 200, body)
        return body

    # ----------------------------------------------------------- queues

    def test_queue_declare_inspect_list_and_delete(self):
        code, _, _ = self.api.put("/api/queues/%2F/q.one", {"durable": True, "arguments": {
            "x-max-length": 10, "x-overflow": "reject-publish", "x-message-ttl": 60000,
            "x-dead-letter-exchange": "amq.fanout"}})
        self.assertEqual(code, 201)
        q = self.queue("q.one")
        self.assertEqual(q["name"], "q.one")
        self.assertEqual(q["vhost"], "/")
        self.assertTrue(q["durable"])
        self.assertFalse(q["auto_delete"])
        self.assertEqual(q["arguments"], {"x-max-length": 10, "x-overflow": "reject-publish",
                                          "x-message-ttl": 60000, "x-dead-letter-exchange": "amq.fanout"})
        for k in ("messages_ready", "messages_unacknowledged", "consumers", "memory", "message_stats"):
            self.assertIn(k, q)
        # Declaring again the same way is fine (204); otherwise it is not.
        self.assertEqual(self.api.put("/api/queues/%2F/q.one", {"durable": True, "arguments": {
            "x-max-length": 10, "x-overflow": "reject-publish", "x-message-ttl": 60000,
            "x-dead-letter-exchange": "amq.fanout"}})[0], 204)
        self.assertError(self.api.put("/api/queues/%2F/q.one", {"durable": False}), 400, "precondition_failed")
        names = [x["name"] for x in self.api.get("/api/queues")[1]]
        self.assertIn("q.one", names)
        self.assertEqual(names, sorted(names))
        self.assertEqual(self.api.get("/api/queues/%2F")[0], 200)
        self.assertEqual(self.api.delete("/api/queues/%2F/q.one")[0], 204)
        self.assertError(self.api.get("/api/queues/%2F/q.one"), 404, "not_found")
        self.assertError(self.api.delete("/api/queues/%2F/q.one"), 404, "not_found")

    def test_queue_names_with_slashes_and_spaces_are_one_segment(self):
        name = "a/b c%d"
        self.assertEqual(self.api.put(f"/api/queues/%2F/{Q(name, safe='')}", {})[0], 201)
        self.assertEqual(self.queue(name)["name"], name)
        self.assertEqual(self.api.delete(f"/api/queues/%2F/{Q(name, safe='')}")[0], 204)

    def test_queue_declared_over_amqp_then_published_then_got_over_http(self):
        s = sender(self.c, "/queues/from-amqp")
        for i in range(3):
            s.send(Message(body=f"m{i}".encode(), content_type="text/plain", properties={"n": i}))
        deadline = time.time() + 5
        while self.queue("from-amqp")["messages_ready"] != 3 and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.queue("from-amqp")["messages_ready"], 3)
        # Requeue: they stay, in order.
        code, got, _ = self.api.post("/api/queues/%2F/from-amqp/get", {"count": 2, "ackmode": "ack_requeue_true",
                                                                       "encoding": "auto"})
        self.assertEqual(code, 200, got)
        self.assertEqual([m["payload"] for m in got], ["m0", "m1"])
        self.assertEqual(got[0]["properties"]["content_type"], "text/plain")
        self.assertEqual(got[1]["properties"]["headers"], {"n": 1})
        self.assertEqual(got[0]["payload_encoding"], "string")
        self.assertEqual(got[0]["payload_bytes"], 2)
        self.assertEqual(self.queue("from-amqp")["messages_ready"], 3)
        # Ack: they go.
        code, got, _ = self.api.post("/api/queues/%2F/from-amqp/get", {"count": 5, "ackmode": "ack_requeue_false"})
        self.assertEqual([m["payload"] for m in got], ["m0", "m1", "m2"])
        self.assertTrue(got[0]["redelivered"])  # it was handed out once before
        self.assertEqual(self.queue("from-amqp")["messages_ready"], 0)
        self.assertEqual(self.api.post("/api/queues/%2F/from-amqp/get", {})[1], [])

    def test_publish_routes_through_an_exchange_to_an_amqp_consumer(self):
        self.assertEqual(self.api.put("/api/exchanges/%2F/x.topic", {"type": "topic"})[0], 201)
        self.assertEqual(self.api.put("/api/queues/%2F/q.topic", {})[0], 201)
        self.assertEqual(self.api.post("/api/bindings/%2F/e/x.topic/q/q.topic", {"routing_key": "a.*"})[0], 201)
        code, body, _ = self.api.post("/api/exchanges/%2F/x.topic/publish", {
            "routing_key": "a.b", "payload": base64.b64encode(b"\x00\xffbin").decode(), "payload_encoding": "base64",
            "properties": {"delivery_mode": 2, "headers": {"k": "v"}, "content_type": "application/octet-stream"}})
        self.assertEqual((code, body), (200, {"routed": True}))
        self.assertEqual(self.api.post("/api/exchanges/%2F/x.topic/publish",
                                       {"routing_key": "nowhere", "payload": "x"})[1], {"routed": False})
        m = receiver(self.c, "/queues/q.topic").receive(timeout=5)
        self.assertEqual(bytes(m.body), b"\x00\xffbin")
        self.assertEqual(m.properties, {"k": "v"})
        self.assertTrue(m.durable)
        self.assertEqual(m.subject, "a.b")

    def test_purge_drops_ready_messages(self):
        self.api.put("/api/queues/%2F/q.purge", {})
        for i in range(5):
            self.api.post("/api/exchanges/%2F/amq.default/publish", {"routing_key": "q.purge", "payload": str(i)})
        self.assertEqual(self.queue("q.purge")["messages_ready"], 5)
        self.assertEqual(self.api.delete("/api/queues/%2F/q.purge/contents")[0], 204)
        self.assertEqual(self.queue("q.purge")["messages_ready"], 0)
        self.assertError(self.api.delete("/api/queues/%2F/no-such/contents"), 404)

    def test_delete_if_empty_and_if_unused_refuse_with_409(self):
        self.api.put("/api/queues/%2F/q.busy", {})
        self.api.post("/api/exchanges/%2F/amq.default/publish", {"routing_key": "q.busy", "payload": "x"})
        self.assertError(self.api.delete("/api/queues/%2F/q.busy?if-empty=true"), 409, "not_empty")
        self.api.delete("/api/queues/%2F/q.busy/contents")
        r = receiver(self.c, "/queues/q.busy", credit=1)
        deadline = time.time() + 5
        while self.queue("q.busy")["consumers"] != 1 and time.time() < deadline:
            time.sleep(0.05)
        self.assertError(self.api.delete("/api/queues/%2F/q.busy?if-unused=true"), 409, "in_use")
        r.close()
        deadline = time.time() + 5
        while self.queue("q.busy")["consumers"] and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.api.delete("/api/queues/%2F/q.busy?if-unused=true&if-empty=true")[0], 204)

    # -------------------------------------------------- exchanges, bindings

    def test_exchanges_list_get_put_delete(self):
        names = [x["name"] for x in self.api.get("/api/exchanges")[1]]
        for n in ("", "amq.direct", "amq.fanout", "amq.topic", "amq.headers"):
            self.assertIn(n, names)
        self.assertEqual(self.api.put("/api/exchanges/%2F/x.e", {"type": "fanout", "durable": False})[0], 201)
        self.assertEqual(self.api.put("/api/exchanges/%2F/x.e", {"type": "fanout", "durable": False})[0], 204)
        x = self.api.get("/api/exchanges/%2F/x.e")[1]
        self.assertEqual((x["type"], x["durable"], x["auto_delete"], x["internal"]), ("fanout", False, False, False))
        self.assertError(self.api.put("/api/exchanges/%2F/x.e", {"type": "direct"}), 400, "precondition_failed")
        self.assertError(self.api.put("/api/exchanges/%2F/x.bad", {"type": "nonsense"}), 400, "bad_request")
        self.assertError(self.api.put("/api/exchanges/%2F/amq.mine", {"type": "direct"}), 403)
        self.assertError(self.api.delete("/api/exchanges/%2F/amq.direct"), 403)
        self.assertEqual(self.api.get("/api/exchanges/%2F/amq.default")[1]["name"], "")
        self.api.put("/api/queues/%2F/q.e", {})
        self.api.post("/api/bindings/%2F/e/x.e/q/q.e", {})
        self.assertError(self.api.delete("/api/exchanges/%2F/x.e?if-unused=true"), 409, "in_use")
        self.assertEqual(self.api.delete("/api/exchanges/%2F/x.e")[0], 204)
        self.assertError(self.api.get("/api/exchanges/%2F/x.e"), 404)

    def test_bindings_list_and_delete_by_properties_key(self):
        self.api.put("/api/exchanges/%2F/x.h", {"type": "headers"})
        self.api.put("/api/queues/%2F/q.b", {})
        self.assertEqual(self.api.post("/api/bindings/%2F/e/amq.direct/q/q.b", {"routing_key": "k1"})[0], 201)
        self.assertEqual(self.api.post("/api/bindings/%2F/e/x.h/q/q.b",
                                       {"arguments": {"x-match": "any", "color": "red"}})[0], 201)
        between = self.api.get("/api/bindings/%2F/e/amq.direct/q/q.b")[1]
        self.assertEqual([(b["routing_key"], b["properties_key"]) for b in between], [("k1", "k1")])
        hb = self.api.get("/api/bindings/%2F/e/x.h/q/q.b")[1][0]
        self.assertEqual(hb["arguments"], {"x-match": "any", "color": "red"})
        pk = hb["properties_key"]
        self.assertEqual(self.api.get(f"/api/bindings/%2F/e/x.h/q/q.b/{Q(pk, safe='')}")[1]["source"], "x.h")
        everything = self.api.get("/api/bindings")[1]
        self.assertIn({"source": "", "vhost": "/", "destination": "q.b", "destination_type": "queue",
                       "routing_key": "q.b", "arguments": {}, "properties_key": "q.b"}, everything)
        self.assertEqual(self.api.delete(f"/api/bindings/%2F/e/x.h/q/q.b/{Q(pk, safe='')}")[0], 204)
        self.assertError(self.api.delete(f"/api/bindings/%2F/e/x.h/q/q.b/{Q(pk, safe='')}"), 404)
        self.assertEqual(self.api.delete("/api/bindings/%2F/e/amq.direct/q/q.b/k1")[0], 204)
        self.assertEqual(self.api.get("/api/bindings/%2F/e/amq.direct/q/q.b")[1], [])
        self.assertError(self.api.post("/api/bindings/%2F/e/amq.direct/q/no-such", {}), 404)
        self.assertError(self.api.post("/api/bindings/%2F/e/amq.default/q/q.b", {}), 403)
        # Exchange to exchange.
        self.assertEqual(self.api.post("/api/bindings/%2F/e/amq.fanout/e/x.h", {})[0], 201)
        self.assertEqual(len(self.api.get("/api/bindings/%2F/e/amq.fanout/e/x.h")[1]), 1)

    # ---------------------------------------------------------- connections

    def test_connections_listed_and_closed_with_a_reason_the_client_sees(self):
        c = connect(self.b)
        sender(c, "/queues/conn-test")
        conns = self.api.get("/api/connections")[1]
        mine = [x for x in conns if x["user"] == "guest" and x["links"] >= 1]
        self.assertTrue(mine, conns)
        x = mine[0]
        self.assertEqual(x["protocol"], "AMQP 1.0")
        self.assertEqual(x["peer_host"], "127.0.0.1")
        self.assertEqual(x["port"], self.b.port)
        self.assertIn(" -> ", x["name"])
        name = Q(x["name"], safe="")
        self.assertEqual(self.api.get(f"/api/connections/{name}")[1]["name"], x["name"])
        code, _, _ = self.api.delete(f"/api/connections/{name}", headers={"X-Reason": "maintenance window"})
        self.assertEqual(code, 204)
        with self.assertRaises(Exception) as e:
            for _ in range(50):
                sender(c, "/queues/conn-test").send(Message(body="x"), timeout=1)
                time.sleep(0.05)
        self.assertIn("maintenance window", str(e.exception))
        try:
            c.close()  # the client answers the close; then the connection is gone
        except Exception:
            pass
        deadline = time.time() + 5
        while self.api.get(f"/api/connections/{name}")[0] != 404 and time.time() < deadline:
            time.sleep(0.05)
        self.assertError(self.api.delete(f"/api/connections/{name}"), 404)

    # ---------------------------------------------------------------- users

    def test_users_put_get_delete_and_logins_follow_at_once(self):
        self.assertEqual(self.api.put("/api/users/alice", {"password": "wonderland", "tags": "administrator"})[0], 201)
        u = self.api.get("/api/users/alice")[1]
        self.assertEqual((u["name"], u["tags"], u["hashing_algorithm"]),
                         ("alice", ["administrator"], "rabbit_password_hashing_sha256"))
        self.assertNotIn("password", u)
        alice = Api(self.b.admin_port, "alice", "wonderland")
        self.assertEqual(alice.get("/api/whoami")[1], {"name": "alice", "tags": ["administrator"]})
        # AMQP logins see the new user at once too; as with RabbitMQ, it may
        # open the vhost once it has permissions there.
        with self.assertRaises(ConnectionClosed) as refused:
            connect(self.b, user="alice", password="wonderland")
        self.assertIn("access to vhost '/' refused for user 'alice'", str(refused.exception))
        self.assertEqual(self.api.put("/api/permissions/%2F/alice", {"configure": "", "write": "", "read": ""})[0], 201)
        connect(self.b, user="alice", password="wonderland").close()
        # A user without the administrator tag logs in but may not use the API.
        self.assertEqual(self.api.put("/api/users/alice", {"password": "wonderland", "tags": ["management"]})[0], 204)
        self.assertError(alice.get("/api/overview"), 403, "not_authorised")
        self.assertError(self.api.put("/api/users/bob", {"tags": "administrator"}), 400)
        self.assertError(self.api.put("/api/users/bob", {"password": "x", "tags": "wizard"}), 400)
        self.assertEqual(self.api.delete("/api/users/alice")[0], 204)
        self.assertError(alice.get("/api/overview"), 401, "not_authorised")
        self.assertError(self.api.get("/api/users/alice"), 404)
        names = [x["name"] for x in self.api.get("/api/users")[1]]
        self.assertEqual(names, ["guest"])

    # ---------------------------------------------- overview, nodes, tree

    def test_overview_nodes_and_supervision_tree(self):
        self.api.put("/api/queues/%2F/q.ov", {})
        self.api.post("/api/exchanges/%2F/amq.default/publish", {"routing_key": "q.ov", "payload": "x"})
        ov = self.api.get("/api/overview")[1]
        self.assertEqual(ov["product_name"], "Plexus")
        self.assertGreaterEqual(ov["object_totals"]["queues"], 1)
        self.assertGreaterEqual(ov["queue_totals"]["messages_ready"], 1)
        self.assertGreaterEqual(ov["message_stats"]["publish"], 1)
        self.assertIn("rate", ov["message_stats"]["publish_details"])
        self.assertIn({"node": ov["node"], "protocol": "amqp", "port": self.b.port}, ov["listeners"])
        node = self.api.get("/api/nodes")[1][0]
        self.assertTrue(node["running"])
        self.assertGreater(node["mem_used"], 0)
        self.assertGreater(node["fd_used"], 0)
        self.assertGreater(node["proc_used"], 5)
        tree = self.api.get("/api/supervisors")[1]
        self.assertEqual(tree["id"], "plexus")
        kids = {k["id"]: k for k in tree["children"]}
        self.assertEqual(set(kids), {"routing", "listeners", "admin"})
        routing = {k["id"]: k for k in kids["routing"]["children"]}
        self.assertEqual(routing["manager"]["behaviour"], "rt_manager")
        queues = [k["id"] for k in routing["queues"]["children"]]
        self.assertIn("q.ov", queues)
        self.assertEqual(kids["admin"]["restart"], "temporary")
        for k in ("pid", "restarts", "mailbox"):
            self.assertIn(k, routing["manager"])

    # --------------------------------------------------------------- errors

    def test_wrong_password_and_no_credentials_are_401(self):
        bad = Api(self.b.admin_port, "guest", "wrong")
        self.assertError(bad.get("/api/overview"), 401, "not_authorised")
        code, body, hdrs = self.api.get("/api/overview", auth=False)
        self.assertEqual(code, 401)
        self.assertIn("Basic", hdrs.get("WWW-Authenticate", ""))
        self.assertError(Api(self.b.admin_port, "nobody", "x").get("/metrics"), 401)

    def test_malformed_json_and_wrong_shapes_are_400(self):
        self.assertError(self.api.call("PUT", "/api/queues/%2F/q.bad", raw=b"{not json"), 400, "bad_request")
        self.assertError(self.api.call("PUT", "/api/queues/%2F/q.bad", raw=b"[1, 2]"), 400, "bad_request")
        self.assertError(self.api.call("PUT", "/api/queues/%2F/q.bad", raw=b"\xff\xfe"), 400)
        self.assertError(self.api.put("/api/queues/%2F/q.bad", {"arguments": {"x-max-length": "ten"}}), 400)
        self.assertError(self.api.put("/api/queues/%2F/q.bad", {"durable": "yes"}), 400)
        self.assertError(self.api.post("/api/queues/%2F/q.bad/get", {"count": 0}), 400)
        self.assertError(self.api.post("/api/exchanges/%2F/amq.direct/publish", {"payload": "x"}), 400)
        self.assertError(self.api.post("/api/exchanges/%2F/amq.direct/publish",
                                       {"routing_key": "k", "payload": "!!", "payload_encoding": "base64"}), 400)
        self.assertError(self.api.get("/api/queues/%2F/bad%zzescape"), 400)
        self.assertEqual(self.api.get("/api/queues/%2F/q.bad")[0], 404)  # nothing was made

    def test_unknown_paths_404_and_wrong_methods_405(self):
        self.assertError(self.api.get("/api/nonsense"), 404, "not_found")
        self.assertError(self.api.get("/api/queues/%2F/a/b/c/d"), 404)
        self.assertError(self.api.get("/nonsense.html"), 404)
        self.assertError(self.api.get("/api/queues/other-vhost/q"), 404)
        code, body, hdrs = self.api.call("POST", "/api/overview", {})
        self.assertError((code, body, hdrs), 405, "method_not_allowed")
        self.assertEqual(hdrs["Allow"], "GET")
        code, body, hdrs = self.api.call("PATCH", "/api/queues/%2F/x", {})
        self.assertEqual(code, 405)
        self.assertEqual(hdrs["Allow"], "GET, PUT, DELETE")
        self.assertError(self.api.call("DELETE", "/metrics"), 405)

    def test_huge_bodies_are_413_before_they_are_read(self):
        # A declared length over admin.max_body: refused on the headers.
        s = socket.create_connection(("127.0.0.1", self.b.admin_port))
        s.sendall(b"PUT /api/queues/%2F/big HTTP/1.1\r\nHost: x\r\nAuthorization: " + self.api.auth.encode() +
                  b"\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n")
        s.settimeout(5)
        head = s.recv(4096).decode()
        s.close()
        self.assertTrue(head.startswith("HTTP/1.1 413"), head)
        self.assertIn("payload_too_large", head)
        # Chunked, with no length: refused once it grows past the limit.
        s = socket.create_connection(("127.0.0.1", self.b.admin_port))
        s.sendall(b"POST /api/definitions HTTP/1.1\r\nHost: x\r\nAuthorization: " + self.api.auth.encode() +
                  b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        try:
            for _ in range(20 * 16 + 1):  # 20 MiB > 16 MiB
                s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            s.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        s.settimeout(10)
        head = s.recv(4096).decode()
        s.close()
        self.assertTrue(head.startswith("HTTP/1.1 413"), head)
        self.assertEqual(self.api.get("/api/queues/%2F/big")[0], 404)

    def test_the_broker_still_serves_after_all_that(self):
        self.assertEqual(self.api.get("/api/overview")[0], 200)
        s = sender(self.c, "/queues/after")
        s.send(Message(body="ok"))
        self.assertEqual(receiver(self.c, "/queues/after").receive(timeout=5).body, "ok")


if __name__ == "__main__":
    main()
