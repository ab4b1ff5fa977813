"""35-rabbitmqadmin.py — RabbitMQ's own command line for its management
API, rabbitmqadmin, driven unchanged against the real bin/plexus: every
command that applies (list, show overview, declare, delete, purge, close,
publish, get, export, import), its results checked through the API and,
where it matters, through AMQP (a message it publishes is received by a
proton client; one proton sends is read back by `rabbitmqadmin get`), and
its error paths (a wrong password, a missing queue, a value RabbitMQ would
refuse too).

The tool comes from Debian's rabbitmq-server package without installing
it (no Erlang, no RabbitMQ server started): `scripts/deps.sh test`
downloads the .deb and unpacks the one python3 script into build/tools
(see fetch_rabbitmqadmin there). If it is missing this test asks deps.sh
for it once more and then fails, never skips: CI must have it.
"""
import json
import os
import subprocess
import tempfile
import time
import unittest
import urllib.parse

from proton.reactor import AtMostOnce

from harness import ROOT, Broker, Message, connect, main, receive_all, receiver, sender
from admin_api import Api

TOOL = os.environ.get("RABBITMQADMIN") or os.path.join(ROOT, "build", "tools", "rabbitmqadmin")


def find_tool():
    if not os.path.isfile(TOOL):
        subprocess.run(["sh", os.path.join(ROOT, "scripts", "deps.sh"), "rabbitmqadmin"], timeout=300)
    if not os.path.isfile(TOOL):
        raise AssertionError(
            f"rabbitmqadmin not found at {TOOL}: `scripts/deps.sh test` (or `scripts/deps.sh rabbitmqadmin`) "
            "unpacks it from Debian's rabbitmq-server package with apt-get download; this test does not skip")
    return TOOL


def without_rates(v):
    """v without its "*_details" rates (RabbitMQ's {"rate": ...} beside each count)."""
    if isinstance(v, dict):
        return {k: without_rates(x) for k, x in v.items() if not k.endswith("_details")}
    if isinstance(v, list):
        return [without_rates(x) for x in v]
    return v


class RabbitmqadminTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tool = find_tool()
        cls.b = Broker().start()
        cls.api = Api(cls.b.admin_port)

    @classmethod
    def tearDownClass(cls):
        code = cls.b.stop()
        log = cls.b.log()
        cls.b.tmp.cleanup()
        assert code == 0, f"plexus exited {code}:\n{log}"

    def run_tool(self, *args, user="guest", password="guest", stdin=None):
        """rabbitmqadmin as an operator's script runs it: (exit code, stdout, stderr)."""
        cmd = ["/usr/bin/python3", self.tool, "--host", "127.0.0.1", "--port", str(self.b.admin_port),
               "-u", user, "-p", password, *args]
        p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60,
                           cwd=tempfile.gettempdir(), env={**os.environ, "HOME": self.b.tmp.name})
        return p.returncode, p.stdout, p.stderr

    def ok(self, *args, **kw):
        code, out, err = self.run_tool(*args, **kw)
        self.assertEqual(code, 0, f"rabbitmqadmin {' '.join(args)} failed:\n{out}{err}\n{self.b.log()[-2000:]}")
        return out

    def refused(self, *args, expect, **kw):
        code, out, err = self.run_tool(*args, **kw)
        self.assertNotEqual(code, 0, f"rabbitmqadmin {' '.join(args)} should have failed:\n{out}")
        self.assertIn(expect, err, f"rabbitmqadmin {' '.join(args)}:\n{out}{err}")
        return err

    def listing(self, what, *cols):
        return json.loads(self.ok("-f", "raw_json", "list", what, *cols))

    @staticmethod
    def is_ours(conn_info, c):
        """Whether a listed connection is c (others may still be closing)."""
        return conn_info["client_properties"]["container_id"] == c.container.container_id

    def queue(self, name):
        status, q, _ = self.api.get(f"/api/queues/%2F/{name}")
        self.assertEqual(status, 200, q)
        return q

    def assert_messages(self, name, n, timeout=5):
        """The queue holds n messages (settlements reach it just after the answer that caused them)."""
        deadline = time.time() + timeout
        while self.queue(name)["messages"] != n and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.queue(name)["messages"], n)

    # ------------------------------------------------------------ declare

    def test_declare_queue_exchange_binding_then_publish_to_a_proton_consumer(self):
        self.assertIn("queue declared", self.ok("declare", "queue", "name=orders", "durable=true"))
        self.assertIn("exchange declared",
                      self.ok("declare", "exchange", "name=events", "type=topic", "durable=false"))
        self.assertIn("binding declared",
                      self.ok("declare", "binding", "source=events", "destination=orders", "routing_key=order.*"))
        q = self.queue("orders")
        self.assertIs(q["durable"], True)
        self.assertIs(q["auto_delete"], False)
        status, x, _ = self.api.get("/api/exchanges/%2F/events")
        self.assertEqual((status, x["type"], x["durable"]), (200, "topic", False))
        status, bs, _ = self.api.get("/api/bindings/%2F/e/events/q/orders")
        self.assertEqual([b["routing_key"] for b in bs], ["order.*"])

        self.assertIn("Message published",
                      self.ok("publish", "exchange=events", "routing_key=order.new", 'payload={"id": 7}'))
        self.assertIn("NOT routed", self.ok("publish", "exchange=events", "routing_key=other", "payload=x"))
        c = connect(self.b)
        try:
            got = receive_all(receiver(c, "/queues/orders"))
        finally:
            c.close()
        self.assertEqual([bytes(m.body) for m in got], [b'{"id": 7}'])
        self.assertEqual(got[0].subject, "order.new")
        self.assert_messages("orders", 0)

    def test_declare_queue_with_arguments_and_queue_type(self):
        self.ok("declare", "queue", "name=bounded", "durable=false", "auto_delete=false", "queue_type=classic",
                'arguments={"x-max-length": 2, "x-overflow": "reject-publish"}')
        q = self.queue("bounded")
        self.assertIs(q["durable"], False)
        self.assertEqual(q["arguments"]["x-max-length"], 2)
        self.refused("declare", "queue", "name=quorum", "queue_type=quorum", expect="x-queue-type must be classic")
        # What RabbitMQ refuses too: not a boolean, not an exchange type.
        self.refused("declare", "queue", "name=yes", "durable=yes", expect="durable must be true or false")
        self.refused("declare", "exchange", "name=bad", "type=bogus", expect="type must be direct, fanout")
        self.refused("declare", "binding", "source=amq.direct", "destination=nowhere",
                     expect="Not found: /api/bindings/%2F/e/amq.direct/q/nowhere")
        status, _, _ = self.api.get("/api/queues/%2F/yes")
        self.assertEqual(status, 404)

    def test_exchange_to_exchange_binding(self):
        self.ok("declare", "exchange", "name=fan", "type=fanout")
        self.ok("declare", "queue", "name=e2e")
        self.ok("declare", "binding", "source=fan", "destination_type=exchange", "destination=amq.direct")
        self.ok("declare", "binding", "source=amq.direct", "destination=e2e", "routing_key=k")
        self.assertIn("Message published", self.ok("publish", "exchange=fan", "routing_key=k", "payload=hop"))
        status, bs, _ = self.api.get("/api/bindings/%2F/e/fan/e/amq.direct")
        self.assertEqual((status, len(bs)), (200, 1))
        got = json.loads(self.ok("-f", "raw_json", "get", "queue=e2e", "ackmode=ack_requeue_false"))
        self.assertEqual([m["payload"] for m in got], ["hop"])

    # ------------------------------------------------------- publish, get

    def test_get_reads_what_proton_sent_with_counts_and_ackmodes(self):
        self.ok("declare", "queue", "name=inbox")
        c = connect(self.b)
        try:
            s = sender(c, "/queues/inbox")
            for i in range(3):
                s.send(Message(body=f"m{i}".encode(), content_type="text/plain", properties={"n": i}))
        finally:
            c.close()
        got = json.loads(self.ok("-f", "raw_json", "get", "queue=inbox", "count=2"))  # requeued
        self.assertEqual([m["payload"] for m in got], ["m0", "m1"])
        self.assertEqual(got[0]["properties"]["content_type"], "text/plain")
        self.assertEqual(got[1]["properties"]["headers"], {"n": 1})
        self.assert_messages("inbox", 3)
        table = self.ok("get", "queue=inbox")  # the default: one message, in a table
        self.assertIn("| m0 ", table)
        got = json.loads(self.ok("-f", "raw_json", "get", "queue=inbox", "count=5", "ackmode=ack_requeue_false"))
        self.assertEqual([m["payload"] for m in got], ["m0", "m1", "m2"])
        self.assertTrue(got[0]["redelivered"])
        self.assert_messages("inbox", 0)
        self.assertIn("No items", self.ok("get", "queue=inbox"))
        self.refused("get", "queue=inbox", "count=5x", expect="count must be an integer")

    def test_publish_from_stdin_with_properties_and_get_to_a_file(self):
        self.ok("declare", "queue", "name=props")
        # No payload= : rabbitmqadmin reads stdin and sends it base64-encoded.
        self.ok("publish", "routing_key=props", stdin="from stdin \u00e9")
        self.ok("publish", "routing_key=props", "payload=persistent",
                'properties={"delivery_mode": 2, "content_type": "text/plain", "headers": {"h": "v"}}')
        c = connect(self.b)
        try:
            got = receive_all(receiver(c, "/queues/props"))
        finally:
            c.close()
        self.assertEqual([bytes(m.body) for m in got], ["from stdin \u00e9".encode(), b"persistent"])
        self.assertFalse(got[0].durable)
        self.assertTrue(got[1].durable)
        self.assertEqual(got[1].content_type, "text/plain")
        self.assertEqual(got[1].properties, {"h": "v"})
        self.ok("publish", "routing_key=props", "payload=to a file")
        path = os.path.join(self.b.tmp.name, "payload")
        self.ok("get", "queue=props", f"payload_file={path}", "ackmode=ack_requeue_false")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"to a file")

    # ------------------------------------------------------------- lists

    def test_list_and_show_everything_plexus_has(self):
        self.ok("declare", "queue", "name=listed")
        c = connect(self.b)
        try:
            rcv = receiver(c, "/queues/listed", credit=1)  # one consumer, one connection
            self.assertEqual([q["name"] for q in self.listing("queues") if q["name"] == "listed"], ["listed"])
            self.assertIn("amq.topic", [x["name"] for x in self.listing("exchanges")])
            self.assertIn(("", "listed"), [(b["source"], b["destination"]) for b in self.listing("bindings")])
            conns = [x for x in self.listing("connections") if self.is_ours(x, c)]
            self.assertEqual([(x["vhost"], x["protocol"]) for x in conns], [("/", "AMQP 1.0")])
            self.assertIn(conns[0]["name"], self.ok("list", "connections"))
            deadline = time.time() + 5
            while self.queue("listed")["consumers"] != 1 and time.time() < deadline:
                time.sleep(0.05)
            self.assertEqual(self.queue("listed")["consumers"], 1)
            rcv.close()
        finally:
            c.close()
        self.assertIn("guest", [u["name"] for u in self.listing("users")])
        vhosts = self.listing("vhosts")
        self.assertEqual([v["name"] for v in vhosts], ["/"])
        self.assertIn("messages", vhosts[0])
        perms = self.listing("permissions")
        self.assertIn({"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}, perms)
        nodes = self.listing("nodes")
        self.assertEqual(len(nodes), 1)
        self.assertGreater(nodes[0]["mem_used"], 0)
        # The default table: the columns rabbitmqadmin asks for.
        table = self.ok("list", "vhosts")
        self.assertIn("| name | messages |", table.replace("  ", " "))
        overview = self.ok("show", "overview")
        self.assertIn("object_totals.queues", overview)
        self.assertIn("plexus", overview)
        over = json.loads(self.ok("-f", "raw_json", "show", "overview"))[0]
        self.assertEqual(over["product_name"], "Plexus")
        # -V / lists one vhost: the same (rates aside: they are sampled once
        # a second, and may move between the two listings).
        self.assertEqual(without_rates(self.listing("queues")),
                         without_rates(json.loads(self.ok("-V", "/", "-f", "raw_json", "list", "queues"))))
        # Columns and sorting are the server's, as with RabbitMQ.
        self.ok("declare", "queue", "name=aaa")
        self.ok("declare", "queue", "name=zzz")
        names = json.loads(self.ok("-f", "raw_json", "-S", "name", "-R", "list", "queues", "name"))
        self.assertEqual(names[0], {"name": "zzz"})
        self.assertEqual(names[-1], {"name": "aaa"})
        self.assertEqual([n["name"] for n in names], sorted((n["name"] for n in names), reverse=True))

    # -------------------------------------------------- vhosts, permissions

    def test_vhosts_say_what_is_true_and_permissions_are_kept(self):
        self.assertIn("vhost declared", self.ok("declare", "vhost", "name=/"))
        self.refused("declare", "vhost", "name=staging", expect="not implemented yet")
        self.refused("delete", "vhost", "name=/", expect="cannot be deleted")
        self.refused("delete", "vhost", "name=staging", expect="Not found: /api/vhosts/staging")
        self.assertIn("permission declared",
                      self.ok("declare", "permission", "vhost=/", "user=guest", "configure=.*", "write=.*", "read=.*"))
        self.refused("declare", "permission", "vhost=/", "user=nobody", "configure=.*", "write=.*", "read=.*",
                     expect="Not found: /api/permissions/%2F/nobody")
        status, vs, _ = self.api.get("/api/vhosts")
        self.assertEqual((status, [v["name"] for v in vs]), (200, ["/"]))
        status, p, _ = self.api.get("/api/permissions/%2F/guest")
        self.assertEqual((status, p["configure"]), (200, ".*"))
        # Narrower permissions and their removal: tests/integration/43-permissions.py.

    # ------------------------------------------------------------- users

    def test_users_declared_log_in_and_deleted_do_not(self):
        self.assertIn("user declared",
                      self.ok("declare", "user", "name=ops", "password=s3cret", "tags=administrator"))
        self.assertIn("ops", [u["name"] for u in self.listing("users")])
        # As with RabbitMQ, a new user has no permissions until given some.
        self.assertNotIn("ops", [p["user"] for p in self.listing("permissions")])
        self.ok("list", "queues", user="ops", password="s3cret")
        self.refused("list", "queues", user="ops", password="wrong", expect="Access refused: /api/queues")
        self.refused("declare", "user", "name=bad", "password=x", "tags=wizard", expect='unknown tag "wizard"')
        self.assertIn("user deleted", self.ok("delete", "user", "name=ops"))
        self.refused("list", "queues", user="ops", password="s3cret", expect="Access refused")

    # ---------------------------------------------------- delete, purge

    def test_purge_and_delete(self):
        self.ok("declare", "exchange", "name=gone.x", "type=direct")
        self.ok("declare", "queue", "name=gone.q")
        self.ok("declare", "binding", "source=gone.x", "destination=gone.q", "routing_key=k")
        for i in range(3):
            self.ok("publish", "exchange=gone.x", "routing_key=k", f"payload={i}")
        self.assert_messages("gone.q", 3)
        self.assertIn("queue purged", self.ok("purge", "queue", "name=gone.q"))
        self.assert_messages("gone.q", 0)
        self.assertIn("binding deleted", self.ok("delete", "binding", "source=gone.x", "destination_type=queue",
                                                 "destination=gone.q", "properties_key=k"))
        status, bs, _ = self.api.get("/api/bindings/%2F/e/gone.x/q/gone.q")
        self.assertEqual((status, bs), (200, []))
        self.assertIn("queue deleted", self.ok("delete", "queue", "name=gone.q"))
        self.assertIn("exchange deleted", self.ok("delete", "exchange", "name=gone.x"))
        self.assertEqual(self.api.get("/api/queues/%2F/gone.q")[0], 404)
        self.assertEqual(self.api.get("/api/exchanges/%2F/gone.x")[0], 404)
        self.refused("delete", "queue", "name=gone.q", expect="Not found: /api/queues/%2F/gone.q")
        self.refused("purge", "queue", "name=gone.q", expect="Not found: /api/queues/%2F/gone.q/contents")

    def test_close_connection(self):
        c = connect(self.b)
        try:
            conns = [x for x in self.listing("connections") if self.is_ours(x, c)]
            self.assertEqual(len(conns), 1)
            self.assertIn("connection closed", self.ok("close", "connection", f"name={conns[0]['name']}"))
            with self.assertRaises(Exception) as e:
                sender(c, "/queues/closed").send(Message(body=b"x"), timeout=5)
            self.assertIn("closed through the admin API", str(e.exception))
        finally:
            try:
                c.close()
            except Exception:
                pass
        self.refused("close", "connection", "name=no such", expect="Not found: /api/connections/no%20such")

    # ---------------------------------------------------- export, import

    def test_export_then_import_brings_definitions_back(self):
        self.ok("declare", "exchange", "name=defs.x", "type=headers")
        self.ok("declare", "queue", "name=defs.q", 'arguments={"x-message-ttl": 60000}')
        self.ok("declare", "binding", "source=defs.x", "destination=defs.q", "routing_key=",
                'arguments={"x-match": "all", "kind": "a"}')
        path = os.path.join(self.b.tmp.name, "defs.json")
        self.assertIn("Exported definitions", self.ok("export", path))
        with open(path) as f:
            doc = json.load(f)
        self.assertIn("defs.q", [q["name"] for q in doc["queues"]])
        self.assertIn({"name": "/"}, doc["vhosts"])
        self.assertIn("guest", [u["name"] for u in doc["users"]])
        self.ok("delete", "queue", "name=defs.q")
        self.ok("delete", "exchange", "name=defs.x")
        self.assertIn("Uploaded definitions", self.ok("import", path))
        self.assertEqual(self.queue("defs.q")["arguments"], {"x-message-ttl": 60000})
        status, bs, _ = self.api.get("/api/bindings/%2F/e/defs.x/q/defs.q")
        self.assertEqual((status, [b["arguments"].get("kind") for b in bs]), (200, ["a"]))
        # One vhost's definitions: exchanges, queues and bindings, no users.
        vpath = os.path.join(self.b.tmp.name, "vhost.json")
        self.ok("-V", "/", "export", vpath)
        with open(vpath) as f:
            vdoc = json.load(f)
        self.assertIn("defs.q", [q["name"] for q in vdoc["queues"]])
        self.assertNotIn("users", vdoc)
        self.ok("delete", "queue", "name=defs.q")
        self.ok("-V", "/", "import", vpath)
        self.assertEqual(self.queue("defs.q")["arguments"], {"x-message-ttl": 60000})
        self.refused("-V", "staging", "export", vpath, expect="Not found: /api/definitions/staging")
        with open(path, "w") as f:
            f.write('{"queues": [{"name": "x", "durable": "maybe"}]}')
        self.refused("import", path, expect="must be true or false")

    def wait_for(self, fn, what, timeout=5):
        """fn() once it is true (the API sees a connection's changes when its round ends)."""
        deadline = time.time() + timeout
        while not (v := fn()) and time.time() < deadline:
            time.sleep(0.05)
        self.assertTrue(v, what)
        return v

    def test_list_consumers_and_channels(self):
        self.ok("declare", "queue", "name=watched")
        c = connect(self.b)
        try:
            conn = [x for x in self.listing("connections") if self.is_ours(x, c)][0]

            def mine(what):  # this connection's channels or consumers, from the API
                key = ("channel_details", "connection_name") if what == "consumers" else ("connection_details", "name")
                status, items, _ = self.api.get(f"/api/{what}")
                self.assertEqual(status, 200, items)
                return [x for x in items if x[key[0]][key[1]] == conn["name"]]

            rcv = receiver(c, "/queues/watched", credit=5)
            cons = self.wait_for(lambda: [x for x in mine("consumers") if x["prefetch_count"] == 5],
                                 "the receiver with its credit of 5 is listed")
            self.assertEqual(len(cons), 1, cons)
            x = cons[0]
            self.assertEqual(x["queue"], {"name": "watched", "vhost": "/"})
            self.assertEqual(x["consumer_tag"], rcv.link.name)
            d = x["channel_details"]
            self.assertEqual((d["connection_name"], d["peer_host"], d["peer_port"], d["user"]),
                             (conn["name"], conn["peer_host"], conn["peer_port"], conn["user"]))
            self.assertEqual(d["name"], f"{conn['name']} ({d['number']})")
            self.assertGreaterEqual(d["number"], 1)
            self.assertEqual((x["ack_required"], x["active"], x["exclusive"], x["arguments"]), (True, True, False, {}))
            self.assertIn(rcv.link.name, self.ok("list", "consumers"))
            # The same through the API, with the vhost, and 404 for another.
            status, body, _ = self.api.get("/api/consumers/%2F")
            self.assertEqual(status, 200)
            self.assertIn(rcv.link.name, [y["consumer_tag"] for y in body])
            self.assertEqual(self.api.get("/api/consumers/nowhere")[0], 404)

            # Its session is a channel, with the consumer on it.
            chans = mine("channels")
            self.assertEqual([(y["name"], y["number"], y["user"], y["vhost"], y["state"], y["consumer_count"])
                              for y in chans], [(d["name"], d["number"], conn["user"], "/", "running", 1)])
            self.assertIn(d["name"], self.ok("list", "channels"))
            conn = [y for y in self.listing("connections") if self.is_ours(y, c)][0]
            self.assertEqual(conn["channels"], 1)
            status, body, _ = self.api.get("/api/connections/" + urllib.parse.quote(conn["name"], safe="") +
                                           "/channels")
            self.assertEqual((status, [y["name"] for y in body]), (200, [d["name"]]))

            # A presettled receiver needs no acks.
            pre = receiver(c, "/queues/watched", options=AtMostOnce())
            pres = self.wait_for(lambda: [y for y in mine("consumers") if y["consumer_tag"] == pre.link.name],
                                 "the presettled receiver is listed")
            self.assertIs(pres[0]["ack_required"], False)
            pre.close()

            rcv.close()
            self.wait_for(lambda: not mine("consumers"), "no consumer left once the receivers closed")
            self.assertEqual([y["consumer_count"] for y in mine("channels")], [0])
        finally:
            c.close()
        self.wait_for(lambda: not mine("channels"), "no channel left once the connection closed")
        self.assertNotIn(conn["name"], self.ok("list", "channels"))
        self.assertNotIn(conn["name"], self.ok("list", "consumers"))

    # ------------------------------------------------------------ errors

    def test_wrong_password_and_missing_queue(self):
        self.refused("list", "queues", password="wrong", expect="Access refused: /api/queues")
        self.refused("get", "queue=missing", expect="Not found: /api/queues/%2F/missing/get")
        self.refused("list", "queues", "-V", "staging", expect="Not found: /api/queues/staging")
        # Consumers of a vhost that does not exist: as RabbitMQ says it.
        self.refused("list", "consumers", "-V", "staging", expect="Not found: /api/consumers/staging")


if __name__ == "__main__":
    main()
