#!/usr/bin/python3
"""12: peers that vanish — a publisher mid-transfer of a multi-frame
message, a consumer holding unsettled messages killed with SIGKILL. The
broker loses nothing it took, keeps no partial message, and keeps serving."""
import os
import signal
import subprocess
import sys
import textwrap
import time
import unittest

from proton import uint

from harness import (ATTACH, BEGIN, FLOW, TRANSFER, Broker, Described, Message, Raw, connect, encode, main, perf,
                     receive_all, receiver, sender, ulong)


class VanishingPeer(unittest.TestCase):
    def test_publisher_gone_mid_transfer_leaves_no_partial_message(self):
        with Broker() as b:
            r = Raw(b.port)
            r.open()
            r.send_frame(perf(BEGIN, None, uint(0), uint(1000), uint(1000)))
            r.expect(BEGIN)
            target = Described(ulong(0x29), ["/queues/half"])
            r.send_frame(perf(ATTACH, "half-sender", uint(0), False, None, None, None, target, None, None,
                              uint(0)))
            r.expect(ATTACH)
            r.expect(FLOW)  # credit: the broker is ready
            body = encode(Described(ulong(0x75), b"x" * 200000))  # a data section
            first = body[:60000]
            r.send_frame(perf(TRANSFER, uint(0), uint(0), b"t1", uint(0), False, True), payload=first)
            time.sleep(0.2)
            r.s.shutdown(2)  # gone, in the middle of the message
            r.close()
            time.sleep(0.3)
            c = connect(b)
            self.assertEqual(receive_all(receiver(c, "/queues/half")), [], "a partial message was queued")
            sender(c, "/queues/half").send(Message(body="whole"))
            self.assertEqual([m.body for m in receive_all(receiver(c, "/queues/half"))], ["whole"])
            c.close()

    def test_consumer_killed_with_unsettled_messages_gets_them_redelivered(self):
        with Broker() as b:
            c = connect(b)
            s = sender(c, "/queues/victim")
            for i in range(3):
                s.send(Message(body=i))
            child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
                import time
                from proton.utils import BlockingConnection
                c = BlockingConnection("{b.url}", timeout=10)
                r = c.create_receiver("/queues/victim", name="doomed", credit=3)
                for _ in range(3):
                    r.receive(timeout=10)
                print("holding", flush=True)
                time.sleep(60)
            """)], stdout=subprocess.PIPE, text=True, env=dict(os.environ))
            self.assertEqual(child.stdout.readline().strip(), "holding")
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            got = receive_all(receiver(c, "/queues/victim", credit=5), idle=2)
            self.assertEqual([(m.body, m.delivery_count) for m in got], [(0, 1), (1, 1), (2, 1)])
            c.close()

    def test_publisher_killed_while_sending_does_not_hurt_the_broker(self):
        with Broker() as b:
            child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
                from proton import Message
                from proton.utils import BlockingConnection
                c = BlockingConnection("{b.url}", timeout=10)
                s = c.create_sender("/queues/flood", name="flood")
                print("sending", flush=True)
                i = 0
                while True:
                    s.send(Message(body=b"y" * 50000))
                    i += 1
            """)], stdout=subprocess.PIPE, text=True)
            self.assertEqual(child.stdout.readline().strip(), "sending")
            time.sleep(0.5)
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            c = connect(b)
            got = receive_all(receiver(c, "/queues/flood", credit=100), idle=1)
            self.assertGreater(len(got), 0)
            self.assertTrue(all(m.body == b"y" * 50000 for m in got), "every queued message is whole")
            c.close()


if __name__ == "__main__":
    main()
