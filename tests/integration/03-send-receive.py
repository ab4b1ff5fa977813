#!/usr/bin/python3
"""03: sending and receiving on queues — order, bodies, properties, the
ways to name a queue."""
import json

from harness import BrokerTest, Message, main, receive_all, receiver, sender


class SendReceive(BrokerTest):
    def test_order_is_kept_on_one_link(self):
        s = sender(self.c, "/queues/order")
        for i in range(500):
            s.send(Message(body=i))
        got = [m.body for m in receive_all(receiver(self.c, "/queues/order", credit=100))]
        self.assertEqual(got, list(range(500)))

    def test_json_body_passes_byte_for_byte(self):
        doc = {"order": 42, "items": ["a", "é", None], "total": 1.5}
        raw = json.dumps(doc, ensure_ascii=False).encode()
        s = sender(self.c, "/queues/json")
        s.send(Message(body=raw, content_type="application/json", inferred=True))
        m = receiver(self.c, "/queues/json").receive(timeout=5)
        self.assertEqual(m.content_type, "application/json")
        self.assertIsInstance(m.body, bytes)
        self.assertEqual(m.body, raw)
        self.assertEqual(json.loads(m.body), doc)

    def test_properties_and_ids_pass_through(self):
        s = sender(self.c, "/queues/props")
        s.send(Message(body="x", id="m-1", correlation_id="c-9", subject="subj", reply_to="/queues/back",
                       properties={"tenant": "acme", "n": 7, "ok": True}, durable=True, priority=7))
        m = receiver(self.c, "/queues/props").receive(timeout=5)
        self.assertEqual((m.id, m.correlation_id, m.subject, m.reply_to), ("m-1", "c-9", "subj", "/queues/back"))
        self.assertEqual(m.properties, {"tenant": "acme", "n": 7, "ok": True})
        self.assertTrue(m.durable)
        self.assertEqual(m.priority, 7)
        self.assertEqual(m.delivery_count, 0)

    def test_plain_name_and_percent_encoded_name_are_the_same_queue(self):
        sender(self.c, "plain-name").send(Message(body="via plain"))
        sender(self.c, "/queues/plain%2Dname").send(Message(body="via encoded"))
        got = [m.body for m in receive_all(receiver(self.c, "/queues/plain-name"))]
        self.assertEqual(got, ["via plain", "via encoded"])

    def test_names_with_slashes_and_spaces_via_percent_encoding(self):
        sender(self.c, "/queues/a%2Fb%20c").send(Message(body="odd"))
        m = receiver(self.c, "/queues/a%2Fb%20c").receive(timeout=5)
        self.assertEqual(m.body, "odd")

    def test_many_messages_at_most_once(self):
        from proton.reactor import AtMostOnce
        s = self.c.create_sender("/queues/amo", name="amo-s", options=AtMostOnce())
        for i in range(1000):
            s.send(Message(body=i))
        r = self.c.create_receiver("/queues/amo", name="amo-r", credit=200, options=AtMostOnce())
        got = [m.body for m in receive_all(r, accept=False)]
        self.assertEqual(got, list(range(1000)))

    def test_many_large_messages_arrive_intact_when_the_socket_backs_up(self):
        # 24 distinct 1 MiB bodies delivered at once fill the socket, so the
        # broker writes partly now and partly later: each must come out whole.
        bodies = [bytes((i * 31 + j) & 0xff for j in range(256)) * 4096 for i in range(24)]
        s = sender(self.c, "/queues/large-many")
        for b in bodies:
            s.send(Message(body=b))
        got = [m.body for m in receive_all(receiver(self.c, "/queues/large-many", credit=24), idle=3)]
        self.assertEqual(len(got), len(bodies))
        for i, (want, have) in enumerate(zip(bodies, got)):
            self.assertTrue(want == have, f"message {i} differs")

    def test_16_mib_message_arrives_intact(self):
        body = bytes(range(256)) * (16 * 4096)
        self.assertEqual(len(body), 16 << 20)
        sender(self.c, "/queues/big").send(Message(body=body))
        m = receiver(self.c, "/queues/big").receive(timeout=30)
        self.assertEqual(m.body, body)


if __name__ == "__main__":
    main()
