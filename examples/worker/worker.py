#!/usr/bin/python3
"""worker.py — the shop's order worker: takes placed orders from the durable
work queue "work.orders" (bound to the "shop" topic exchange as
order.placed), asks the pricing service for each order's price over
request/reply (direct reply-to), and publishes the outcome back to "shop" as
an event — order.processed or order.rejected — before it acks the order, so
an order is never dropped between the two (at least once).

    AMQP_URL=amqp://guest:guest@localhost:5672/%2F python3 worker.py
"""
import json
import os
import signal
import sys
import time
import uuid

import pika

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")
stopping = False


def stop(*_):
    global stopping
    stopping = True


class Pricing:
    """Calls the pricing service: one request at a time, its reply on the
    amq.rabbitmq.reply-to pseudo-queue of the channel that asks."""

    def __init__(self, conn):
        self.conn = conn
        self.ch = conn.channel()
        self.replies = {}
        self.ch.basic_consume("amq.rabbitmq.reply-to", self.on_reply, auto_ack=True)

    def on_reply(self, _ch, _method, props, body):
        self.replies[props.correlation_id] = json.loads(body)

    def price(self, order, timeout=10):
        corr = str(uuid.uuid4())
        request = {"order": order["id"], "items": order["items"]}
        self.ch.basic_publish("", "pricing", json.dumps(request),
                              pika.BasicProperties(reply_to="amq.rabbitmq.reply-to", correlation_id=corr,
                                                   content_type="application/json"))
        deadline = time.time() + timeout
        while corr not in self.replies:
            if time.time() > deadline:
                raise TimeoutError(f"no price for order {order['id']} within {timeout}s")
            self.conn.process_data_events(time_limit=0.05)
        return self.replies.pop(corr)


def main():
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    ch = conn.channel()
    ch.exchange_declare("shop", "topic", durable=True)
    ch.queue_declare("work.orders", durable=True)
    ch.queue_bind("work.orders", "shop", "order.placed")
    ch.basic_qos(prefetch_count=1)
    ch.confirm_delivery()  # an event is confirmed before its order is acked
    pricing = Pricing(conn)
    print("worker: ready", flush=True)

    for method, props, body in ch.consume("work.orders", inactivity_timeout=0.2):
        if stopping:
            break
        if method is None:
            continue
        try:
            order = json.loads(body)
            reply = pricing.price(order)
        except ValueError:
            print(f"worker: dropping a malformed order ({body!r})", flush=True)
            ch.basic_reject(method.delivery_tag, requeue=False)
            continue
        if "error" in reply:
            key, event = "order.rejected", {"id": order["id"], "reason": reply["error"]}
        else:
            key, event = "order.processed", {"id": order["id"], "customer": order.get("customer"),
                                             "total_cents": reply["total_cents"], "currency": reply["currency"]}
        ch.basic_publish("shop", key, json.dumps(event),
                         pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                              correlation_id=props.correlation_id))
        ch.basic_ack(method.delivery_tag)
        print(f"worker: order {order['id']} {key.split('.')[1]}", flush=True)
    ch.cancel()
    conn.close()
    print("worker: stopped", flush=True)


if __name__ == "__main__":
    try:
        main()
    except (pika.exceptions.AMQPError, TimeoutError) as e:
        print(f"worker: {e!r}", file=sys.stderr)
        sys.exit(1)
