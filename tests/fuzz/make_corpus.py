#!/usr/bin/python3
"""make_corpus.py — writes the seed corpora of tests/fuzz/corpus/ (small,
valid inputs the fuzzers start from), encoded with proton's Python codec
so the AMQP bytes are a real client's. Run it from anywhere; it rewrites
only the seeds it names (seed-*), never the crash inputs kept beside them.
"""
import json
import os
import struct
import zlib

from proton import Data, Described, Message, symbol, ubyte, uint, ulong, ushort

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def amqp(value):
    d = Data()
    d.put_object(value)
    return d.encode()


def frame(code, fields, channel=0, sasl=False, payload=b""):
    body = amqp(Described(ulong(code), fields)) + payload
    return struct.pack(">IBBH", 8 + len(body), 2, 1 if sasl else 0, channel) + body


def message(**kw):
    body = kw.pop("body", "hello")
    m = Message(body=body, **kw)
    return m.encode()


AMQP_HDR = b"AMQP\x00\x01\x00\x00"
SASL_HDR = b"AMQP\x03\x01\x00\x00"

# ---------------------------------------------------------------- frames
msg = message(subject="k", durable=True)
conn = [
    frame(0x10, ["client-1", "localhost", uint(65536), ushort(8)]),
    frame(0x11, [None, uint(0), uint(100), uint(100)]),
    frame(0x12, ["l1", uint(0), False, ubyte(1), ubyte(0), Described(ulong(0x28), ["c"]),
                 Described(ulong(0x29), ["/queues/q"])]),
    frame(0x14, [uint(0), uint(0), b"t1", uint(0), True], payload=msg),
    frame(0x13, [uint(1), uint(100), uint(0), uint(100), uint(0), uint(0), uint(10)]),
    frame(0x15, [True, uint(0), None, True, Described(ulong(0x24), [])]),
    frame(0x16, [uint(0), True]),
    frame(0x17, []),
    frame(0x18, []),
]
put("frames", "plain", b"\x00" + AMQP_HDR + b"".join(conn))
put("frames", "sasl-anonymous", b"\x05" + SASL_HDR + frame(0x41, [symbol("ANONYMOUS")], sasl=True) + AMQP_HDR +
    b"".join(conn))
put("frames", "sasl-plain", b"\x0a" + SASL_HDR + frame(0x41, [symbol("PLAIN"), b"\x00guest\x00guest"], sasl=True) +
    AMQP_HDR + b"".join(conn[:2]))
put("frames", "heartbeat", b"\x01" + AMQP_HDR + conn[0] + struct.pack(">IBBH", 8, 2, 0, 0) + conn[-1])
put("frames", "symbolic-open", b"\x02" + AMQP_HDR +
    struct.pack(">IBBH", 8 + len(amqp(Described(symbol("amqp:open:list"), ["c"]))), 2, 0, 0) +
    amqp(Described(symbol("amqp:open:list"), ["c"])))

# ---------------------------------------------------------------- msg
put("msg", "plain", message())
put("msg", "headed", message(subject="orders.eu", durable=True, priority=7, ttl=1.5, delivery_count=2,
                             address="/queues/q", reply_to="/queues/r", first_acquirer=True))
put("msg", "app-props", message(properties={"colour": "red", "n": 7, "ok": True, "x": 1.5}, body=b"\x00\x01"))
put("msg", "annotations", message(annotations={symbol("x-opt-routing-key"): "rk"},
                                  instructions={symbol("x-opt-i"): 1}, body=["a", 1]))
put("msg", "expiry", message(expiry_time=1700000000.0, creation_time=1600000000.0, body=None))

# ---------------------------------------------------------------- address (selector: 0 address, 1 host:port, 2 props)
for i, a in enumerate(["/queues/orders", "/exchanges/amq.topic/a.b", "/exchanges/x", "/queues/a%2Fb%20c",
                       "plain-name", "/exchanges/amq.default/q"]):
    put("address", "addr%d" % i, b"\x00" + a.encode())
for i, h in enumerate(["127.0.0.1:5672", "[::1]:15672", "localhost:0"]):
    put("address", "hostport%d" % i, b"\x01" + h.encode())
put("address", "props", b"\x02" + amqp({symbol("x-max-length"): 10, symbol("x-overflow"): "reject-publish",
                                         symbol("durable"): True, symbol("x-message-ttl"): uint(60000),
                                         symbol("x-queue-type"): "classic", "x-dead-letter-exchange": "dlx"}))

# ---------------------------------------------------------------- definitions
put("definitions", "full", json.dumps({
    "rabbit_version": "3.13.0",
    "queues": [{"name": "q1", "vhost": "/", "durable": True, "auto_delete": False,
                "arguments": {"x-max-length": 100, "x-overflow": "drop-head", "x-message-ttl": 60000}},
               {"name": "q2", "durable": False, "arguments": {"x-dead-letter-exchange": "dlx",
                                                              "x-dead-letter-routing-key": "dead"}}],
    "exchanges": [{"name": "x1", "vhost": "/", "type": "topic", "durable": True, "auto_delete": False,
                   "internal": False, "arguments": {}},
                  {"name": "h", "type": "headers"}],
    "bindings": [{"source": "x1", "vhost": "/", "destination": "q1", "destination_type": "queue",
                  "routing_key": "a.*", "arguments": {}},
                 {"source": "h", "destination": "q2", "destination_type": "queue", "routing_key": "",
                  "arguments": {"x-match": "all", "colour": "red", "n": 3, "deep": [1, {"a": None}]}},
                 {"source": "x1", "destination": "h", "destination_type": "exchange", "routing_key": "#"}],
}))
put("definitions", "empty", "{}")
put("definitions", "queues-only", '{"queues": [{"name": "only", "arguments": null}]}')

# ---------------------------------------------------------------- users (selector: even document, odd one body)
HASH = "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlC3ttzAgNWMa0WxLQBtb"
put("users", "document", "\x00" + json.dumps({"users": [
    {"name": "guest", "password_hash": HASH, "hashing_algorithm": "rabbit_password_hashing_sha256",
     "tags": ["administrator"], "loopback_only": True},
    {"name": "ops", "password_hash": HASH, "tags": "management,monitoring"},
    {"name": "app", "password_hash": HASH, "tags": ""}]}))
put("users", "put-body", "\x01" + json.dumps({"password": "secret", "tags": "administrator, policymaker"}))
put("users", "put-hash", "\x01" + json.dumps({"password_hash": HASH, "tags": ["none"], "loopback_only": False}))

# ---------------------------------------------------------------- logfmt (settings: bit 0 reseals CRCs)
def rec(payload):
    return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


def seg_header(n):
    h = b"PLXLOG01" + struct.pack("<I", n)
    return h + struct.pack("<I", zlib.crc32(h))


m1 = rec(struct.pack("<BBHIQq", 1, 1, 3, 0, 1, 0) + b"a.b" + message(subject="a.b"))
m2 = rec(struct.pack("<BBHIQq", 1, 0, 0, 2, 2, 1700000000000) + message())
ack = rec(struct.pack("<B3xI", 2, 2) + struct.pack("<QQ", 1, 2))
dc = rec(struct.pack("<B3xIQ", 3, 5, 2))
mark = rec(struct.pack("<B7xQQ", 4, 1, 3))
put("logfmt", "segment", b"\x00" + seg_header(1) + m1 + m2 + dc + ack + mark)
put("logfmt", "records", b"\x01" + m1 + ack + mark)
put("logfmt", "torn", b"\x00" + m1 + m2[: len(m2) // 2])
# damage first (a zeroed CRC), then records long enough that recovery's
# walk takes their CRCs from its checkpoints (rt__segscan)
big = [rec(struct.pack("<BBHIQq", 1, 0, 0, 0, 10 + i, 0) + bytes((i * 37 + j) % 251 for j in range(1500 + 300 * i)))
       for i in range(3)]
put("logfmt", "damaged-long", b"\x00" + seg_header(2) + m1[:4] + b"\x00" * 4 + m1[8:] + b"".join(big) + dc + big[0])

# ---------------------------------------------------------------- admin (method byte: GET HEAD PUT POST DELETE PATCH)
put("admin", "queue-put", "\x02queues/%2F/orders\n\n" + json.dumps({"durable": True, "auto_delete": False,
                                                                  "arguments": {"x-max-length": 5}}))
put("admin", "exchange-put", "\x02exchanges/%2F/x1\n\n" + json.dumps({"type": "fanout", "durable": True}))
put("admin", "publish", "\x03exchanges/%2F/amq.default/publish\n\n" + json.dumps({
    "routing_key": "orders", "payload": "aGVsbG8=", "payload_encoding": "base64",
    "properties": {"delivery_mode": 2, "priority": 3, "expiration": "60000", "content_type": "text/plain",
                   "message_id": "m1", "headers": {"colour": "red", "n": 1}}}))
put("admin", "binding-post", "\x03bindings/%2F/e/x1/q/orders\n\n" + json.dumps({"routing_key": "a.#",
                                                                             "arguments": {"x-match": "any"}}))
put("admin", "user-put", "\x02users/ops\n\n" + json.dumps({"password": "pw", "tags": "management"}))
put("admin", "delete-query", "\x04queues/%2F/orders\nif-empty=true&if-unused=a%2Bb+c\n")
put("admin", "get", "\x00queues/%2F\n\n")
put("admin", "head", "\x01overview/\n\n")

# ---------------------------------------------------------------- map091 (even: a 1.0 message; odd: 0-9-1 props)
put("map091", "json", b"\x00" + message(content_type="application/json", durable=True, priority=ubyte(5),
                                        reply_to="/queues/r%2Fq", id=ulong(7), correlation_id="c1",
                                        properties={"n": 1, "s": "x", "b": b"\x00", "l": [1, "a"]},
                                        annotations={symbol("x-basic-type"): "t", symbol("x-cc"): ["k"]},
                                        body=b'{"a": [1, 2]}'))
put("map091", "value-string", b"\x02" + message(body="text", user_id=b"u", group_id="app", creation_time=1.5))
put("map091", "value-list", b"\x00" + message(body=["a", 1, {"k": None}], ttl=2.5))
put("map091", "two-data", b"\x00" + amqp(Described(ulong(0x75), b"ab")) + amqp(Described(ulong(0x75), b"cd")) +
    amqp(Described(ulong(0x78), {})))


def shortstr(s):
    return bytes([len(s)]) + s


# flag word (every property), each field length-prefixed, headers with a two-byte length, then the body
table = (shortstr(b"n") + b"I\x00\x00\x00\x07" + shortstr(b"x-t") + b"F\x00\x00\x00\x04" + shortstr(b"k") +
         b"t\x01" + shortstr(b"CC") + b"A\x00\x00\x00\x06S\x00\x00\x00\x01q")
put("map091", "props", b"\x01" + struct.pack(">H", 0xfff8) + shortstr(b"application/json") + shortstr(b"gzip") +
    struct.pack(">H", len(table)) + table + b"\x02\x07" + shortstr(b"c1") + shortstr(b"reply q") +
    shortstr(b"60000") + shortstr(b"urn:uuid:550e8400-e29b-41d4-a716-446655440000") + struct.pack(">Q", 1700000000) +
    shortstr(b"type") + shortstr(b"guest") + shortstr(b"app") + b'{"body": true}')
put("map091", "props-none", b"\x01\x00\x00body")
