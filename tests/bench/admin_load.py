#!/usr/bin/python3
"""admin_load.py — does the admin API slow message flow? (issue 5's load test)

On a fresh broker with 1 000 queues (imported as definitions), runs the
AMQP throughput benchmark (amqp_bench, 256 B at-least-once, one producer
and one consumer) alone, then again while `wrk` hammers GET /api/queues
(each answer lists all 1 000 queues, ~0.5 MB of JSON); alternating, three
times each, and prints the medians, their ratio and wrk's request rate.
Figures, not a test: it asserts nothing. Needs wrk (Debian) and
build/tests/amqp_bench (`make build/tests/amqp_bench`).

    tests/bench/admin_load.py [--count N] [--wrk-connections C] [--repeat R]
"""
import argparse
import base64
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

from run_bench import BENCH, PLEXUS, Plexus

AUTH = "Basic " + base64.b64encode(b"guest:guest").decode()


def api(port, method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Authorization", AUTH)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, r.read()


def amqp_rate(port, count):
    out = subprocess.run([BENCH, "--url", f"amqp://127.0.0.1:{port}", "--mode", "throughput", "--size", "256",
                          "--qos", "alo", "--count", str(count), "--queue", "bench.admin"],
                         capture_output=True, text=True, timeout=600).stdout
    m = re.search(r"^RESULT .*msgs_per_s=(\d+)", out, re.M)
    if not m:
        sys.exit(f"amqp_bench gave no result:\n{out}")
    return int(m.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=400000, help="messages per AMQP run")
    ap.add_argument("--wrk-connections", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--queues", type=int, default=1000)
    a = ap.parse_args()
    for tool in (PLEXUS, BENCH):
        if not os.access(tool, os.X_OK):
            sys.exit(f"admin_load: {tool} is missing (make all build/tests/amqp_bench)")
    broker = Plexus()
    amqp_port, admin_port = broker.port, broker.admin_port
    try:
        for _ in range(100):
            try:
                api(admin_port, "GET", "/api/overview")
                break
            except OSError:
                time.sleep(0.05)
        doc = {"queues": [{"name": f"load.{i:04d}", "durable": True} for i in range(a.queues)]}
        api(admin_port, "POST", "/api/definitions", doc)
        size = len(api(admin_port, "GET", "/api/queues")[1])
        print(f"{a.queues} queues; GET /api/queues answers {size / 1e6:.2f} MB")
        amqp_rate(amqp_port, a.count // 4)  # warm up
        alone, loaded, wrk_rates = [], [], []
        for _ in range(a.repeat):
            alone.append(amqp_rate(amqp_port, a.count))
            wrk = subprocess.Popen(["wrk", "-t1", f"-c{a.wrk_connections}", "-d600s", "-H", f"Authorization: {AUTH}",
                                    f"http://127.0.0.1:{admin_port}/api/queues"],
                                   stdout=subprocess.PIPE, text=True)
            time.sleep(1)
            loaded.append(amqp_rate(amqp_port, a.count))
            wrk.send_signal(signal.SIGINT)  # wrk prints its summary on SIGINT
            out = wrk.communicate(timeout=30)[0]
            m = re.search(r"Requests/sec:\s+([\d.]+)", out)
            wrk_rates.append(float(m.group(1)) if m else float("nan"))
        a_med, l_med = statistics.median(alone), statistics.median(loaded)
        print(f"AMQP 256 B at-least-once, alone:              {a_med:,} msgs/s  (runs {alone})")
        print(f"AMQP 256 B at-least-once, with wrk on the API: {l_med:,} msgs/s  (runs {loaded})")
        print(f"wrk GET /api/queues ({a.wrk_connections} connections): {statistics.median(wrk_rates):,.0f} req/s")
        print(f"message rate under admin load: {100 * l_med / a_med:.0f} % of alone "
              f"({100 * (a_med - l_med) / a_med:.1f} % slower)")
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
