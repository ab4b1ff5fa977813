#!/usr/bin/python3
"""08: delivery outcomes and redelivery — accepted, released, modified
(delivery-failed, undeliverable-here), rejected; unsettled messages of a
link that detaches or a connection that drops come back counted."""

from harness import BrokerTest, Delivery, Message, Props, connect, main, receive_all, receiver, sender, settle


class Outcomes(BrokerTest):
    def put(self, q, *bodies):
        s = sender(self.c, "/queues/" + q)
        for body in bodies:
            s.send(Message(body=body))
        s.close()

    def test_accepted_is_gone(self):
        self.put("acc", "a")
        r = receiver(self.c, "/queues/acc")
        self.assertEqual(r.receive(timeout=5).body, "a")
        r.accept()
        r.close()
        self.assertEqual(receive_all(receiver(self.c, "/queues/acc")), [])

    def test_released_comes_back_unchanged_and_first(self):
        self.put("rel", "first", "second")
        r = receiver(self.c, "/queues/rel")
        m = r.receive(timeout=5)
        self.assertEqual((m.body, m.delivery_count), ("first", 0))
        settle(r, Delivery.RELEASED)
        r.close()  # (proton may send the next flow before the release: look from a new link)
        again = receive_all(receiver(self.c, "/queues/rel", credit=5))
        self.assertEqual([(m.body, m.delivery_count) for m in again], [("first", 0), ("second", 0)])

    def test_modified_delivery_failed_counts_a_delivery(self):
        self.put("mod", "m")
        r = receiver(self.c, "/queues/mod")
        for expect in (0, 1, 2):
            m = r.receive(timeout=5)
            self.assertEqual((m.body, m.delivery_count), ("m", expect))
            settle(r, Delivery.MODIFIED, failed=True)
        self.assertEqual(r.receive(timeout=5).delivery_count, 3)
        r.accept()

    def test_modified_undeliverable_here_goes_to_another_link(self):
        self.put("elsewhere", "x")
        a = receiver(self.c, "/queues/elsewhere")
        self.assertEqual(a.receive(timeout=5).body, "x")
        settle(a, Delivery.MODIFIED, undeliverable=True)
        with self.assertRaises(Exception):
            a.receive(timeout=0.7)  # not to this link again
        b = receiver(connect(self.b), "/queues/elsewhere")
        self.assertEqual(b.receive(timeout=5).body, "x")
        b.accept()

    def test_rejected_without_dead_letter_exchange_is_dropped(self):
        self.put("rej", "bad", "good")
        r = receiver(self.c, "/queues/rej")
        self.assertEqual(r.receive(timeout=5).body, "bad")
        settle(r, Delivery.REJECTED)
        self.assertEqual(r.receive(timeout=5).body, "good")
        r.accept()
        self.assertEqual(receive_all(r), [])

    def test_rejected_goes_to_the_dead_letter_queue(self):
        dlq = receiver(self.c, "/queues/rej-dlq")
        s = sender(self.c, "/queues/rej-src", options=Props({"x-dead-letter-exchange": "",
                                                            "x-dead-letter-routing-key": "rej-dlq"}))
        s.send(Message(body="poison"))
        r = receiver(self.c, "/queues/rej-src")
        r.receive(timeout=5)
        settle(r, Delivery.REJECTED)
        self.assertEqual(dlq.receive(timeout=5).body, "poison")
        dlq.accept()

    def test_detach_with_unsettled_returns_them_counted(self):
        self.put("detach", "u1", "u2")
        r = receiver(self.c, "/queues/detach", credit=2)
        self.assertEqual([r.receive(timeout=5).body, r.receive(timeout=5).body], ["u1", "u2"])
        r.close()  # never settled
        again = receive_all(receiver(self.c, "/queues/detach", credit=2))
        self.assertEqual([(m.body, m.delivery_count) for m in again], [("u1", 1), ("u2", 1)])

    def test_dropped_connection_returns_unsettled_counted(self):
        self.put("drop", "d1")
        other = connect(self.b)
        r = receiver(other, "/queues/drop")
        self.assertEqual(r.receive(timeout=5).body, "d1")
        other.conn.transport.close_tail()  # vanish without a close
        other.conn.transport.close_head()
        try:
            other.close()
        except Exception:
            pass
        m = receiver(self.c, "/queues/drop").receive(timeout=5)
        self.assertEqual((m.body, m.delivery_count), ("d1", 1))


if __name__ == "__main__":
    main()
