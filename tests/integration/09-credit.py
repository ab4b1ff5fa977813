#!/usr/bin/python3
"""09: link credit — messages go out only against credit, drain is
honoured both with messages waiting and with none."""

from harness import BrokerTest, Message, main, receiver, sender


class Credit(BrokerTest):
    def wait_for(self, cond, timeout=5):
        """Runs the connection until cond() holds or timeout passes."""
        try:
            self.c.wait(cond, timeout=timeout)
        except Exception:
            pass
        return cond()

    def settle_down(self, seconds):
        """Runs the connection for a while, so anything in flight arrives."""
        self.wait_for(lambda: False, timeout=seconds)

    def test_credit_of_one_gives_exactly_one(self):
        s = sender(self.c, "/queues/credit1")
        for i in range(3):
            s.send(Message(body=i))
        r = receiver(self.c, "/queues/credit1", credit=0)
        r.link.flow(1)
        self.assertTrue(self.wait_for(lambda: r.fetcher.has_message == 1))
        self.settle_down(0.5)
        self.assertEqual(r.fetcher.has_message, 1, "one credit, one message")
        self.assertEqual(r.link.credit, 0)
        r.link.flow(2)
        self.assertTrue(self.wait_for(lambda: r.fetcher.has_message == 3))

    def test_no_credit_no_delivery(self):
        sender(self.c, "/queues/credit0").send(Message(body="wait"))
        r = receiver(self.c, "/queues/credit0", credit=0)
        self.settle_down(0.5)
        self.assertEqual(r.fetcher.has_message, 0)

    def test_drain_delivers_what_is_there_then_uses_up_the_credit(self):
        s = sender(self.c, "/queues/drain")
        for i in range(2):
            s.send(Message(body=i))
        r = receiver(self.c, "/queues/drain", credit=0)
        r.link.drain(10)
        self.assertTrue(self.wait_for(lambda: r.fetcher.has_message == 2 and r.link.credit == 0),
                        f"got {r.fetcher.has_message} messages, credit left {r.link.credit}")

    def test_drain_on_an_empty_queue_echoes_at_once(self):
        r = receiver(self.c, "/queues/drain-empty", credit=0)
        r.link.drain(7)
        self.assertTrue(self.wait_for(lambda: r.link.credit == 0, timeout=3))
        self.assertEqual(r.fetcher.has_message, 0)
        # The link still works afterwards.
        sender(self.c, "/queues/drain-empty").send(Message(body="later"))
        r.link.flow(1)
        self.assertTrue(self.wait_for(lambda: r.fetcher.has_message == 1))


if __name__ == "__main__":
    main()
