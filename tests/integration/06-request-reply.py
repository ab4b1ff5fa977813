#!/usr/bin/python3
"""06: request/reply — a dynamic reply queue per client, replies through
the anonymous relay, correlation kept, the reply queue gone with its link."""
import unittest

from harness import Broker, Message, connect, main, receiver, sender


class RequestReply(unittest.TestCase):
    def test_round_trip_through_a_dynamic_reply_queue(self):
        with Broker() as b:
            srv, cli = connect(b), connect(b)
            requests = receiver(srv, "/queues/rpc")
            relay = sender(srv, None)
            replies = cli.create_receiver(None, dynamic=True, name="replies")
            addr = replies.remote_source.address
            self.assertRegex(addr, r"^/queues/amq\.gen-")
            out = sender(cli, "/queues/rpc")
            for i in range(20):
                out.send(Message(body={"n": i}, reply_to=addr, correlation_id=f"c{i}",
                                 properties={"trace": f"t{i}"}, content_type="application/json"))
                req = requests.receive(timeout=5)
                requests.accept()
                self.assertEqual((req.reply_to, req.correlation_id, req.properties), (addr, f"c{i}", {"trace": f"t{i}"}))
                relay.send(Message(address=req.reply_to, correlation_id=req.correlation_id,
                                   body={"n2": req.body["n"] * 2}, properties=req.properties))
                rep = replies.receive(timeout=5)
                replies.accept()
                self.assertEqual((rep.correlation_id, rep.body, rep.properties),
                                 (f"c{i}", {"n2": 2 * i}, {"trace": f"t{i}"}))
            # The reply queue is exclusive to the client's connection ...
            with self.assertRaises(Exception) as e:
                srv.create_receiver(addr, name="steal")
            self.assertIn("resource-locked", str(e.exception))
            # ... and gone once its link is: a reply to it is unroutable.
            replies.close()
            for _ in range(50):
                try:
                    relay.send(Message(address=addr, body="late"))
                except Exception as e:
                    self.assertIn("RELEASED", str(e))
                    break
            else:
                self.fail("the dynamic reply queue outlived its link")
            srv.close()
            cli.close()

    def test_each_client_gets_its_own_reply_queue(self):
        with Broker() as b:
            c1, c2 = connect(b), connect(b)
            a1 = c1.create_receiver(None, dynamic=True, name="r").remote_source.address
            a2 = c2.create_receiver(None, dynamic=True, name="r").remote_source.address
            self.assertNotEqual(a1, a2)
            c1.close()
            c2.close()


if __name__ == "__main__":
    main()
