#!/usr/bin/python3
"""05: exchanges — direct, fanout, topic, headers, the default exchange,
subject-keyed publishing, the anonymous relay, and unroutable messages."""

from proton import Described, symbol
from proton.reactor import Filter

from harness import BrokerTest, Message, main, receive_all, receiver, sender

HEADERS = symbol("apache.org:legacy-amqp-headers-binding:map")


def bodies(rcv):
    return sorted(m.body for m in receive_all(rcv))


class Exchanges(BrokerTest):
    def send(self, address, *msgs):
        """Sends each message, returning the outcome of each (or the error)."""
        s = sender(self.c, address)
        out = []
        for m in msgs:
            try:
                s.send(m)
                out.append("accepted")
            except Exception as e:
                out.append(str(e))
        return out

    def test_direct_routes_by_exact_key(self):
        k1 = receiver(self.c, "/exchanges/amq.direct/k1")
        k2 = receiver(self.c, "/exchanges/amq.direct/k2")
        self.send("/exchanges/amq.direct/k1", Message(body="one"))
        self.send("/exchanges/amq.direct/k2", Message(body="two"))
        self.assertEqual(bodies(k1), ["one"])
        self.assertEqual(bodies(k2), ["two"])

    def test_fanout_gives_every_subscriber_its_copy(self):
        subs = [receiver(self.c, "/exchanges/amq.fanout") for _ in range(3)]
        self.send("/exchanges/amq.fanout", Message(body="a"), Message(body="b"))
        for s in subs:
            self.assertEqual(bodies(s), ["a", "b"])

    def test_topic_star_is_one_word_and_hash_any_number(self):
        star = receiver(self.c, "/exchanges/amq.topic/stock.*")
        hash_ = receiver(self.c, "/exchanges/amq.topic/stock.#")
        mid = receiver(self.c, "/exchanges/amq.topic/%2A.nyse.%2A")  # percent-encoded '*'
        for key in ["stock", "stock.ibm", "stock.nyse.ibm", "bond.nyse.x"]:
            self.send("/exchanges/amq.topic/" + key, Message(body=key))
        self.assertEqual(bodies(star), ["stock.ibm"])
        self.assertEqual(bodies(hash_), ["stock", "stock.ibm", "stock.nyse.ibm"])
        self.assertEqual(bodies(mid), ["bond.nyse.x", "stock.nyse.ibm"])

    def test_exchange_address_without_key_routes_by_subject(self):
        r = receiver(self.c, "/exchanges/amq.topic/news.sport")
        self.send("/exchanges/amq.topic", Message(subject="news.sport", body="goal"),
                  Message(subject="news.weather", body="rain"))
        self.assertEqual(bodies(r), ["goal"])

    def test_headers_all_and_any(self):
        all_ = receiver(self.c, "/exchanges/amq.headers", options=Filter(
            {symbol("h"): Described(HEADERS, {"x-match": "all", "color": "red", "size": 3})}))
        any_ = receiver(self.c, "/exchanges/amq.headers", options=Filter(
            {symbol("h"): Described(HEADERS, {"x-match": "any", "color": "red", "size": 3})}))
        out = self.send("/exchanges/amq.headers",
                        Message(body="red3", properties={"color": "red", "size": 3}),
                        Message(body="red4", properties={"color": "red", "size": 4}),
                        Message(body="blue3", properties={"color": "blue", "size": 3}),
                        Message(body="green", properties={"color": "green"}))
        self.assertEqual(out[:3], ["accepted"] * 3)
        self.assertIn("RELEASED", out[3])  # nobody wanted it
        self.assertEqual(bodies(all_), ["red3"])
        self.assertEqual(bodies(any_), ["blue3", "red3", "red4"])

    def test_default_exchange_routes_by_queue_name(self):
        r = receiver(self.c, "/queues/by-name")
        self.send("/exchanges/amq.default/by-name", Message(body="d"))
        self.assertEqual(bodies(r), ["d"])

    def test_anonymous_relay_sends_where_each_message_says(self):
        q = receiver(self.c, "/queues/relay-q")
        x = receiver(self.c, "/exchanges/amq.direct/relay-k")
        self.assertEqual(self.send(None, Message(address="/queues/relay-q", body="to queue"),
                                   Message(address="/exchanges/amq.direct/relay-k", body="to exchange"),
                                   Message(address="relay-q", body="plain name")),
                         ["accepted"] * 3)
        self.assertEqual(bodies(q), ["plain name", "to queue"])
        self.assertEqual(bodies(x), ["to exchange"])

    def test_relay_message_without_a_usable_to_is_refused_not_lost(self):
        receiver(self.c, "/queues/relay-after")  # exists: attaches create queues, the relay does not
        out = self.send(None, Message(body="nowhere"), Message(address="/exchanges/nope/k", body="x"),
                        Message(address="/queues/relay-missing", body="?"),
                        Message(address="/queues/relay-after", body="fine"))
        self.assertIn("REJECTED", out[0])  # no `to` at all
        self.assertIn("REJECTED", out[1])  # names an exchange that does not exist
        self.assertIn("RELEASED", out[2])  # a queue that does not exist: unroutable
        self.assertEqual(out[3], "accepted")

    def test_unroutable_message_is_released(self):
        out = self.send("/exchanges/amq.direct/no-binding", Message(body="lost?"))
        self.assertIn("RELEASED", out[0])

    def test_unknown_exchange_is_refused_and_the_connection_lives_on(self):
        with self.assertRaises(Exception) as e:
            sender(self.c, "/exchanges/nope")
        self.assertIn("amqp:not-found", str(e.exception))
        with self.assertRaises(Exception) as e:
            receiver(self.c, "/exchanges/nope/k")
        self.assertIn("amqp:not-found", str(e.exception))
        self.assertEqual(self.send("/queues/still-fine", Message(body="ok")), ["accepted"])


if __name__ == "__main__":
    main()
