#!/usr/bin/python3
"""Durable queues and persistent messages across crashes.

- kill -9 at a random moment while a publisher and a consumer run, twenty
  times over: every message the broker confirmed and the consumer had not
  yet accepted is there afterwards exactly once; a message seen again is
  marked as delivered before (delivery-count >= 1);
- a torn write at the end of a segment (the tail of a crash mid-append) is
  cut off and reported; everything before it is served;
- persistent messages on a durable queue survive a clean restart; transient
  ones and non-durable queues do not;
- a full disk: publishers of persistent messages are refused with a clear
  error while the broker goes on serving what it has (on a small tmpfs the
  test mounts itself; skipped where it cannot mount one); the disk alarm
  stops publishers' credit altogether.
"""
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

from admin_api import Api
from harness import Broker, Message, Props, config_file, connect, main, receive_all, receiver, send_outcomes, sender


def body(i):
    return json.dumps({"id": i}).encode()


def ident(m):
    return json.loads(m.body)["id"]


class Workload:
    """A publisher and a consumer, each on its own connection and thread,
    until the broker goes away. Records what was confirmed and accepted."""

    def __init__(self, url, queue, first_id):
        self.url, self.queue, self.next_id = url, queue, first_id
        self.confirmed, self.seen = [], []  # seen: (id, delivery_count) in order
        self.accepted = set()
        self.threads = [threading.Thread(target=self.publish), threading.Thread(target=self.consume)]

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        for t in self.threads:
            t.join(30)
            assert not t.is_alive(), "a client thread hung after the broker was killed"

    def publish(self):
        try:
            c = connect_url(self.url)
            s = c.create_sender(self.queue)
            while True:
                i = self.next_id
                s.send(Message(body=body(i), durable=True, content_type="application/json"))
                self.confirmed.append(i)  # send() returns once the broker accepted it
                self.next_id += 1
        except Exception:
            pass

    def consume(self):
        try:
            c = connect_url(self.url)
            r = c.create_receiver(self.queue, credit=20)
            while True:
                m = r.receive(timeout=5)
                self.seen.append((ident(m), m.delivery_count))
                r.accept()
                self.accepted.add(ident(m))
        except Exception:
            pass


def connect_url(url):
    from proton.utils import BlockingConnection
    return BlockingConnection(url, timeout=5)


class CrashLoop(unittest.TestCase):
    def test_kill_9_twenty_times_loses_nothing_confirmed(self):
        data = tempfile.mkdtemp(prefix="plexus-crash-")
        self.addCleanup(shutil.rmtree, data, True)
        rng = random.Random(os.environ.get("PLEXUS_SEED", "14"))
        history = []  # (id, delivery_count) of every delivery in every round
        confirmed, accepted = set(), set()
        next_id = 0
        for round_ in range(20):
            b = Broker(data_dir=data).start()
            try:
                w = Workload(b.url, "/queues/crash", next_id)
                w.start()
                time.sleep(rng.uniform(0.2, 1.2))
                b.proc.send_signal(signal.SIGKILL)
                b.proc.wait(10)
                w.join()
            finally:
                b.logf.close()
                b.tmp.cleanup()
            history += w.seen
            confirmed |= set(w.confirmed)
            accepted |= w.accepted
            next_id = w.next_id + 1  # the one in flight may or may not be there: never reuse its id
        self.assertGreater(len(confirmed), 100, "too little traffic to test anything")
        # What is left, read by a last broker that stops cleanly.
        with Broker(data_dir=data) as b:
            c = connect(b)
            left = receive_all(receiver(c, "/queues/crash", credit=500), idle=1.5)
            c.close()
        final = [(ident(m), m.delivery_count) for m in left]
        ids = [i for i, _ in final]
        self.assertEqual(len(ids), len(set(ids)), "a message is in the queue twice")
        missing = confirmed - accepted - set(ids)
        self.assertFalse(missing, f"{len(missing)} confirmed, never accepted messages lost, e.g. {sorted(missing)[:5]}")
        # A message delivered before must say so when it comes again.
        seen_before = set()
        for i, dc in history + final:
            if i in seen_before:
                self.assertGreaterEqual(dc, 1, f"message {i} came again as if new")
            seen_before.add(i)
        # and nothing appears that nobody sent
        self.assertTrue(set(ids) <= set(range(next_id)))


def logged_then_killed(test, queue, n=50):
    """n persistent messages confirmed into queue, then kill -9: the data
    directory and the queue's segment files, oldest first."""
    data = tempfile.mkdtemp(prefix="plexus-log-")
    test.addCleanup(shutil.rmtree, data, True)
    b = Broker(data_dir=data).start()
    c = connect(b)
    s = sender(c, "/queues/" + queue)
    for i in range(n):
        s.send(Message(body=body(i), durable=True))
    c.close()
    b.stop(signal.SIGKILL)
    b.tmp.cleanup()
    segs = sorted(glob.glob(os.path.join(data, "queues", "*", "*.seg")))
    test.assertTrue(segs)
    return data, segs


class TornTail(unittest.TestCase):
    def test_a_torn_write_is_cut_and_the_rest_served(self):
        data, segs = logged_then_killed(self, "torn")
        size = os.path.getsize(segs[-1])
        with open(segs[-1], "ab") as f:  # a record header and half of what it promises
            f.write(bytes([0, 1, 0, 0, 9, 9, 9, 9, 1]) + os.urandom(40))
        with Broker(data_dir=data) as b:
            c = connect(b)
            got = [ident(m) for m in receive_all(receiver(c, "/queues/torn", credit=100))]
            c.close()
            self.assertIn("torn write", b.log())
        self.assertEqual(got, list(range(50)))
        self.assertLessEqual(os.path.getsize(segs[-1]) if os.path.exists(segs[-1]) else 0, size)


class Damage(unittest.TestCase):
    def test_damage_inside_a_log_is_skipped_counted_and_shown(self):
        data, segs = logged_then_killed(self, "damaged")
        size = os.path.getsize(segs[-1])
        with open(segs[-1], "r+b") as f:  # scribble over the middle of the log
            f.seek(size // 2)
            f.write(b"\xde\xad" * 20)
        with Broker(data_dir=data) as b:
            c = connect(b)
            got = [ident(m) for m in receive_all(receiver(c, "/queues/damaged", credit=100))]
            c.close()
            self.assertIn("damaged bytes", b.log())
            q = Api(b.admin_port).get("/api/queues/%2F/damaged")[1]
            self.assertGreaterEqual(q["log_damage"], 1)
        # what is intact is served, in order; what was hit is not invented
        self.assertEqual(got, sorted(got))
        self.assertGreaterEqual(len(got), 45)
        self.assertLess(len(got), 50)
        self.assertTrue(set(got) <= set(range(50)))


class CleanRestart(unittest.TestCase):
    def test_persistent_messages_and_durable_queues_only(self):
        data = tempfile.mkdtemp(prefix="plexus-restart-")
        self.addCleanup(shutil.rmtree, data, True)
        with Broker(data_dir=data) as b:
            c = connect(b)
            s = sender(c, "/queues/keep")
            for i in range(10):
                s.send(Message(body=body(i), durable=True))
            for i in range(10, 15):
                s.send(Message(body=body(i), durable=False))
            # a non-durable queue, made by a link that says so
            t = c.create_sender("/queues/gone", options=Props({"durable": False}))
            t.send(Message(body=body(99), durable=True))
            c.close()
        with Broker(data_dir=data) as b:
            c = connect(b)
            got = [ident(m) for m in receive_all(receiver(c, "/queues/keep", credit=100))]
            self.assertEqual(got, list(range(10)))
            # the non-durable queue is gone with its message
            with self.assertRaises(Exception):
                r = c.create_receiver("/queues/gone", options=Props({"durable": False}))
                r.receive(timeout=1)
            c.close()


def mount_tmpfs(path, size):
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], capture_output=True)
        return r.returncode == 0
    except OSError:
        return False


class DiskFull(unittest.TestCase):
    def setUp(self):
        self.mnt = tempfile.mkdtemp(prefix="plexus-full-")
        if not mount_tmpfs(self.mnt, "3m"):
            os.rmdir(self.mnt)
            self.skipTest("cannot mount a small tmpfs here (needs root)")
        self.addCleanup(lambda: (subprocess.run(["umount", "-l", self.mnt]), os.rmdir(self.mnt)))

    def test_full_disk_refuses_persistent_messages_and_serves_reads(self):
        conf = config_file(self, "storage = { disk_free_limit = 0; segment_size = 262144; };\n")
        with Broker(config=conf, data_dir=os.path.join(self.mnt, "d")) as b:
            payload = b"x" * 65536
            results, why = send_outcomes(b, "/queues/full", [Message(body=payload, durable=True) for _ in range(80)],
                                         descriptions=True)  # 5 MiB into 3 MiB
            accepted = sum(1 for r in results if r[0] == "accepted")
            refused = [i for i, r in enumerate(results) if r[0] == "rejected"]
            self.assertGreater(accepted, 10)
            self.assertTrue(refused, f"a full disk took everything: {results}")
            self.assertEqual(results[refused[0]][1], "amqp:resource-limit-exceeded")
            self.assertIn("disk full", why[refused[0]])
            self.assertIn("cannot write", b.log())
            # reads go on: everything accepted is there, once
            c = connect(b)
            got = receive_all(receiver(c, "/queues/full", credit=200), idle=1)
            self.assertEqual(len(got), accepted)
            # with the space freed (settled segments go), writing resumes
            time.sleep(1.5)
            s = sender(c, "/queues/full")
            s.send(Message(body=b"again", durable=True))
            c.close()
            self.assertIsNone(b.proc.poll(), "the broker exited on a full disk")

    def test_disk_alarm_stops_credit_but_not_consumers(self):
        conf = config_file(self, "storage = { disk_free_limit = 104857600; };\n")  # 100 MiB on a 3 MiB disk
        with Broker(config=conf, data_dir=os.path.join(self.mnt, "d")) as b:
            b.wait_log("disk alarm")
            c = connect(b, timeout=2)
            s = sender(c, "/queues/alarm")
            with self.assertRaises(Exception):  # no credit: the send times out
                s.send(Message(body=b"blocked", durable=True))
            c.close()


if __name__ == "__main__":
    main()
