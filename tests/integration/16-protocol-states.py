#!/usr/bin/python3
"""16: what may arrive in which state. Each protocol violation of the
connection, session and link state machines (AMQP 1.0 part 2) ends the
connection with the spec's condition and a description, and the socket
closes; protocol headers the broker does not serve are answered with its
own header (negotiation, 2.2) and the socket closes. After each, a fresh
client is served."""
import time

from proton import Described, ulong, uint, ushort

from harness import (SurvivorTest, AMQP_HEADER, ATTACH, BEGIN, CLOSE, DETACH, DISPOSITION, END, FLOW, OPEN, SASL_HEADER,
                     TRANSFER, Broker, Message, Raw, connect, encode, main, perf, receiver, sender)

SOURCE, TARGET = 0x28, 0x29
TLS_HEADER = b"AMQP\x02\x01\x00\x00"
AMQP091_HEADER = b"AMQP\x00\x00\x09\x01"


def error_of(frame):
    """(condition, description) of a close, end or detach frame."""
    fields = frame[3] or []
    err = fields[2] if frame[2] == DETACH and len(fields) > 2 else (fields[0] if fields else None)
    if err is None:
        return None, None
    return str(err.value[0]), str(err.value[1])


class States(SurvivorTest):
    # -------------------------------------------------------------- helpers

    def raw(self, port=None):
        r = Raw(port or self.b.port)
        self.addCleanup(r.close)
        return r

    def opened(self):
        r = self.raw()
        r.open()
        return r

    def session(self, r, channel=0):
        r.send_frame(perf(BEGIN, None, uint(0), uint(100), uint(100)), channel=channel)
        r.expect(BEGIN)

    def attach_sender(self, r, handle, name, queue):
        """The client sends on this link (role sender = false)."""
        r.send_frame(perf(ATTACH, name, uint(handle), False, None, None, Described(ulong(SOURCE), [None]),
                          Described(ulong(TARGET), [queue])))
        r.expect(ATTACH)

    def attach_receiver(self, r, handle, name, queue):
        r.send_frame(perf(ATTACH, name, uint(handle), True, None, None, Described(ulong(SOURCE), [queue]),
                          Described(ulong(TARGET), [None])))
        r.expect(ATTACH)

    def transfer(self, r, handle, delivery_id=0):
        body = encode(Described(ulong(0x77), "x"))  # amqp-value
        r.send_frame(perf(TRANSFER, uint(handle), uint(delivery_id), b"t%d" % delivery_id, None, False),
                     payload=body)

    def assert_closed_with(self, r, cond, text):
        close = r.expect(CLOSE)
        got, desc = error_of(close)
        self.assertEqual(got, cond, desc)
        self.assertIn(text, desc)
        self.assertTrue(r.closed(3), "the socket must be closed after the close")

    # ------------------------------------------------------ the connection

    def test_second_open(self):
        r = self.opened()
        r.send_frame(perf(OPEN, "again"))
        self.assert_closed_with(r, "amqp:illegal-state", "a second open on an open connection")

    def test_open_below_the_minimum_max_frame_size(self):
        r = self.raw()
        r.login()
        self.assertEqual(r.read(), AMQP_HEADER)
        r.send_frame(perf(OPEN, "tiny", None, uint(511)))
        self.assert_closed_with(r, "amqp:invalid-field", "max-frame-size 511 is below the minimum of 512")

    def test_open_at_the_minimum_max_frame_size_is_fine(self):
        r = self.raw()
        r.login()
        self.assertEqual(r.read(), AMQP_HEADER)
        r.send_frame(perf(OPEN, "small", None, uint(512)))
        r.expect(OPEN)
        self.session(r)

    def test_begin_before_open(self):
        r = self.raw()
        r.login()
        self.assertEqual(r.read(), AMQP_HEADER)
        r.send_frame(perf(BEGIN, None, uint(0), uint(100), uint(100)))
        self.assert_closed_with(r, "amqp:illegal-state", "begin before open")

    def test_frames_after_close_are_not_read(self):
        r = self.opened()
        self.session(r)
        r.send_frame(perf(CLOSE))
        r.send_frame(perf(BEGIN, None, uint(0), uint(100), uint(100)), channel=1)
        close = r.expect(CLOSE)
        self.assertEqual(error_of(close), (None, None))  # the answer to our close, nothing more
        self.assertTrue(r.closed(3))

    def test_protocol_header_in_the_middle_of_the_frames(self):
        r = self.opened()
        r.send(AMQP_HEADER)
        self.assert_closed_with(r, "amqp:connection:framing-error", "a protocol header where a frame was expected")

    # --------------------------------------------------- protocol headers

    def assert_negotiated(self, header, answer):
        r = self.raw()
        r.send(header)
        self.assertEqual(r.read(), answer)
        self.assertTrue(r.closed(3), "the socket must be closed after the header")
        return r

    def test_tls_header_on_a_plain_port(self):
        self.assert_negotiated(TLS_HEADER, SASL_HEADER)
        self.b.wait_log("protocol header 'AMQP 2 1 0 0' (AMQP 1.0 TLS) is not served here; answered 'AMQP 3 1 0 0'")

    def test_amqp_091_header(self):
        # Served by the 0-9-1 front end (test 50): Connection.Start on channel 0, not a header.
        r = self.raw()
        r.send(AMQP091_HEADER)
        deadline = time.time() + 5
        while len(r.buf) < 11 and time.time() < deadline:
            r._fill(0.1)
        self.assertEqual(r.buf[:3], b"\x01\x00\x00", "a method frame on channel 0")
        self.assertEqual(r.buf[7:11], b"\x00\x0a\x00\x0a", "connection.start")

    def test_amqp_091_header_after_sasl(self):
        # Only as the first header: after SASL it is refused as before.
        r = self.raw()
        r.send(SASL_HEADER)
        self.assertEqual(r.read(), SASL_HEADER)
        r.expect(0x40)  # sasl-mechanisms
        r.send(AMQP091_HEADER)
        self.assertEqual(r.read(), AMQP_HEADER)
        self.assertTrue(r.closed(3))
        self.b.wait_log("protocol header 'AMQP 0 0 9 1' (AMQP 0-9-1) is not served here")

    def test_unknown_amqp_versions(self):
        for h in (b"AMQP\x00\x01\x00\x01", b"AMQP\x09\x01\x00\x00", b"AMQP\x03\x02\x00\x00"):
            self.assert_negotiated(h, SASL_HEADER)

    def test_header_split_across_reads(self):
        r = self.raw()
        for b in TLS_HEADER:
            r.send(bytes([b]))
            time.sleep(0.01)
        self.assertEqual(r.read(), SASL_HEADER)
        self.assertTrue(r.closed(3))

    def test_a_second_sasl_header_after_sasl_began(self):
        r = self.raw()
        r.send(SASL_HEADER)
        self.assertEqual(r.read(), SASL_HEADER)
        r.expect(0x40)  # sasl-mechanisms
        r.send(SASL_HEADER)  # only the AMQP header may follow SASL
        self.assertEqual(r.read(), AMQP_HEADER)
        self.assertTrue(r.closed(3))

    # ---------------------------------------------------------- sessions

    def test_begin_on_a_channel_that_has_a_session(self):
        r = self.opened()
        self.session(r, channel=3)
        r.send_frame(perf(BEGIN, None, uint(0), uint(100), uint(100)), channel=3)
        self.assert_closed_with(r, "amqp:illegal-state", "begin on channel 3, which already has a session")

    def test_begin_again_after_end_is_fine(self):
        r = self.opened()
        self.session(r)
        r.send_frame(perf(END))
        r.expect(END)
        self.session(r)
        self.attach_sender(r, 0, "after-end", "/queues/states-after-end")

    def test_begin_replying_to_a_begin_never_sent(self):
        r = self.opened()  # Plexus begins no sessions: any remote-channel is wrong (proton's check)
        r.send_frame(perf(BEGIN, ushort(5), uint(0), uint(100), uint(100)))
        self.assert_closed_with(r, "amqp:invalid-field", "begin reply to unknown channel 5")

    def test_channel_above_channel_max(self):
        r = self.opened()  # the broker's channel-max is 32767 (proton's check)
        r.send_frame(perf(BEGIN, None, uint(0), uint(100), uint(100)), channel=40000)
        self.assert_closed_with(r, "amqp:connection:framing-error", "above negotiated channel_max")

    def test_frames_on_a_channel_without_a_session(self):
        cases = [(END, perf(END)),
                 (ATTACH, perf(ATTACH, "x", uint(0), False)),
                 (FLOW, perf(FLOW, None, uint(100), uint(0), uint(100))),
                 (DISPOSITION, perf(DISPOSITION, True, uint(0))),
                 (DETACH, perf(DETACH, uint(0), True))]
        names = {END: "end", ATTACH: "attach", FLOW: "flow", DISPOSITION: "disposition", DETACH: "detach"}
        for code, frame in cases:
            with self.subTest(names[code]):
                r = self.opened()
                self.session(r, channel=0)
                r.send_frame(frame, channel=9)
                self.assert_closed_with(r, "amqp:not-allowed", f"{names[code]} on channel 9, which has no session")

    def test_attach_on_a_channel_after_its_end(self):
        r = self.opened()
        self.session(r)
        r.send_frame(perf(END))
        r.expect(END)
        r.send_frame(perf(ATTACH, "late", uint(0), False))
        self.assert_closed_with(r, "amqp:not-allowed", "attach on channel 0, which has no session")

    # -------------------------------------------------------------- links

    def test_attach_reusing_an_attached_handle(self):
        r = self.opened()
        self.session(r)
        self.attach_sender(r, 0, "first", "/queues/states-h1")
        r.send_frame(perf(ATTACH, "second", uint(0), False, None, None, Described(ulong(SOURCE), [None]),
                          Described(ulong(TARGET), ["/queues/states-h2"])))
        self.assert_closed_with(r, "amqp:session:handle-in-use", "handle 0 is in use by a link still attached")

    def test_handle_reused_after_detach_is_fine(self):
        r = self.opened()
        self.session(r)
        self.attach_sender(r, 0, "first", "/queues/states-reuse")
        r.send_frame(perf(DETACH, uint(0), True))
        r.expect(DETACH)
        self.attach_sender(r, 0, "second", "/queues/states-reuse")
        self.transfer(r, 0)
        got = r.read()
        while got and got[2] == FLOW:
            got = r.read()
        self.assertEqual(got[2], DISPOSITION)

    def test_same_handle_on_another_session_is_fine(self):
        r = self.opened()
        self.session(r, 0)
        self.session(r, 1)
        self.attach_sender(r, 0, "s0", "/queues/states-two")
        r.send_frame(perf(ATTACH, "s1", uint(0), False, None, None, Described(ulong(SOURCE), [None]),
                          Described(ulong(TARGET), ["/queues/states-two"])), channel=1)
        self.assertEqual(r.expect(ATTACH)[1], 1)

    def test_frames_on_a_handle_that_is_not_attached(self):
        cases = {"transfer": lambda r: self.transfer(r, 4),
                 "flow": lambda r: r.send_frame(perf(FLOW, uint(0), uint(100), uint(0), uint(100), uint(4),
                                                     uint(0), uint(10))),
                 "detach": lambda r: r.send_frame(perf(DETACH, uint(4), True))}
        for what, send in cases.items():
            with self.subTest(what):
                r = self.opened()
                self.session(r)
                send(r)
                self.assert_closed_with(r, "amqp:session:unattached-handle", f"{what} on handle 4, which is not attached")

    def test_transfer_after_detach(self):
        r = self.opened()
        self.session(r)
        self.attach_sender(r, 0, "gone", "/queues/states-gone")
        r.send_frame(perf(DETACH, uint(0), True))
        self.transfer(r, 0)
        self.assert_closed_with(r, "amqp:session:unattached-handle", "transfer on handle 0, which is not attached")

    def test_transfer_on_a_link_where_the_client_receives(self):
        r = self.opened()
        self.session(r)
        self.attach_receiver(r, 0, "rcv", "/queues/states-rcv")
        self.transfer(r, 0)
        self.assert_closed_with(r, "amqp:illegal-state", "transfer on handle 0, a link on which the client receives")

    def test_attach_with_a_link_name_already_attached(self):
        r = self.opened()  # proton's check
        self.session(r)
        self.attach_sender(r, 0, "dup", "/queues/states-dup")
        r.send_frame(perf(ATTACH, "dup", uint(1), False, None, None, Described(ulong(SOURCE), [None]),
                          Described(ulong(TARGET), ["/queues/states-dup"])))
        self.assert_closed_with(r, "amqp:invalid-field", "link name already attached: dup")

    def test_endless_attaches_are_bounded(self):
        conf = __import__("harness").config_file(self, "amqp = { max_links = 2; };")
        with Broker(config=conf) as b:
            r = self.raw(b.port)
            r.open()
            self.session(r)
            # max_links * 2 + 64 = 68 links may be attached (refused ones
            # wait for the client's detach); the 69th attach is too many.
            for h in range(68):
                r.send_frame(perf(ATTACH, f"l{h}", uint(h), False, None, None, Described(ulong(SOURCE), [None]),
                                  Described(ulong(TARGET), ["/queues/states-many"])))
            r.send_frame(perf(ATTACH, "l68", uint(68), False, None, None, Described(ulong(SOURCE), [None]),
                              Described(ulong(TARGET), ["/queues/states-many"])))
            self.assert_closed_with(r, "amqp:resource-limit-exceeded", "more than 68 links attached at once")


if __name__ == "__main__":
    main()
