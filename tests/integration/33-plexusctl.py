#!/usr/bin/python3
"""33: plexusctl against a running broker: every command, tables and
--json, and the exit codes scripts rely on (0 done, 1 refused, 2 usage,
3 unreachable, 4 not authorised)."""
import json
import os
import subprocess
import tempfile
import unittest

from harness import ROOT, Broker, BrokerTest, free_port, main, receiver, sender, Message

CTL = os.environ.get("PLEXUSCTL_BIN") or os.path.join(ROOT, "bin", "plexusctl")


class Plexusctl(BrokerTest):
    def ctl(self, *args, stdin=None, url=None, user=None):
        env = dict(os.environ, PLEXUS_URL=url or f"http://127.0.0.1:{self.b.admin_port}")
        env.pop("PLEXUS_USER", None)
        if user:
            env["PLEXUS_USER"] = user
        p = subprocess.run([CTL, *args], capture_output=True, text=True, input=stdin, timeout=30, env=env)
        return p.returncode, p.stdout, p.stderr

    def ok(self, *args, **kw):
        code, out, err = self.ctl(*args, **kw)
        self.assertEqual(code, 0, f"plexusctl {' '.join(args)}: {err}")
        return out

    def test_declare_list_publish_get_purge_delete(self):
        self.ok("declare", "queue", "ctl.q", "--arg", "x-max-length=50", "--arg", "x-overflow=drop-head")
        self.ok("declare", "exchange", "ctl.x", "--type", "direct", "--durable", "false")
        self.ok("declare", "binding", "ctl.x", "ctl.q", "--key", "k")
        table = self.ok("list", "queues")
        header, *rows = table.splitlines()
        self.assertEqual(header.split()[:4], ["NAME", "MESSAGES_READY", "MESSAGES_UNACKNOWLEDGED", "CONSUMERS"])
        self.assertTrue(any(r.split()[0] == "ctl.q" for r in rows), table)
        queues = json.loads(self.ok("--json", "list", "queues"))
        q = [x for x in queues if x["name"] == "ctl.q"][0]
        self.assertEqual(q["arguments"], {"x-max-length": 50})
        self.assertIn("ctl.x", self.ok("list", "exchanges"))
        self.assertIn("ctl.x", self.ok("list", "bindings"))
        self.assertEqual(self.ok("publish", "ctl.x", "k", "hello there"), "")
        self.assertIn("not routed", self.ok("publish", "ctl.x", "other", "lost"))
        self.ok("publish", "", "ctl.q", "-", stdin="from stdin")
        got = json.loads(self.ok("--json", "get", "ctl.q", "--count", "5"))
        self.assertEqual([m["payload"] for m in got], ["hello there", "from stdin"])
        self.assertIn("hello there", self.ok("get", "ctl.q"))  # requeued by default
        self.ok("purge", "queue", "ctl.q")
        self.assertEqual(json.loads(self.ok("--json", "get", "ctl.q")), [])
        self.ok("delete", "binding", "ctl.x", "ctl.q", "k")
        self.ok("delete", "exchange", "ctl.x")
        self.ok("delete", "queue", "ctl.q", "--if-empty")
        self.assertNotIn("ctl.q", self.ok("list", "queues"))

    def test_users_connections_status_and_tree(self):
        self.ok("declare", "user", "carol", "--password", "pw", "--tags", "administrator")
        self.assertIn("carol", self.ok("list", "users"))
        self.assertIn("product_name: Plexus", self.ok("status", user="carol:pw"))
        sender(self.c, "/queues/ctl.conn")
        conns = json.loads(self.ok("--json", "list", "connections"))
        self.assertTrue(conns)
        self.assertIn(conns[0]["name"].split(" ")[0], self.ok("list", "connections"))
        tree = self.ok("tree")
        self.assertTrue(tree.startswith("plexus (one_for_one)"), tree)
        for part in ("routing (rest_for_one)", "manager [rt_manager]", "admin (one_for_one)", "ctl.conn [queue]"):
            self.assertIn(part, tree)
        self.ok("delete", "user", "carol")
        code, _, err = self.ctl("status", user="carol:pw")
        self.assertEqual(code, 4, err)

    def test_export_then_import_into_another_broker(self):
        self.ok("declare", "queue", "ctl.exported", "--arg", "x-message-ttl=5000")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "defs.json")
            self.ok("export", path)
            with Broker() as other:
                url = f"http://127.0.0.1:{other.admin_port}"
                self.ok("import", path, url=url)
                doc = json.loads(self.ok("--json", "list", "queues", url=url))
                self.assertIn("ctl.exported", [q["name"] for q in doc])
                with open(path, "w") as f:
                    f.write("{not json")
                code, _, err = self.ctl("import", path, url=url)
                self.assertEqual(code, 2, err)

    def test_exit_codes(self):
        code, _, err = self.ctl("delete", "queue", "no-such-queue")
        self.assertEqual(code, 1)
        self.assertIn("404 not_found", err)
        code, _, err = self.ctl("list", "queues", user="guest:wrong")
        self.assertEqual(code, 4)
        self.assertIn("401", err)
        code, _, err = self.ctl("status", url=f"http://127.0.0.1:{free_port()}")
        self.assertEqual(code, 3)
        self.assertIn("cannot reach the broker", err)
        for args in (["frobnicate"], [], ["list"], ["list", "widgets"], ["declare", "exchange", "x"],
                     ["get", "q", "--count", "0"], ["--nonsense"]):
            code, _, err = self.ctl(*args)
            self.assertEqual(code, 2, f"{args}: {err}")
        self.assertEqual(self.ctl("--help")[0], 0)
        self.assertIn("Exit status", self.ctl("--help")[1])


if __name__ == "__main__":
    main()
