#!/usr/bin/python3
"""50: AMQP 0-9-1 on the AMQP port, the connection and channel life cycle — Debian's
pika against the real broker (login, server properties, channels,
heartbeats, channel errors closing their channel only),
and a raw socket for what a client library never sends (AMQPLAIN, bad
frames, a silent or vanishing peer)."""
import shutil
import struct
import subprocess
import time
import unittest
import urllib.parse

from admin_api import Api
from harness import Broker, SurvivorTest, config_file, main, missing
from raw091 import HEADER, Raw, frame, method, shortstr, table

try:
    import pika
except ImportError:  # counted as a skip here, a failure in CI
    pika = None

def api_conns(b):
    return Api(b.admin_port).get("/api/connections")[1]


class Pika(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = Broker().start()

    @classmethod
    def tearDownClass(cls):
        cls.assert_code = cls.b.stop()
        cls.b.tmp.cleanup()
        assert cls.assert_code == 0, f"plexus exited {cls.assert_code}"

    def setUp(self):
        if pika is None:
            missing("python3-pika")

    def params(self, user="guest", password="guest", **kw):
        return pika.ConnectionParameters(host="127.0.0.1", port=self.b.port,
                                         credentials=pika.PlainCredentials(user, password),
                                         connection_attempts=1, **kw)

    def connect(self, **kw):
        c = pika.BlockingConnection(self.params(**kw))
        self.addCleanup(lambda: c.is_open and c.close())
        return c

    def test_login_and_server_properties(self):
        c = self.connect()
        props = c._impl.server_properties
        self.assertEqual(props["product"], b"Plexus" if isinstance(props["product"], bytes) else "Plexus")
        caps = props["capabilities"]
        self.assertIs(caps.get("authentication_failure_close"), True)
        # What clients look for before they use a feature; each is served.
        for cap in ("publisher_confirms", "basic.nack", "consumer_cancel_notify", "direct_reply_to",
                    "exchange_exchange_bindings", "connection.blocked", "per_consumer_qos"):
            self.assertIs(caps.get(cap), True, cap)

    def test_channels_open_and_close(self):
        c = self.connect()
        chans = [c.channel() for _ in range(3)]
        self.assertEqual(len({ch.channel_number for ch in chans}), 3)
        self.assertTrue(all(ch.is_open for ch in chans))
        chans[1].close()
        self.assertTrue(chans[1].is_closed)
        again = c.channel()
        self.assertTrue(again.is_open)
        self.assertTrue(chans[0].flow(True) in (True, None))  # Channel.Flow answered
        c.close()
        self.assertTrue(c.is_closed)

    def test_admin_api_lists_the_protocol(self):
        c = self.connect(client_properties={"connection_name": "pika-50"})
        mine = [x for x in api_conns(self.b) if x["client_properties"].get("container_id") == "pika-50"]
        self.assertEqual(len(mine), 1, api_conns(self.b))
        self.assertEqual(mine[0]["protocol"], "AMQP 0-9-1")
        self.assertEqual(mine[0]["user"], "guest")
        self.assertEqual(mine[0]["auth_mechanism"], "PLAIN")
        self.assertEqual(mine[0]["state"], "running")
        self.assertIs(mine[0]["ssl"], False)  # the plaintext listener
        # An operator's close reaches the client as 320 CONNECTION_FORCED.
        name = urllib.parse.quote(mine[0]["name"], safe="")
        code, _, _ = Api(self.b.admin_port).delete(f"/api/connections/{name}", headers={"X-Reason": "maintenance"})
        self.assertIn(code, (200, 204))
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as e:
            c.process_data_events(time_limit=3)
            c.process_data_events(time_limit=3)
        self.assertEqual(e.exception.reply_code, 320)
        self.assertIn("maintenance", e.exception.reply_text)

    def test_admin_api_lists_channels(self):
        c = self.connect(client_properties={"connection_name": "pika-chans"})
        api = Api(self.b.admin_port)
        conn = [x for x in api_conns(self.b) if x["client_properties"].get("container_id") == "pika-chans"][0]

        def listed(want):
            """This connection's channels once they are `want` (channel numbers), else as they are."""
            deadline = time.time() + 5
            while True:
                status, chans, _ = api.get("/api/channels")
                self.assertEqual(status, 200, chans)
                mine = sorted((x for x in chans if x["connection_details"]["name"] == conn["name"]),
                              key=lambda x: x["number"])
                if [x["number"] for x in mine] == want or time.time() > deadline:
                    return mine

        chans = [c.channel() for _ in range(2)]
        nums = sorted(ch.channel_number for ch in chans)
        mine = listed(nums)
        self.assertEqual([(x["number"], x["name"], x["user"], x["vhost"], x["state"], x["consumer_count"])
                          for x in mine],
                         [(n, f"{conn['name']} ({n})", "guest", "/", "running", 0) for n in nums])
        self.assertEqual([x["channels"] for x in api_conns(self.b) if x["name"] == conn["name"]], [2])
        status, per_conn, _ = api.get("/api/connections/" + urllib.parse.quote(conn["name"], safe="") + "/channels")
        self.assertEqual((status, sorted(x["number"] for x in per_conn)), (200, nums))
        chans[0].close()
        self.assertEqual([x["number"] for x in listed([chans[1].channel_number])], [chans[1].channel_number])
        c.close()
        self.assertEqual(listed([]), [])

    def test_wrong_password_refused(self):
        with self.assertRaises((pika.exceptions.ProbableAuthenticationError,
                                pika.exceptions.AuthenticationError)) as e:
            pika.BlockingConnection(self.params(password="wrong"))
        self.assertIn("ACCESS_REFUSED", str(e.exception))
        self.b.wait_log("AMQP 0-9-1 authentication failed for guest")
        self.assertIn("127.0.0.1:", [ln for ln in self.b.log().splitlines() if "authentication failed" in ln][-1])

    def test_other_vhost_refused(self):
        with self.assertRaises(pika.exceptions.AMQPConnectionError) as e:
            pika.BlockingConnection(self.params(virtual_host="other"))
        self.assertIn("530", str(e.exception))
        self.assertIn("'other' does not exist", self.b.log())

    def test_heartbeats_keep_an_idle_connection_up(self):
        c = self.connect(heartbeat=2)
        self.assertEqual(c._impl.params.heartbeat, 2)
        c.sleep(5)  # pika sends and expects heartbeats meanwhile
        self.assertTrue(c.is_open)
        self.assertTrue(c.channel().is_open)

    def test_channel_errors_close_the_channel_only(self):
        c = self.connect()
        ch = c.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.tx_select()
        self.assertEqual(e.exception.reply_code, 540)
        self.assertIn("tx.select is not implemented", e.exception.reply_text)
        self.assertTrue(c.is_open)
        ch2 = c.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as e:
            ch2.basic_publish("nowhere", "q50", b"body")  # content frames after it are dropped with the channel
            ch2.basic_qos(prefetch_count=1)
        self.assertEqual(e.exception.reply_code, 404)
        self.assertIn("no exchange 'nowhere'", e.exception.reply_text)
        self.assertTrue(c.channel().is_open)


class Blocked(unittest.TestCase):
    def test_memory_alarm_blocks_and_unblocks_publishers(self):
        # Queues may hold 8 MiB; a publisher sends 1 MiB messages nobody
        # consumes. Past the limit the broker says Connection.Blocked (the
        # client asked for it in its capabilities) and stops reading it;
        # once another connection purges the queue, Connection.Unblocked.
        conf = config_file(self, "routing = { memory_limit = 8388608; };")
        with Broker(config=conf) as b:
            events = []
            pub = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", b.port))
            pub.add_on_connection_blocked_callback(lambda _c, m: events.append(("blocked", m.method.reason)))
            pub.add_on_connection_unblocked_callback(lambda _c, m: events.append(("unblocked", None)))
            ch = pub.channel()
            ch.queue_declare("fill")
            body = b"x" * (1 << 20)
            for _ in range(12):
                ch.basic_publish("", "fill", body)
            deadline = time.time() + 15
            while not events and time.time() < deadline:
                pub.process_data_events(0.1)
            self.assertEqual(events[:1], [("blocked", "low on memory or disk space")])
            b.wait_log("memory alarm")
            other = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", b.port))
            n = other.channel().queue_purge("fill").method.message_count
            self.assertGreaterEqual(n, 8)
            deadline = time.time() + 15
            while len(events) < 2 and time.time() < deadline:
                pub.process_data_events(0.1)
            self.assertEqual(events[1:], [("unblocked", None)])
            ch.basic_publish("", "fill", b"again")  # and it is read again
            self.assertGreaterEqual(ch.queue_declare("fill", passive=True).method.message_count, 1)
            other.close()
            pub.close()


class AmqpTools(unittest.TestCase):
    """Debian's amqp-tools (librabbitmq): a clear error, not a hang."""

    def test_declare_publish_get_and_errors(self):
        if not shutil.which("amqp-declare-queue"):
            missing("amqp-tools")
        with Broker() as b:
            url = f"amqp://guest:guest@127.0.0.1:{b.port}"
            p = subprocess.run(["amqp-declare-queue", "--url", url, "-q", "q50"], capture_output=True, text=True,
                               timeout=20)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout.strip(), "q50")
            p = subprocess.run(["amqp-publish", "--url", url, "-r", "q50", "-b", '{"n": 1}'], capture_output=True,
                               text=True, timeout=20)
            self.assertEqual(p.returncode, 0, p.stderr)
            p = subprocess.run(["amqp-get", "--url", url, "-q", "q50"], capture_output=True, text=True, timeout=20)
            self.assertEqual((p.returncode, p.stdout), (0, '{"n": 1}'), p.stderr)
            p = subprocess.run(["amqp-get", "--url", url, "-q", "q50"], capture_output=True, text=True, timeout=20)
            self.assertNotEqual(p.returncode, 0, "the queue is empty now")
            p = subprocess.run(["amqp-publish", "--url", url, "-e", "nowhere", "-r", "q50", "-b", "hi"],
                               capture_output=True, text=True, timeout=20)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("no exchange 'nowhere'", p.stderr)
            p = subprocess.run(["amqp-declare-queue", "--url", url.replace("guest@", "nope@"), "-q", "q50"],
                               capture_output=True, text=True, timeout=20)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("ACCESS_REFUSED", p.stderr)


class RawSocket(SurvivorTest):
    """Bad input over raw sockets; after each test the broker still serves."""

    def raw(self):
        r = Raw(self.b.port)
        self.addCleanup(r.close)
        return r

    def test_tune_offers_limits(self):
        r = self.raw()
        tune = r.handshake()
        ch_max, frame_max, hb = struct.unpack(">HIH", tune)
        self.assertEqual(ch_max, 2047)
        self.assertGreaterEqual(frame_max, 4096)
        self.assertLessEqual(frame_max, 1 << 20)  # the broker's max frame size
        self.assertEqual(hb, 60)
        r.expect(10, 41)

    def test_amqplain_login(self):
        r = self.raw()
        resp = table({"LOGIN": "guest", "PASSWORD": "guest"})[4:]
        r.start_ok(mech="AMQPLAIN", response=resp)
        r.expect(10, 30)
        bad = self.raw()
        bad.start_ok(mech="AMQPLAIN", response=table({"LOGIN": "guest", "PASSWORD": "nope"})[4:],
                     caps={"authentication_failure_close": True})
        code, text = bad.expect_close()
        self.assertEqual(code, 403, text)
        self.assertTrue(bad.eof())

    def test_failed_login_without_the_capability_just_closes(self):
        r = self.raw()
        r.start_ok(response=b"\0guest\0nope")
        self.assertTrue(r.eof())
        self.assertEqual(r.buf, b"")  # no Close: the client did not ask for one

    def test_unknown_mechanism_refused(self):
        r = self.raw()
        r.start_ok(mech="EXTERNAL", response=b"", caps={"authentication_failure_close": True})
        self.assertEqual(r.expect_close()[0], 403)

    def test_tune_ok_over_the_limits_refused(self):
        r = self.raw()
        r.start_ok()
        r.expect(10, 30)
        r.send(method(0, 10, 31, struct.pack(">HIH", 0, 2048, 0)))  # frame_max under 4096
        code, text = r.expect_close()
        self.assertEqual(code, 530, text)

    def test_garbage_after_header_is_a_frame_error(self):
        r = self.raw()
        r.send(HEADER + b"\x42" * 16)
        r.expect(10, 10)
        code, text = r.expect_close()
        self.assertEqual(code, 501, text)
        self.assertTrue(r.eof())

    def test_channel_method_on_channel_0(self):
        r = self.raw()
        r.open()
        r.send(method(0, 20, 10, shortstr("")))  # Channel.Open on channel 0
        code, text = r.expect_close()
        self.assertEqual(code, 504, text)
        self.assertIn("channel 0", text)
        r.send(method(0, 10, 51))  # Close-Ok
        self.assertTrue(r.eof())

    def test_unopened_channel_and_beyond_channel_max(self):
        r = self.raw()
        r.open()
        r.send(method(7, 60, 10, struct.pack(">IHB", 0, 1, 0)))  # Basic.Qos on a channel never opened
        self.assertEqual(r.expect_close()[0], 504)
        r2 = self.raw()
        r2.open()
        r2.send(method(3000, 20, 10, shortstr("")))
        self.assertEqual(r2.expect_close()[0], 504)

    def test_unexpected_method_in_handshake(self):
        r = self.raw()
        r.send(HEADER)
        r.expect(10, 10)
        r.send(method(0, 10, 40, shortstr("/") + shortstr("") + b"\0"))  # Open before Start-Ok
        self.assertEqual(r.expect_close()[0], 503)

    def test_bad_method_arguments(self):
        r = self.raw()
        r.open()
        r.send(method(1, 20, 10, b"\x05ab"))  # Channel.Open with a truncated shortstr
        self.assertEqual(r.expect_close()[0], 502)
        r2 = self.raw()
        r2.open()
        r2.send(method(1, 99, 1))  # no such class
        self.assertEqual(r2.expect_close()[0], 540)

    def test_oversized_frame(self):
        r = self.raw()
        r.open(frame_max=4096)
        r.send(method(0, 20, 10, shortstr("")))
        r.send(struct.pack(">BHI", 1, 1, 10000) + b"x" * 100)  # announces more than frame_max
        # the 504 for the first frame comes first; the connection is closing
        self.assertEqual(r.expect_close()[0], 504)
        r2 = self.raw()
        r2.open(frame_max=4096)
        r2.send(struct.pack(">BHI", 1, 1, 10000) + b"x" * 100)
        code, text = r2.expect_close()
        self.assertEqual(code, 501, text)
        self.assertTrue(r2.eof())

    def test_content_frame_without_content_method(self):
        r = self.raw()
        r.open()
        r.send(method(1, 20, 10, shortstr("")))
        r.expect(20, 11)
        r.send(frame(3, 1, b"stray body"))
        self.assertEqual(r.expect_close()[0], 505)

    def test_client_close_and_channel_close(self):
        r = self.raw()
        r.open()
        r.send(method(1, 20, 10, shortstr("")))
        r.expect(20, 11)
        r.send(method(1, 20, 10, shortstr("")))  # open twice
        self.assertEqual(r.expect_close()[0], 504)
        r2 = self.raw()
        r2.open()
        r2.send(method(5, 20, 10, shortstr("")))
        r2.expect(20, 11)
        r2.send(method(5, 20, 40, struct.pack(">H", 200) + shortstr("bye") + struct.pack(">HH", 0, 0)))
        self.assertEqual(r2.method()[:3], (5, 20, 41))
        r2.send(method(0, 10, 50, struct.pack(">H", 200) + shortstr("bye") + struct.pack(">HH", 0, 0)))
        r2.expect(10, 51)
        self.assertTrue(r2.eof())

    def test_channel_closed_by_both_sides_at_once(self):
        r = self.raw()
        r.open()
        r.send(method(1, 20, 10, shortstr("")))
        r.expect(20, 11)
        close = struct.pack(">H", 200) + shortstr("bye") + struct.pack(">HH", 0, 0)
        # Basic.Qos with a prefetch size (not implemented: the broker closes channel 1) and our own close, crossing
        r.send(method(1, 60, 10, struct.pack(">IHB", 1, 1, 0)) + method(1, 20, 40, close))
        self.assertEqual(r.expect_close(ch=1)[0], 540)
        self.assertEqual(r.method()[:3], (1, 20, 41))  # its Close-Ok to ours
        r.send(method(1, 20, 41))  # ours to its Close
        r.send(method(2, 20, 10, shortstr("")))
        self.assertEqual(r.method()[:3], (2, 20, 11), "the connection is still usable")
        r.send(method(1, 20, 10, shortstr("")))
        self.assertEqual(r.method()[:3], (1, 20, 11), "channel 1 can be opened again")

    def test_missed_heartbeats_close_the_connection(self):
        r = self.raw()
        r.open(heartbeat=1)
        t0 = time.time()
        self.assertTrue(r.eof(timeout=6), "a silent client was not closed")
        self.assertLess(time.time() - t0, 5)
        self.assertGreaterEqual(time.time() - t0, 1.5)
        self.b.wait_log("missed heartbeats")

    def test_heartbeats_sent(self):
        r = self.raw()
        r.open(heartbeat=1)
        r.s.settimeout(3)
        got = b""
        t0 = time.time()
        while b"\x08\x00\x00\x00\x00\x00\x00\xce" not in got and time.time() - t0 < 3:
            got += r.s.recv(100)
        self.assertIn(b"\x08\x00\x00\x00\x00\x00\x00\xce", got)

    def test_vanishing_peer_leaves_nothing(self):
        before = len(api_conns(self.b))
        for _ in range(5):
            r = Raw(self.b.port)
            r.send(HEADER)
            r.expect(10, 10)
            r.s.close()
        r = Raw(self.b.port)
        r.start_ok()
        r.expect(10, 30)
        r.s.close()
        deadline = time.time() + 5
        while len(api_conns(self.b)) > before and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(len(api_conns(self.b)), before, api_conns(self.b))

    def test_silent_peer_mid_handshake_is_closed(self):
        r = self.raw()
        r.send(HEADER)
        r.expect(10, 10)  # then nothing: the 10 s handshake deadline ends it
        t0 = time.time()
        self.assertTrue(r.eof(timeout=15))
        self.assertGreater(time.time() - t0, 8)
        self.b.wait_log("handshake not done in time")

    def test_unsupported_header_answered_with_ours(self):
        for hdr in (b"AMQP\x00\x00\x08\x00", b"AMQP\x01\x01\x00\x08", b"AMQP\x00\x00\x09\x00"):
            r = self.raw()
            r.send(hdr)
            self.assertTrue(r.eof())
            self.assertEqual(r.buf, b"AMQP\x03\x01\x00\x00")

    def test_net_amqp_header_is_0_9_1(self):
        # Net::AMQP (Perl's AnyEvent::RabbitMQ) opens with "AMQP" 1 1 0 9 and
        # speaks 0-9-1 after it, as RabbitMQ takes it.
        r = self.raw()
        r.send(b"AMQP\x01\x01\x00\x09")
        args = r.expect(10, 10)
        self.assertEqual(args[:2], b"\x00\x09")  # Connection.Start, version 0-9


if __name__ == "__main__":
    main()
