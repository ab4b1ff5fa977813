#!/usr/bin/python3
"""17: the settle modes a client asks for at attach are the ones the broker
answers with (clients such as Azure/go-amqp refuse any other) and the ones
it keeps: settled, unsettled and mixed senders, first and second
receivers; rcv-settle-mode second where the broker does not support it
(links that publish) is refused with amqp:not-implemented, not changed."""
import unittest

from proton import Link
from proton.reactor import LinkOption
from proton.utils import LinkDetached

from harness import BrokerTest, Message, main, name

SND = {"settled": Link.SND_SETTLED, "unsettled": Link.SND_UNSETTLED, "mixed": Link.SND_MIXED}
RCV = {"first": Link.RCV_FIRST, "second": Link.RCV_SECOND}


class Modes(LinkOption):
    def __init__(self, snd, rcv):
        self.snd, self.rcv = snd, rcv

    def apply(self, link):
        link.snd_settle_mode = SND[self.snd]
        link.rcv_settle_mode = RCV[self.rcv]


class SettleModes(BrokerTest):
    def sender(self, address, snd, rcv):
        return self.c.create_sender(address, name=name("snd"), options=Modes(snd, rcv))

    def receiver(self, address, snd, rcv, credit=10):
        return self.c.create_receiver(address, name=name("rcv"), credit=credit, options=Modes(snd, rcv))

    def assert_answered(self, blocking_link, snd, rcv):
        link = blocking_link.link
        self.assertEqual(link.remote_snd_settle_mode, SND[snd], f"asked snd-settle-mode {snd}")
        self.assertEqual(link.remote_rcv_settle_mode, RCV[rcv], f"asked rcv-settle-mode {rcv}")

    def test_publishers_get_the_sender_settle_mode_they_asked_for(self):
        for snd in SND:
            with self.subTest(snd):
                q = f"/queues/modes-pub-{snd}"
                s = self.sender(q, snd, "first")
                self.assert_answered(s, snd, "first")
                # and it works in that mode: presettled sends arrive too
                s.send(Message(body=f"in {snd}"), timeout=5)
                r = self.receiver(q, "unsettled", "first")
                self.assertEqual(r.receive(timeout=5).body, f"in {snd}")
                r.accept()
                s.close()
                r.close()

    def test_publisher_asking_rcv_settle_mode_second_is_refused_clearly(self):
        with self.assertRaises(LinkDetached) as e:
            self.sender("/queues/modes-second", "unsettled", "second")
        cond = e.exception.link.remote_condition
        self.assertEqual(cond.name, "amqp:not-implemented")
        self.assertIn("rcv-settle-mode second is not supported", cond.description)

    def test_consumers_get_the_modes_they_asked_for(self):
        for snd in SND:
            for rcv in RCV:
                with self.subTest(snd=snd, rcv=rcv):
                    q = f"/queues/modes-con-{snd}-{rcv}"
                    s = self.sender(q, "unsettled", "first")
                    s.send(Message(body="m"), timeout=5)
                    r = self.receiver(q, snd, rcv)
                    self.assert_answered(r, snd, rcv)
                    self.assertEqual(r.receive(timeout=5).body, "m")
                    delivery = r.fetcher.unsettled[0] if r.fetcher.unsettled else None
                    if snd == "settled":
                        # at most once: the broker sent it settled
                        self.assertIsNone(delivery)
                    else:
                        self.assertFalse(delivery.settled, "unsettled and mixed: the broker waits for an outcome")
                        r.accept()
                    r.close()
                    s.close()

    def test_consumer_in_second_mode_sees_the_broker_settle_first(self):
        # rcv-settle-mode second: the client states its outcome without
        # settling; the broker settles (and the message is gone), then the
        # client settles.
        q = "/queues/modes-second-con"
        s = self.sender(q, "unsettled", "first")
        s.send(Message(body="twice?"), timeout=5)
        r = self.receiver(q, "unsettled", "second")
        self.assertEqual(r.receive(timeout=5).body, "twice?")
        d = r.fetcher.unsettled.popleft()
        d.update(d.ACCEPTED)  # the outcome, not settled
        self.c.wait(lambda: d.settled, timeout=5,  # settled by the remote (pn_delivery_settled)
                    msg="the broker never settled the delivery after its outcome")
        d.settle()
        r.close()
        r2 = self.receiver(q, "unsettled", "first")
        with self.assertRaises(Exception):
            r2.receive(timeout=0.5)  # accepted once: not delivered again


if __name__ == "__main__":
    main()
