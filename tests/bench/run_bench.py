#!/usr/bin/python3
"""run_bench.py — `make bench`: the AMQP figures, as ratios measured in one run.

Runs amqp_bench against a direct client-to-client transfer (no broker: the
bound on this machine), against Plexus, and with BENCH_RABBITMQ=1 against
Debian's RabbitMQ with its AMQP 1.0 plugin; then measures Plexus's memory
with a 1 M message backlog (and how fast it drains) and with 10 000 idle
connections, each on a fresh broker. AMQP 0-9-1 (amqp091_load: confirms and
manual acks, 256 B; its raw engine for the ratios, librabbitmq's beside it)
against Plexus and, with BENCH_RABBITMQ=1, against RabbitMQ, next to
Plexus's AMQP 1.0 figure; BENCH_ONLY=amqp091 runs only that. And 256 B
at-least-once over TLS against plaintext on one broker, and with
BENCH_RABBITMQ=1 through RabbitMQ's SSL listener (BENCH_ONLY=tls runs just
that). Prints what it measured; asserts nothing (tests do that).
"""
import base64
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
PLEXUS = os.environ.get("PLEXUS_BIN", os.path.join(ROOT, "bin", "plexus"))
BENCH = os.environ.get("AMQP_BENCH", os.path.join(ROOT, "build", "tests", "amqp_bench"))
LOAD091 = os.environ.get("AMQP091_LOAD", os.path.join(ROOT, "build", "tests", "amqp091_load"))
QUICK = os.environ.get("BENCH_QUICK") == "1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_within(port, seconds, poll=0.05):
    """True once something accepts connections on 127.0.0.1:port, False if
    nothing does within seconds."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(poll)
    return False


# The 64 KiB at-least-once run: measured for bytes/s and for CPU per GB.
BIG = 3000 if QUICK else 20000
ALO64K = ("--mode", "throughput", "--size", "65536", "--qos", "alo", "--count", str(BIG), "--credit", "16")


def parse(out):
    """RESULT lines -> list of dicts."""
    rows = []
    for line in out.splitlines():
        if line.startswith("RESULT "):
            rows.append(dict(kv.split("=", 1) for kv in line[7:].split()))
    return rows


def bench(target_args, *args, timeout=300):
    cmd = [BENCH, *target_args, *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    rows = parse(p.stdout)
    if p.returncode != 0 or not rows or any(r.get("status") != "ok" for r in rows):
        print(f"  ! {' '.join(cmd)} failed:\n{p.stdout[-2000:]}{p.stderr[-2000:]}", file=sys.stderr)
    return rows


class Plexus:
    def __init__(self, *extra):
        self.tmp = tempfile.mkdtemp(prefix="plexus-bench-")
        self.port = free_port()
        self.admin_port = free_port()
        self.log = open(os.path.join(self.tmp, "log"), "w")
        self.p = subprocess.Popen([PLEXUS, "--listen", f"127.0.0.1:{self.port}", "--admin",
                                   f"127.0.0.1:{self.admin_port}", "--data-dir", os.path.join(self.tmp, "d"),
                                   "--log-level", "warning", *extra], stdout=self.log, stderr=subprocess.STDOUT)
        if not listening_within(self.port, 10):
            raise SystemExit("plexus did not start")

    def store_stats(self):
        """(log syncs, bytes written to logs) so far, from /metrics."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}/metrics",
                                     headers={"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
        get = lambda name: float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))
        return get("plexus_store_syncs_total"), get("plexus_store_written_bytes_total")

    def rss_kib(self):
        with open(f"/proc/{self.p.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(30)
        shutil.rmtree(self.tmp, ignore_errors=True)


class ProtonExampleBroker:
    """qpid-proton's example C broker (libqpid-proton11-dev-examples), the
    reference the issue's 64 KiB target is set against; built here from
    Debian's copy of its source. None if the source or cc is missing."""
    SRC = "/usr/share/proton/examples/c"

    @classmethod
    def start(cls):
        exe = os.path.join(ROOT, "build", "tests", "proton-example-broker")
        if not os.path.exists(exe):
            if not os.path.exists(f"{cls.SRC}/broker.c") or not shutil.which("cc"):
                return None
            flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libqpid-proton"], capture_output=True,
                                   text=True).stdout.split()
            if subprocess.run(["cc", "-O2", "-I", cls.SRC, "-o", exe, f"{cls.SRC}/broker.c", *flags, "-lpthread"],
                              capture_output=True).returncode != 0:
                return None
        b = cls()
        b.port = free_port()
        b.p = subprocess.Popen([exe, "127.0.0.1", str(b.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if listening_within(b.port, 10):
            return b
        b.stop()
        return None

    def stop(self):
        self.p.kill()
        self.p.wait(10)


def cpu_seconds(pid):
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_gb(target, broker_pid=None):
    """CPU seconds per GB of 64 KiB messages moved, (clients, broker): with
    two cores shared by everything, bytes/s is bounded by this cost."""
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    b0 = cpu_seconds(broker_pid) if broker_pid else 0.0
    rows = bench(target, *ALO64K)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    b1 = cpu_seconds(broker_pid) if broker_pid else 0.0
    if not ok(rows):
        return float("nan"), float("nan")
    gb = BIG * 65536 / 1e9
    clients = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    return clients / gb, ((b1 - b0) / gb if broker_pid else 0.0)


def fig(rows, key):
    return float(rows[0][key]) if rows else float("nan")


def table(title, results, baseline, columns):
    print(f"\n{title}")
    head = f"  {'target':<22}" + "".join(f"{c[0]:>22}" for c in columns)
    print(head)
    for name, res in results.items():
        cells = []
        for label, key, fmt, lower_better in columns:
            v, b = res.get(key), baseline.get(key)
            if v is None or v != v:
                cells.append(f"{'-':>22}")
                continue
            ratio = ""
            if name != "direct" and b and b == b:
                ratio = f" ({(b / v if lower_better else v / b):.0%})" if not lower_better else f" ({v / b:.1f}x)"
            cells.append(f"{fmt.format(v) + ratio:>22}")
        print(f"  {name:<22}" + "".join(cells))


# Each figure is the median of REPEAT runs: on a 2-core VM one run can land
# in a good or a bad placement of threads on cores (direct 64 KiB swings
# between ~2 and ~3.7 GB/s from one run to the next).
REPEAT = 1 if QUICK else 3


def median_of(target, keys, *args):
    """Runs amqp_bench REPEAT times; the median of each key (NaN if none ran)."""
    got = {k: [] for k in keys}
    for _ in range(REPEAT):
        rows = bench(target, *args)
        if ok(rows):
            for k in keys:
                got[k].append(float(rows[0][k]))
    return [statistics.median(v) if v else float("nan") for v in got.values()]


def measure(target):
    n = 50000 if QUICK else 200000
    out = {}
    out["alo256"], out["alo256_p99"] = median_of(target, ("msgs_per_s", "p99_us"), "--mode", "throughput",
                                                 "--size", "256", "--qos", "alo", "--count", str(n))
    out["amo256"], = median_of(target, ("msgs_per_s",), "--mode", "throughput", "--size", "256", "--qos", "amo",
                               "--count", str(n))
    out["alo64k"], = median_of(target, ("mb_per_s",), *ALO64K)
    out["rr_p50"], out["rr_p99"] = median_of(target, ("p50_us", "p99_us"), "--mode", "reqrep",
                                             "--count", "2000" if QUICK else "10000")
    return out


def measure_fanout(target):
    """Deliveries per second, summed over 4 subscribers."""
    d, = median_of(target, ("deliveries_per_s",), "--mode", "fanout", "--subscribers", "4",
                   "--count", "20000" if QUICK else "100000")
    return d


def broker_cpu(pid):
    """cpu_seconds, or NaN when the broker's pid is unknown (RabbitMQ's pid
    file missing)."""
    try:
        return cpu_seconds(pid) if pid > 0 else float("nan")
    except OSError:
        return float("nan")


# The 0-9-1 windows, the same for every broker: unconfirmed publishes,
# consumer prefetch, deliveries per multiple ack. Smaller windows gave both
# brokers lower p99 (and no lower rates) on the 2-core machine; these stay
# what the first figures used until the lead settles them.
WIN091 = ("--inflight", "2000", "--prefetch", "1000", "--ack-every", "100")


def measure091(port, target, pid, client="raw"):
    """AMQP 0-9-1, 256 B, publisher confirms (2000 unconfirmed at most) and
    manual acks (prefetch 1000) through amqp091_load's `client` engine:
    msgs/s, p50 and p99 latency in us, and the CPU seconds per 100k
    messages of the client (its own getrusage) and of the broker (pid's
    /proc/PID/stat), each the median of REPEAT runs; or {"fail": why} from
    the first run that failed (not repeated). Both share the cores: when
    the client costs as much as the broker, the figure is the client's."""
    n = 50000 if QUICK else 200000
    got = {"rate": [], "p50": [], "p99": [], "client_cpu": [], "broker_cpu": []}
    for _ in range(REPEAT):
        cmd = [LOAD091, "--client", client, "--port", str(port), "--count", str(n), "--size", "256",
               "--target", target, "--timeout", "240", *WIN091]
        b0 = broker_cpu(pid)
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            return {"fail": "timeout (amqp091_load did not end in 300 s)"}
        except OSError as e:
            return {"fail": f"cannot run {LOAD091}: {e}"}
        rows = parse(p.stdout)
        if p.returncode != 0 or not ok(rows):
            reason = rows[0].get("reason", "error") if rows else "error"
            return {"fail": f"{reason}: {p.stderr.strip()[-300:] or p.stdout.strip()[-300:]}"}
        got["broker_cpu"].append((broker_cpu(pid) - b0) * 100000 / n)
        got["client_cpu"].append((float(rows[0]["cpu_user_s"]) + float(rows[0]["cpu_sys_s"])) * 100000 / n)
        got["rate"].append(float(rows[0]["msgs_per_s"]))
        got["p50"].append(float(rows[0]["p50_us"]))
        got["p99"].append(float(rows[0]["p99_us"]))
    return {k: statistics.median(v) for k, v in got.items()}


def measure091_both(port, target, pid):
    """The raw engine (the figure the ratios use), then librabbitmq's."""
    return {"raw": measure091(port, target, pid), "librabbitmq": measure091(port, target, pid, "librabbitmq")}


def print091(res, plexus10):
    """The 0-9-1 figures, with the issue's targets as ratios: >= 3x RabbitMQ,
    >= 80 % of Plexus's own AMQP 1.0 at-least-once rate, p99 <= 50 ms. The
    ratios use the raw engine; librabbitmq's figures are printed beside."""
    win = dict(zip(WIN091[::2], WIN091[1::2]))
    print(f"\nAMQP 0-9-1, 256 B, publisher confirms (at most {win['--inflight']} unconfirmed) + manual acks "
          f"(prefetch {win['--prefetch']}, one per {win['--ack-every']}); amqp091_load; CPU s per 100k messages")
    for name, both in res.items():
        for client, r in both.items():
            label = f"{name} ({client})"
            if "fail" in r:
                print(f"  {label:<30}  FAILED: {r['fail']}")
            else:
                print(f"  {label:<30}{r['rate']:>10,.0f} msgs/s   p50 {r['p50'] / 1000:,.1f} ms   "
                      f"p99 {r['p99'] / 1000:,.1f} ms (target <= 50 ms)   "
                      f"CPU client {r['client_cpu']:.2f} broker {r['broker_cpu']:.2f}")
    if plexus10 == plexus10 and plexus10:
        print(f"  {'plexus, AMQP 1.0 alo':<30}{plexus10:>10,.0f} msgs/s   (the same run)")
    px, rq = res.get("plexus", {}).get("raw", {}), res.get("rabbitmq 3.10", {}).get("raw")
    if "rate" in px and rq and "rate" in rq:
        print(f"  plexus 0-9-1 / rabbitmq 0-9-1: {px['rate'] / rq['rate']:.1f}x (target >= 3x)")
    elif rq is None:
        print("  rabbitmq: not measured (BENCH_RABBITMQ=1 runs it)")
    if "rate" in px and plexus10 == plexus10 and plexus10:
        print(f"  plexus 0-9-1 / plexus AMQP 1.0: {px['rate'] / plexus10:.0%} (target >= 80 %)")


PERSISTENT = [(256, 1), (256, 8), (4096, 1), (4096, 8)]


def disk_write_bytes(pid):
    """Bytes the process has sent to storage (/proc/PID/io), or None."""
    try:
        with open(f"/proc/{pid}/io") as f:
            return int(re.search(r"^write_bytes: (\d+)", f.read(), re.M).group(1))
    except (OSError, AttributeError):
        return None


def measure_persistent(target, pid, stats=None):
    """Persistent messages (durable=true) into a durable queue, confirmed:
    the publisher counts a message once the broker accepted it, which for
    both brokers means it is on disk. One consumer drains as it goes. Per
    (size, producers): msgs/s, and from the broker's side the bytes it
    wrote to disk per message and (Plexus) the log syncs per second."""
    out = {}
    for size, producers in PERSISTENT:
        n = (50000 if size <= 256 else 20000) if QUICK else (300000 if size <= 256 else 100000)
        runs = []
        for i in range(REPEAT):
            s0, w0, t0 = stats() if stats else None, disk_write_bytes(pid), time.time()
            rows = bench(target, "--mode", "throughput", "--persistent", "--qos", "alo", "--size", str(size),
                         "--producers", str(producers), "--count", str(n),
                         "--queue", f"persist-{size}-{producers}-{i}", "--deadline", "300")
            dt, w1, s1 = time.time() - t0, disk_write_bytes(pid), stats() if stats else None
            if not ok(rows):
                continue
            rate = float(rows[0]["msgs_per_s"])
            syncs = (s1[0] - s0[0]) / dt if stats else float("nan")  # over the whole run, set-up included
            per_msg = (w1 - w0) / n if w0 is not None and w1 is not None else float("nan")
            runs.append((rate, syncs, per_msg))
        if runs:
            runs.sort()
            out[(size, producers)] = runs[len(runs) // 2]
    return out


def print_persistent(results):
    print("\npersistent messages, confirmed (1 consumer; disk bytes: /proc/PID/io write_bytes per message)")
    print(f"  {'target':<22}{'size':>7}{'producers':>11}{'msgs/s':>12}{'MB/s':>8}{'syncs/s':>10}{'disk B/msg':>12}")
    for name, res in results.items():
        for (size, producers), (rate, syncs, per_msg) in sorted(res.items()):
            sy = f"{syncs:,.0f}" if syncs == syncs else "-"
            pm = f"{per_msg:,.0f}" if per_msg == per_msg else "-"
            print(f"  {name:<22}{size:>7}{producers:>11}{rate:>12,.0f}{rate * size / 1e6:>8.1f}{sy:>10}{pm:>12}")
    if "plexus" in results and "rabbitmq 3.10" in results:
        for key in PERSISTENT:
            p, r = results["plexus"].get(key), results["rabbitmq 3.10"].get(key)
            if p and r:
                print(f"  plexus / rabbitmq, {key[0]} B x {key[1]}: {p[0] / r[0]:.1f}x")


def ok(rows):
    return bool(rows) and all(r.get("status") == "ok" for r in rows)


def backlog_and_drain(pl):
    """Fill a queue with 1 M 256-byte messages (no consumer), note RSS, then
    drain it: both rates should match if every queue operation is O(1).
    amqp_bench --mode fill is one producer, at-least-once (it returns once
    every message is accepted); --mode drain one consumer that accepts
    exactly n and checks seq 0..n-1 arrive once, in order."""
    n = 200000 if QUICK else 1000000
    base = pl.rss_kib()
    url = ["--url", f"amqp://127.0.0.1:{pl.port}"]
    common = ["--queue", "backlog", "--size", "256", "--count", str(n), "--deadline", "600"]
    fill = bench(url, "--mode", "fill", "--qos", "alo", *common, timeout=900)
    rss = pl.rss_kib()
    drain = bench(url, "--mode", "drain", *common, timeout=900) if ok(fill) else []
    payload_kib = n * 256 / 1024
    print(f"\nbacklog of {n} x 256 B messages in one queue")
    if not ok(fill):
        print("  fill failed (see above); nothing measured")
        return
    print(f"  broker RSS growth: {(rss - base) / 1024:.0f} MiB for {payload_kib / 1024:.0f} MiB of payload "
          f"({(rss - base) / payload_kib:.2f}x; target < 2x)")
    dr = f"{fig(drain, 'msgs_per_s'):,.0f} msgs/s" if ok(drain) else "- (drain failed, see above)"
    print(f"  filled at {fig(fill, 'msgs_per_s'):,.0f} msgs/s, drained at {dr}")


def idle_connections(pl, n, hold=2):
    """Open n idle AMQP connections (SASL and open done); note the broker's
    RSS when amqp_bench prints READY (all open), then let it close them."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < n + 64:  # amqp_bench's own need
        print(f"\n{n} idle connections: skipped (open-files hard limit {hard}, needs {n + 64})")
        return
    base = pl.rss_kib()
    cmd = [BENCH, "--url", f"amqp://127.0.0.1:{pl.port}", "--mode", "idle", "--count", str(n),
           "--hold", str(hold)]
    rss, lines = None, []
    with tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        # amqp_bench has its own deadline; this only guards against a hang
        watchdog = threading.Timer(600, p.kill)
        watchdog.start()
        try:
            for line in p.stdout:
                lines.append(line)
                if line.startswith("READY ") and rss is None:
                    rss = pl.rss_kib()
            p.wait()
        finally:
            watchdog.cancel()
        err.seek(0)
        errors = err.read()
    out = "".join(lines)
    rows = parse(out)
    if p.returncode != 0 or not ok(rows):
        print(f"  ! {' '.join(cmd)} failed (exit {p.returncode}):\n{out[-2000:]}{errors[-2000:]}", file=sys.stderr)
    if rss is None:
        print(f"\n{n} idle connections: not all opened (see above); nothing measured")
        return
    open_s = f"{fig(rows, 'open_s'):.1f} s" if rows else "-"
    print(f"\n{n} idle connections (opened in {open_s}): broker RSS {rss / 1024:.0f} MiB, "
          f"{(rss - base) / n:.1f} KiB each (target <= 32 KiB; RabbitMQ 4 ~120 KiB)")


class RabbitMQ:
    """Debian's rabbitmq-server as a node of its own (own name, ports, data
    and plugins file in a temporary directory), so a RabbitMQ already
    running on the machine is neither measured nor stopped; with the AMQP
    1.0 plugin. start() gives None if it is absent or does not come up."""
    NODE = "plexus-bench@localhost"

    @classmethod
    def start(cls, conf=""):
        """conf: lines for its rabbitmq.conf (e.g. an SSL listener)."""
        if not shutil.which("rabbitmq-server"):
            print("BENCH_RABBITMQ=1 but rabbitmq-server is not installed (apt-get install rabbitmq-server)")
            return None
        b = cls()
        b.tmp = tempfile.mkdtemp(prefix="plexus-bench-rabbitmq-")
        b.port = free_port()
        with open(os.path.join(b.tmp, "enabled_plugins"), "w") as f:
            f.write("[rabbitmq_amqp1_0].\n")
        with open(os.path.join(b.tmp, "rabbitmq.conf"), "w") as f:
            f.write(conf)
        if os.geteuid() == 0:  # the server runs as the rabbitmq user (Debian's wrapper switches to it)
            subprocess.run(["chown", "-R", "rabbitmq:", b.tmp], capture_output=True)
        b.env = dict(os.environ, RABBITMQ_NODENAME=cls.NODE, RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
                     RABBITMQ_NODE_PORT=str(b.port), RABBITMQ_DIST_PORT=str(free_port()),
                     RABBITMQ_MNESIA_BASE=os.path.join(b.tmp, "mnesia"), RABBITMQ_LOG_BASE=os.path.join(b.tmp, "log"),
                     RABBITMQ_PID_FILE=os.path.join(b.tmp, "pid"),
                     RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(b.tmp, "enabled_plugins"),
                     RABBITMQ_CONFIG_FILE=os.path.join(b.tmp, "rabbitmq"))
        b.p = subprocess.Popen(["rabbitmq-server"], env=b.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if listening_within(b.port, 90, poll=0.5):
            time.sleep(2)
            return b
        print("  ! rabbitmq-server did not start (its log: " + os.path.join(b.tmp, "log") + ")")
        b.stop(keep=True)
        return None

    def ctl(self, *args):
        return subprocess.run(["rabbitmqctl", "-n", self.NODE, *args], env=self.env, capture_output=True, text=True)

    def pid(self):
        try:
            with open(os.path.join(self.tmp, "pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return -1

    def stop(self, keep=False):
        self.ctl("stop")
        try:
            self.p.wait(60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(10)
        if not keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


def measure_tls():
    """256 B at-least-once through one broker's plaintext and TLS listeners,
    runs interleaved (the machine's load moves both alike); medians, and the
    broker's CPU seconds per million messages each way. The certificate is
    a throwaway one made here with the openssl command."""
    if not shutil.which("openssl"):
        print("\nTLS: skipped (no openssl command)")
        return
    tmp = tempfile.mkdtemp(prefix="plexus-bench-tls-")
    try:
        key, cert = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"], check=True,
                       capture_output=True)
        conf = os.path.join(tmp, "tls.conf")
        with open(conf, "w") as f:
            f.write(f'tls = {{ cert_file = "{cert}"; key_file = "{key}"; }};\n')
        tls_port = free_port()
        pl = Plexus("--config", conf, "--listen-tls", f"127.0.0.1:{tls_port}")
        try:
            if not listening_within(tls_port, 10):
                raise SystemExit("plexus did not open its TLS port")
            n = 50000 if QUICK else 200000
            got = {"plain": [], "tls": []}
            cpu = {"plain": [], "tls": []}
            for _ in range(REPEAT):
                for name, url in (("plain", f"amqp://127.0.0.1:{pl.port}"), ("tls", f"amqps://127.0.0.1:{tls_port}")):
                    before = cpu_seconds(pl.p.pid)
                    rows = bench(["--url", url], "--mode", "throughput", "--size", "256", "--qos", "alo",
                                 "--count", str(n))
                    if ok(rows):
                        got[name].append(float(rows[0]["msgs_per_s"]))
                        cpu[name].append((cpu_seconds(pl.p.pid) - before) / n * 1e6)
        finally:
            pl.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not got["plain"] or not got["tls"]:
        print("\nTLS: a run failed")
        return
    plain, tls = statistics.median(got["plain"]), statistics.median(got["tls"])
    rabbit_tls = measure_tls_rabbitmq(n) if os.environ.get("BENCH_RABBITMQ") == "1" else None
    print("\n256 B at-least-once, plaintext against TLS (TLS 1.3, AES-256-GCM), one broker, runs interleaved")
    print(f"  plaintext {plain:>12,.0f} msgs/s   broker {statistics.median(cpu['plain']):.2f} CPU s per M msgs")
    print(f"  TLS       {tls:>12,.0f} msgs/s   broker {statistics.median(cpu['tls']):.2f} CPU s per M msgs")
    print(f"  TLS / plaintext: {tls / plain:.0%}   (each run: plain {', '.join(f'{v:,.0f}' for v in got['plain'])};"
          f" TLS {', '.join(f'{v:,.0f}' for v in got['tls'])})  (target >= 60 %)")
    if rabbit_tls:
        print(f"  rabbitmq 3.10 over TLS {rabbit_tls:>12,.0f} msgs/s (AMQP 1.0 plugin, its SSL listener)")
        print(f"  plexus TLS / rabbitmq TLS: {tls / rabbit_tls:.1f}x   (target >= 5x)")
    elif os.environ.get("BENCH_RABBITMQ") == "1":
        print("  rabbitmq 3.10 over TLS: no figure (it did not start or a run failed)")


def measure_tls_rabbitmq(n):
    """The same 256 B at-least-once through RabbitMQ's own SSL listener (a
    throwaway certificate it can read), for the issue's ratio."""
    tmp = tempfile.mkdtemp(prefix="plexus-bench-rabbit-tls-")
    try:
        key, cert = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"], check=True,
                       capture_output=True)
        os.chmod(tmp, 0o755)
        os.chmod(key, 0o644)  # the server runs as the rabbitmq user; a throwaway key
        port = free_port()
        rq = RabbitMQ.start(f"listeners.ssl.default = {port}\nssl_options.certfile = {cert}\n"
                            f"ssl_options.keyfile = {key}\nssl_options.verify = verify_none\n"
                            "ssl_options.fail_if_no_peer_cert = false\n")
        if not rq:
            return None
        try:
            if not listening_within(port, 30):
                print("  ! RabbitMQ did not open its SSL listener")
                return None
            runs = []
            for _ in range(REPEAT):
                rows = bench(["--url", f"amqps://guest:guest@127.0.0.1:{port}", "--addr-style", "rabbitmq310"],
                             "--mode", "throughput", "--size", "256", "--qos", "alo", "--count", str(n))
                if ok(rows):
                    runs.append(float(rows[0]["msgs_per_s"]))
            return statistics.median(runs) if runs else None
        finally:
            rq.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    if os.environ.get("BENCH_ONLY") == "tls":
        measure_tls()
        return
    print(f"AMQP benchmarks ({os.cpu_count()} cores; broker and clients share them; "
          f"each figure the median of {REPEAT} run{'s' if REPEAT > 1 else ''})")
    only_persistent = os.environ.get("BENCH_ONLY") == "persistent"
    only091 = os.environ.get("BENCH_ONLY") == "amqp091"
    results, cpu, res091 = {}, {}, {}
    if only091:
        pl = Plexus()
        try:
            plexus10, = median_of(["--url", f"amqp://127.0.0.1:{pl.port}"], ("msgs_per_s",), "--mode", "throughput",
                                  "--size", "256", "--qos", "alo", "--count", str(50000 if QUICK else 200000))
            res091["plexus"] = measure091_both(pl.port, "plexus", pl.p.pid)
        finally:
            pl.stop()
        if os.environ.get("BENCH_RABBITMQ") == "1":
            rq = RabbitMQ.start()
            if rq:
                try:
                    res091["rabbitmq 3.10"] = measure091_both(rq.port, "rabbitmq", rq.pid())
                finally:
                    rq.stop()
        print091(res091, plexus10)
        return
    if not only_persistent:
        results["direct"] = measure(["--direct"])
        cpu["direct"] = cpu_per_gb(["--direct"])
    # Plexus as `make run` starts it (one scheduler per core), then with one
    # scheduler: where clients share the cores, that saves the cross-thread
    # wake-ups a message makes between connections on different schedulers.
    persistent = {}
    for name, extra in (("plexus", ()), ("plexus, 1 scheduler", ("--schedulers", "1"))):
        pl = Plexus(*extra)
        try:
            url = ["--url", f"amqp://127.0.0.1:{pl.port}"]
            if not only_persistent:
                results[name] = measure(url)
                results[name]["fanout"] = measure_fanout(url)
                cpu[name] = cpu_per_gb(url, pl.p.pid)
            if name == "plexus":
                if not only_persistent:
                    res091[name] = measure091_both(pl.port, name, pl.p.pid)
                persistent[name] = measure_persistent(url, pl.p.pid, pl.store_stats)
        finally:
            pl.stop()
    px = None if only_persistent else ProtonExampleBroker.start()
    if px:
        try:
            purl = ["--url", f"amqp://127.0.0.1:{px.port}", "--addr-style", "plain"]
            results["proton example broker"] = measure(purl)
            cpu["proton example broker"] = cpu_per_gb(purl, px.p.pid)
        finally:
            px.stop()
    if os.environ.get("BENCH_RABBITMQ") == "1":
        rq = RabbitMQ.start()
        if rq:
            try:
                rurl = ["--url", f"amqp://guest:guest@127.0.0.1:{rq.port}", "--addr-style", "rabbitmq310"]
                if not only_persistent:
                    results["rabbitmq 3.10"] = measure(rurl)
                    results["rabbitmq 3.10"]["fanout"] = measure_fanout(rurl)
                    res091["rabbitmq 3.10"] = measure091_both(rq.port, "rabbitmq", rq.pid())
                persistent["rabbitmq 3.10"] = measure_persistent(rurl, rq.pid())
                durable = rq.ctl("-q", "list_queues", "name", "durable").stdout
                if any(l.startswith("persist-") and l.split()[-1] == "false" for l in durable.splitlines()):
                    print("  ! RabbitMQ declared the persistent benchmark's queues non-durable:\n" + durable)
            finally:
                rq.stop()
    if only_persistent:
        print_persistent(persistent)
        return
    base = results["direct"]
    table("throughput (ratio: of direct)", results, base,
          [("256 B alo msgs/s", "alo256", "{:,.0f}", False), ("256 B amo msgs/s", "amo256", "{:,.0f}", False),
           ("64 KiB alo MB/s", "alo64k", "{:,.0f}", False)])
    table("latency (ratio: x direct)", results, base,
          [("req/rep p50 us", "rr_p50", "{:.0f}", True), ("req/rep p99 us", "rr_p99", "{:.0f}", True),
           ("p99 under load us", "alo256_p99", "{:,.0f}", True)])
    print("\n64 KiB at-least-once, CPU seconds per GB moved (both cores are shared: bytes/s <= 2 / total)")
    for name, (clients, broker) in cpu.items():
        print(f"  {name:<22}  clients {clients:5.2f}  broker {broker:5.2f}  total {clients + broker:5.2f}")
    print091(res091, results.get("plexus", {}).get("alo256", float("nan")))
    print("\nfan-out to 4 subscribers")
    for name, res in results.items():
        if "fanout" in res:
            print(f"  {name:<22}{res['fanout']:>14,.0f} deliveries/s")
    if "rabbitmq 3.10" in results:
        print(f"  plexus / rabbitmq: {results['plexus']['fanout'] / results['rabbitmq 3.10']['fanout']:.1f}x")
    print_persistent(persistent)
    # Memory figures each on a fresh broker: one that has freed memory
    # keeps it (the allocator does not return it) and reuses it, which
    # would hide much of what a backlog or a connection costs.
    pl = Plexus()
    try:
        backlog_and_drain(pl)
    finally:
        pl.stop()
    pl = Plexus()
    try:
        idle_connections(pl, 2000 if QUICK else 10000)
    finally:
        pl.stop()
    measure_tls()


if __name__ == "__main__":
    main()
