#!/usr/bin/python3
"""04: competing consumers on one queue — round robin, no duplicates, no
loss, even with consumers on separate connections."""
import collections
import threading
import unittest

from harness import Broker, Message, connect, main, receiver, sender


class CompetingConsumers(unittest.TestCase):
    def test_three_consumers_share_without_duplicates_or_loss(self):
        with Broker() as b:
            N = 3000
            got = collections.defaultdict(list)
            conns = [connect(b) for _ in range(3)]
            rcvs = [receiver(c, "/queues/work", credit=50) for c in conns]
            done = threading.Event()

            def consume(i):
                while not done.is_set():
                    try:
                        m = rcvs[i].receive(timeout=1)
                    except Exception:
                        continue
                    got[i].append(m.body)
                    rcvs[i].accept()

            # Each BlockingConnection is driven by its own thread.
            threads = [threading.Thread(target=consume, args=(i,)) for i in range(3)]
            for t in threads:
                t.start()
            pc = connect(b)
            s = sender(pc, "/queues/work")
            for i in range(N):
                s.send(Message(body=i))
            pc.close()
            for _ in range(100):
                if sum(len(v) for v in got.values()) >= N:
                    break
                threading.Event().wait(0.1)
            done.set()
            for t in threads:
                t.join()
            for c in conns:
                c.close()
            everything = sorted(x for v in got.values() for x in v)
            self.assertEqual(everything, list(range(N)), "each message exactly once")
            for i in range(3):
                self.assertGreater(len(got[i]), N // 10, f"consumer {i} got {len(got[i])}: not round robin")
                self.assertEqual(got[i], sorted(got[i]), "each consumer sees queue order")


if __name__ == "__main__":
    main()
