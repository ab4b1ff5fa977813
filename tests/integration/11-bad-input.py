#!/usr/bin/python3
"""11: bad input gets an AMQP error and a closed socket, never a crash or a
hang: garbage, skipped SASL, undecodable and wrongly typed performatives,
oversized frames, bad logins, and the configured limits on connections and
links. After each, the broker still serves."""
import os
import subprocess
import unittest

from proton import uint

from harness import (SurvivorTest, config_file, AMQP_HEADER, ATTACH, BEGIN, CLOSE, OPEN, SASL_HEADER, SASL_OUTCOME, Broker, Message, Raw,
                     connect, main, perf, receiver, sender)


def condition_of(frame):
    """The error condition name of a close/detach frame."""
    fields = frame[3] or []
    err = fields[0] if frame[2] == CLOSE else (fields[2] if len(fields) > 2 else None)
    return str(err.value[0]) if err is not None else None


class BadInput(SurvivorTest):
    def test_garbage_bytes_get_our_header_and_a_closed_socket(self):
        # The spec's protocol negotiation: an unknown header is answered
        # with the header the broker serves (SASL first), then the socket
        # closes; no frames (16-protocol-states.py has the other headers).
        r = Raw(self.b.port)
        r.send(b"GET / HTTP/1.1\r\nHost: plexus\r\n\r\n")
        self.assertEqual(r.read(), SASL_HEADER)
        self.assertTrue(r.closed(3))
        self.b.wait_log("protocol header 'GET / HT' (not an AMQP 1.0 header) is not served here")

    def test_random_bytes_after_a_valid_header(self):
        r = Raw(self.b.port)
        r.send(SASL_HEADER + os.urandom(64))
        self.assertTrue(r.closed(3), "the socket must not be left open and stuck")

    def test_skipping_sasl_is_anonymous_access(self):
        # As proton-c clients do by default: allowed where ANONYMOUS is, as
        # the anonymous user (guest, from this host). See Limits for the
        # refusals.
        r = Raw(self.b.port)
        r.send(AMQP_HEADER + r.frame(perf(OPEN, "no-sasl")))
        self.assertEqual(r.read(), AMQP_HEADER)
        self.assertEqual(r.expect(OPEN)[2], OPEN)
        self.b.wait_log("(user guest, container no-sasl)")

    def assert_decode_error(self, r, text):
        close = r.expect(CLOSE)
        self.assertEqual(condition_of(close), "amqp:decode-error")
        self.assertIn(text, str(close[3][0].value[1]))
        self.assertTrue(r.closed(3))

    def test_undecodable_performative_is_a_decode_error(self):
        r = Raw(self.b.port)
        r.login()
        self.assertEqual(r.read(), AMQP_HEADER)
        r.send(b"\x00\x00\x00\x10\x02\x00\x00\x00" + b"\x00\x53\x10\xff\xff\xff\xff\xff")
        self.assert_decode_error(r, "cannot be decoded")

    def test_wrongly_typed_open_is_a_decode_error(self):
        r = Raw(self.b.port)
        r.login()
        self.assertEqual(r.read(), AMQP_HEADER)
        r.send_frame(perf(OPEN, 12345))  # container-id must be a string
        self.assert_decode_error(r, "open: field 1 must be a string")

    def test_wrongly_typed_attach_is_a_decode_error(self):
        r = Raw(self.b.port)
        r.open()
        r.send_frame(perf(BEGIN, None, uint(0), uint(100), uint(100)))
        r.expect(BEGIN)
        r.send_frame(perf(ATTACH, "x", "handle-as-string", False))
        self.assert_decode_error(r, "attach: field 2 must be a uint")

    def test_missing_mandatory_field_is_a_decode_error(self):
        r = Raw(self.b.port)
        r.open()
        r.send_frame(perf(BEGIN, None))  # next-outgoing-id and the windows are mandatory
        self.assert_decode_error(r, "begin: field 2 is mandatory")

    def test_unknown_performative_is_a_decode_error(self):
        r = Raw(self.b.port)
        r.open()
        r.send_frame(perf(0x77, 1, 2))
        self.assert_decode_error(r, "unknown performative")

    def test_performative_split_across_reads_is_still_checked(self):
        r = Raw(self.b.port)
        r.open()
        frame = r.frame(perf(BEGIN, None, "zero", uint(100), uint(100)))
        for i in range(len(frame)):  # one byte at a time
            r.send(frame[i:i + 1])
            __import__("time").sleep(0.002)
        self.assert_decode_error(r, "begin: field 2 must be a uint")

    def test_frame_over_max_frame_size_is_refused(self):
        r = Raw(self.b.port)
        opened = r.open()
        max_frame = opened[3][2]
        self.assertEqual(max_frame, 1 << 20)
        r.send_frame(perf(BEGIN, None, uint(0), uint(100), uint(100)))
        r.send(b"\x00\x20\x00\x10\x02\x00\x00\x00" + b"\x00" * 4096)  # claims 2 MiB + 16
        close = r.expect(CLOSE)
        self.assertEqual(condition_of(close), "amqp:connection:framing-error")
        self.assertTrue(r.closed(3))

    def test_attach_on_a_session_that_does_not_exist(self):
        r = Raw(self.b.port)
        r.open()
        r.send_frame(perf(ATTACH, "orphan", uint(0), False), channel=7)
        close = r.expect(CLOSE)
        self.assertIsNotNone(condition_of(close))
        self.assertTrue(r.closed(3))

    def test_wrong_password_and_unknown_user(self):
        for user, pw in (("guest", "wrong"), ("nobody", "guest"), ("guest", "guest2")):
            with self.assertRaises(Exception) as e:
                connect(self.b, user=user, password=pw)
            self.assertIn("unauthorized-access", str(e.exception))
        self.assertIn("authentication failed for nobody", self.b.log())

    def test_sasl_with_an_unoffered_mechanism(self):
        r = Raw(self.b.port)
        r.send(SASL_HEADER + r.frame(perf(0x41, __import__("proton").symbol("CRAM-MD5"), b"x"), ftype=1))
        outcome = r.expect(SASL_OUTCOME)
        self.assertNotEqual(int(outcome[3][0]), 0)  # not ok
        self.assertTrue(r.closed(3))


class Limits(unittest.TestCase):
    def config(self, text):
        return config_file(self, text)

    def test_too_many_connections(self):
        with Broker(config=self.config("amqp = { max_connections = 2; };")) as b:
            c1, c2 = connect(b), connect(b)
            with self.assertRaises(Exception) as e:
                connect(b)
            self.assertIn("resource-limit-exceeded", str(e.exception))
            c1.close()
            for _ in range(50):  # the refused one and c1 are being counted out
                try:
                    c3 = connect(b)
                    break
                except Exception:
                    __import__("time").sleep(0.05)
            else:
                self.fail("a connection slot never came free")
            c3.close()
            c2.close()

    def test_too_many_links(self):
        with Broker(config=self.config("amqp = { max_links = 3; };")) as b:
            c = connect(b)
            links = [sender(c, f"/queues/l{i}") for i in range(3)]
            with self.assertRaises(Exception) as e:
                sender(c, "/queues/l3")
            self.assertIn("resource-limit-exceeded", str(e.exception))
            links[0].close()
            sender(c, "/queues/l4").send(Message(body="fits again"))
            c.close()

    def test_anonymous_can_be_switched_off(self):
        with Broker(config=self.config("amqp = { anonymous = false; };")) as b:
            with self.assertRaises(Exception):
                connect(b, allowed_mechs="ANONYMOUS")
            r = Raw(b.port)  # and skipping SASL is no way around it
            r.send(AMQP_HEADER + r.frame(perf(OPEN, "sneaky")))
            self.assertTrue(r.closed(3), "a client that skips authentication is let in")
            b.wait_log("amqp:connection:policy-error")
            connect(b, user="guest", password="guest").close()

    def test_anonymous_user_must_exist(self):
        conf = self.config('amqp = { anonymous_user = "ghost"; };')
        with Broker(config=conf) as b:
            with self.assertRaises(Exception) as e:
                connect(b, allowed_mechs="ANONYMOUS")
            self.assertIn("unauthorized-access", str(e.exception))
            r = Raw(b.port)  # nor without SASL
            r.send(AMQP_HEADER + r.frame(perf(OPEN, "no-sasl")))
            close = r.expect(CLOSE)
            self.assertEqual(condition_of(close), "amqp:unauthorized-access")

    def test_configured_users_replace_guest(self):
        conf = self.config('users = ( { name = "app"; password = "s3cret"; tags = "management"; } );')
        with Broker(config=conf) as b:
            connect(b, user="app", password="s3cret").close()
            with self.assertRaises(Exception):
                connect(b, user="guest", password="guest")

    def test_guest_is_refused_from_another_host(self):
        ips = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
        ips = [ip for ip in ips if "." in ip and not ip.startswith("127.")]
        if not ips:
            self.skipTest("this machine has no non-loopback IPv4 address")
        with Broker("--listen", "0.0.0.0:0") as b:
            port = int(b.log().split("amqp listener on 0.0.0.0:0 (port ")[1].split(")")[0])
            from proton.utils import BlockingConnection
            with self.assertRaises(Exception) as e:
                BlockingConnection(f"amqp://guest:guest@{ips[0]}:{port}", timeout=5)
            self.assertIn("unauthorized-access", str(e.exception))
            BlockingConnection(f"amqp://guest:guest@127.0.0.1:{port}", timeout=5).close()


if __name__ == "__main__":
    main()
