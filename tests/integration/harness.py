"""harness.py — start the real bin/plexus on free loopback ports for a test.

Each test gets its own broker, data directory and log file; the broker's
stderr goes to the log so a failing test can show what the broker said.
"""
import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import uuid

PLEXUS = os.environ.get("PLEXUS_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "bin", "plexus")
ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))


def free_ports(n):
    """n free loopback ports, all different: each socket stays bound until
    all n are taken (two taken one after the other could be the same)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port():
    return free_ports(1)[0]


def run(*args, timeout=10):
    """Runs plexus with args to completion; returns (code, stdout, stderr)."""
    p = subprocess.run([PLEXUS, *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


class Broker:
    """A running broker: `with Broker() as b:` ... b.port, b.url, b.log()."""

    def __init__(self, *extra, config=None, data_dir=None):
        self.tmp = tempfile.TemporaryDirectory(prefix="plexus-test-")
        self.port, self.admin_port = free_ports(2)
        self.data_dir = data_dir or os.path.join(self.tmp.name, "data")
        self.log_path = os.path.join(self.tmp.name, "plexus.log")
        args = [PLEXUS]
        if config:
            args += ["--config", config]
        args += ["--listen", f"127.0.0.1:{self.port}", "--admin", f"127.0.0.1:{self.admin_port}",
                 "--data-dir", self.data_dir, *extra]
        self.args = args
        self.proc = None

    @property
    def url(self):
        return f"amqp://127.0.0.1:{self.port}"

    def start(self, wait=True):
        self.logf = open(self.log_path, "ab")
        self.proc = track(subprocess.Popen(self.args, stdout=self.logf, stderr=subprocess.STDOUT))
        if wait:
            self.wait_log("started", timeout=10)
        return self

    def log(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def wait_log(self, text, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.log():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"plexus exited ({self.proc.returncode}) before '{text}':\n{self.log()}")
            time.sleep(0.02)
        raise AssertionError(f"no '{text}' in the log within {timeout}s:\n{self.log()}")

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends sig and waits; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"plexus did not stop within {timeout}s of {sig!r}:\n{self.log()}")
        self.logf.close()
        return self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.stop()
        self.tmp.cleanup()


# ------------------------------------------ 0-9-1 tests against another broker
#
# PLEXUS_TEST_BROKER=amqp://guest:guest@127.0.0.1:PORT runs the AMQP 0-9-1
# client tests (51-56) against a broker that is already running, RabbitMQ
# say, instead of starting bin/plexus: that checks the tests themselves
# against the broker whose behaviour Plexus follows. Cases that need the
# Plexus process (kill -9 and restart, its log, its AMQP 1.0 addresses) are
# skipped in that mode only, with a reason naming it.

import urllib.parse as _urlparse  # noqa: E402

TEST_BROKER = os.environ.get("PLEXUS_TEST_BROKER") or None


class External:
    """The broker PLEXUS_TEST_BROKER names, shaped like Broker for the tests
    that use it: port, url091, user, password; start and stop do nothing."""

    def __init__(self, url):
        u = _urlparse.urlsplit(url)
        if u.scheme != "amqp" or not u.port:
            raise SystemExit(f"PLEXUS_TEST_BROKER={url!r}: expected amqp://USER:PASS@HOST:PORT")
        self.host, self.port = u.hostname, u.port
        self.user = _urlparse.unquote(u.username or "guest")
        self.password = _urlparse.unquote(u.password or "guest")
        self.admin_port = None
        self.proc = None

    def start(self, wait=True):
        return self

    def stop(self, *a, **kw):
        return 0

    def log(self):
        return ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def broker091(*extra, **kw):
    """A started broker for a 0-9-1 client test: bin/plexus on free ports,
    or the one PLEXUS_TEST_BROKER names. Stop it with stop091."""
    if TEST_BROKER:
        return External(TEST_BROKER)
    return Broker(*extra, **kw).start()


class Broker091Test(unittest.TestCase):
    """One broker091() for the test class, stopped with stop091 after it
    (Plexus must exit 0)."""

    @classmethod
    def setUpClass(cls):
        cls.b = broker091()

    @classmethod
    def tearDownClass(cls):
        stop091(cls.b)


def stop091(b):
    """Stops a broker from broker091; asserts Plexus exited 0."""
    if isinstance(b, External):
        return
    code = b.stop()
    log = b.log()
    b.tmp.cleanup()
    assert code == 0, f"plexus exited {code}:\n{log}"


def url091(b, vhost=True):
    """The 0-9-1 URL of a broker (user guest unless PLEXUS_TEST_BROKER says
    otherwise); with vhost, naming the default vhost "/" explicitly."""
    user, password, host = getattr(b, "user", "guest"), getattr(b, "password", "guest"), getattr(b, "host", "127.0.0.1")
    q = _urlparse.quote
    return f"amqp://{q(user, safe='')}:{q(password, safe='')}@{host}:{b.port}" + ("/%2F" if vhost else "")


_children = []  # processes a watchdog kills before it ends the file


def track(proc):
    """Has the watchdog kill proc (a Popen) if it fires; returns proc."""
    _children.append(proc)
    return proc


def watchdog(seconds):
    """Ends this test file if it still runs after `seconds`: every thread's
    stack on stderr, the brokers it started and the processes it tracked
    killed, exit 1. A blocking client library waits forever for an answer
    a broker never sends, and one hung file would hang the whole run."""
    import faulthandler
    import sys
    import threading

    def fire():
        print(f"\nwatchdog: the test file ran over {seconds} s; stacks:", file=sys.stderr, flush=True)
        faulthandler.dump_traceback(all_threads=True)
        for p in _children:
            if p.poll() is None:
                p.kill()
        os._exit(1)
    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()


def plexus_only(why):
    """Skips a case under PLEXUS_TEST_BROKER (only there): it needs the
    Plexus process itself."""
    return unittest.skipIf(TEST_BROKER, f"PLEXUS_TEST_BROKER set: {why}")


def uniq(prefix):
    """A queue or exchange name no other run uses (the PLEXUS_TEST_BROKER
    broker is shared by tests running side by side, and by reruns)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


GOPATH_DEBIAN = "/usr/share/gocode"  # Debian's golang-*-dev packages put their source here


def go_build(src, out):
    """Builds the Go program in directory src (relative to the repository)
    into build/clients/out, offline: GOPATH mode over Debian's packaged
    sources (golang-github-rabbitmq-amqp091-go-dev), no module proxy, the
    build cache in build/. Returns the binary's path; skips the caller for
    a missing Go or amqp091-go."""
    import shutil
    if not shutil.which("go"):
        missing("golang-go")
    if not os.path.isdir(os.path.join(GOPATH_DEBIAN, "src", "github.com", "rabbitmq", "amqp091-go")):
        missing("golang-github-rabbitmq-amqp091-go-dev")
    dest = os.path.join(ROOT, "build", "clients", out)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    env = dict(os.environ, GO111MODULE="off", GOPATH=GOPATH_DEBIAN, GOPROXY="off", GOFLAGS="", GOENV="off",
               GOCACHE=os.path.join(ROOT, "build", "go-cache"), CGO_ENABLED="0")
    p = subprocess.run(["go", "build", "-o", dest, "."], cwd=os.path.join(ROOT, src), env=env,
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise AssertionError(f"go build {src} failed:\n{p.stderr}")
    return dest


def main():
    """Runs the file's tests; prints what run.sh counts (cases passed,
    failed, skipped, and each skip's reason) and exits 1 on any failure."""
    prog = unittest.main(verbosity=2, exit=False)
    r = prog.result
    for case, why in r.skipped:
        print(f"#plexus-skip {case.id()}: {why}")
    # A case can fail twice (the test, then a cleanup): count it once.
    failed = len({id(case) for case, _ in r.failures + r.errors}) + len(r.unexpectedSuccesses)
    passed = r.testsRun - failed - len(r.skipped)
    print(f"#plexus-counts passed={passed} failed={failed} skipped={len(r.skipped)}")
    raise SystemExit(0 if failed == 0 else 1)


def missing(what):
    """Skips the calling test for a missing dependency: counted as skipped,
    and as a failure under CI (which installs every dependency)."""
    raise unittest.SkipTest(f"missing: {what}")


def config_file(test, text):
    """A configuration file holding text, removed when the test ends."""
    f = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
    f.write(text)
    f.close()
    test.addCleanup(os.unlink, f.name)
    return f.name


class BrokerTest(unittest.TestCase):
    """One broker for the test class (which must stop cleanly, exit 0), one
    AMQP connection (self.c) per test."""

    broker_args = ()

    @classmethod
    def setUpClass(cls):
        cls.b = Broker(*cls.broker_args).start()

    @classmethod
    def tearDownClass(cls):
        code = cls.b.stop()
        log = cls.b.log()
        cls.b.tmp.cleanup()
        assert code == 0, f"plexus exited {code}:\n{log}"

    def setUp(self):
        self.c = connect(self.b)

    def tearDown(self):
        self.c.close()


# ----------------------------------------------------------- AMQP clients

import itertools

from proton import Delivery, Message, symbol  # noqa: E402,F401  (re-exported for the tests)
from proton.reactor import LinkOption  # noqa: E402
from proton.utils import BlockingConnection  # noqa: E402

_names = itertools.count()


def name(prefix="link"):
    """A link name no other link in this test uses (proton refuses two
    attached links with one name)."""
    return f"{prefix}-{next(_names)}-{uuid.uuid4().hex[:6]}"


class Props(LinkOption):
    """Attach properties for a link: queue arguments for the queue it creates."""

    def __init__(self, props):
        self.props = {symbol(k): v for k, v in props.items()}

    def apply(self, link):
        link.properties = self.props


def connect(broker, user=None, password=None, timeout=10, **kw):
    url = broker.url
    if user is not None:
        url = f"amqp://{user}:{password}@127.0.0.1:{broker.port}"
    return BlockingConnection(url, timeout=timeout, **kw)


def sender(conn, address, **kw):
    return conn.create_sender(address, name=name("snd"), **kw)


def receiver(conn, address, credit=None, **kw):
    return conn.create_receiver(address, name=name("rcv"), credit=credit, **kw)


def receive_all(rcv, idle=0.5, accept=True, close=True):
    """Every message that arrives until none has for `idle` seconds; then
    the link is closed (an open one would keep taking messages)."""
    out = []
    while True:
        try:
            m = rcv.receive(timeout=idle)
        except Exception:
            break
        out.append(m)
        if accept:
            rcv.accept()
    if close:
        rcv.close()
    return out


def settle(rcv, state, failed=False, undeliverable=False):
    """Settles the oldest unsettled delivery of rcv with state (and, for
    MODIFIED, the delivery-failed and undeliverable-here flags)."""
    d = rcv.fetcher.unsettled.popleft()
    if state == Delivery.MODIFIED:
        d.local.failed = failed
        d.local.undeliverable = undeliverable
    d.update(state)
    d.settle()


from proton.handlers import MessagingHandler  # noqa: E402
from proton.reactor import Container  # noqa: E402


class _Outcomes(MessagingHandler):
    def __init__(self, url, address, messages, props):
        super().__init__(auto_settle=True)
        self.url, self.address, self.messages, self.props = url, address, list(messages), props
        self.results = [None] * len(self.messages)
        self.descriptions = [None] * len(self.messages)
        self.pending = len(self.messages)
        self.index, self.sent = {}, 0

    def on_start(self, event):
        conn = event.container.connect(self.url)
        opts = [Props(self.props)] if self.props else None
        event.container.create_sender(conn, self.address, options=opts)

    def on_sendable(self, event):
        while self.messages and event.sender.credit:
            d = event.sender.send(self.messages.pop(0))
            self.index[d.tag] = self.sent
            self.sent += 1

    def _done(self, event, state):
        # Dispositions may arrive in any order: place each by its delivery.
        cond = event.delivery.remote.condition
        i = self.index[event.delivery.tag]
        self.results[i] = (state, cond.name if cond else None)
        self.descriptions[i] = cond.description if cond else None
        self.pending -= 1
        if not self.pending:
            event.connection.close()

    def on_accepted(self, event):
        self._done(event, "accepted")

    def on_rejected(self, event):
        self._done(event, "rejected")

    def on_released(self, event):
        self._done(event, "modified" if event.delivery.remote_state == Delivery.MODIFIED else "released")

    def on_link_error(self, event):
        self.results = [("link-error", event.link.remote_condition.name)]
        event.connection.close()


def send_outcomes(broker, address, messages, props=None, descriptions=False):
    """Sends messages on one link and returns [(outcome, condition name)]
    in order, as the broker settled them (with descriptions: and the
    conditions' descriptions, as a second list)."""
    h = _Outcomes(broker.url, address, messages, props)
    Container(h).run()
    return (h.results, h.descriptions) if descriptions else h.results


# ------------------------------------------------------ raw AMQP frames

import struct  # noqa: E402

from proton import Data, Described, uint, ulong  # noqa: E402

SASL_HEADER = b"AMQP\x03\x01\x00\x00"
AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
OPEN, BEGIN, ATTACH, FLOW, TRANSFER, DISPOSITION, DETACH, END, CLOSE = range(0x10, 0x19)
SASL_INIT, SASL_OUTCOME = 0x41, 0x44


def encode(obj):
    d = Data()
    d.put_object(obj)
    return d.encode()


def perf(code, *fields):
    """A performative: the described list with descriptor code."""
    return Described(ulong(code), list(fields))


class Raw:
    """A hand-driven AMQP peer, for what stock clients will not do: skip
    steps, send garbage, break frames, go silent."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.settimeout(5)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def frame(self, obj, ftype=0, channel=0, payload=b""):
        body = encode(obj) + payload
        return struct.pack(">IBBH", 8 + len(body), 2, ftype, channel) + body

    def send_frame(self, obj, ftype=0, channel=0, payload=b""):
        self.send(self.frame(obj, ftype, channel, payload))

    def _fill(self, timeout):
        self.s.settimeout(timeout)
        try:
            b = self.s.recv(1 << 20)
        except socket.timeout:
            return False
        if not b:
            raise EOFError
        self.buf += b
        return True

    def read(self, timeout=5):
        """The next header (bytes) or frame (type, channel, performative
        code or None for an empty frame, fields); None if nothing came."""
        deadline = time.time() + timeout
        while True:
            if self.buf[:4] == b"AMQP" and len(self.buf) >= 8:
                h, self.buf = self.buf[:8], self.buf[8:]
                return h
            if len(self.buf) >= 8 and self.buf[:4] != b"AMQP":
                size, doff, ftype, ch = struct.unpack(">IBBH", self.buf[:8])
                if len(self.buf) >= size:
                    body, self.buf = self.buf[doff * 4:size], self.buf[size:]
                    if not body:
                        return (ftype, ch, None, None)
                    d = Data()
                    d.decode(body)
                    d.next()
                    obj = d.get_object()
                    return (ftype, ch, int(obj.descriptor), obj.value)
            left = deadline - time.time()
            if left <= 0 or not self._fill(left):
                return None

    def expect(self, code, timeout=5):
        """Reads until a frame with this performative; fails on EOF."""
        while True:
            f = self.read(timeout)
            if f is None:
                raise AssertionError(f"no performative {code:#x} within {timeout}s")
            if isinstance(f, tuple) and f[2] == code:
                return f

    def closed(self, timeout=5):
        """True once the broker has closed the socket (reading what comes)."""
        deadline = time.time() + timeout
        try:
            while time.time() < deadline:
                self._fill(max(0.01, deadline - time.time()))
        except (EOFError, ConnectionResetError):
            return True
        return False

    def login(self):
        """SASL ANONYMOUS, then the AMQP header (not yet open)."""
        self.send(SASL_HEADER + self.frame(perf(SASL_INIT, symbol("ANONYMOUS"), b"raw"), ftype=1))
        self.expect(SASL_OUTCOME)
        self.send(AMQP_HEADER)

    def open(self, idle_ms=None, max_frame=None):
        self.login()
        self.send_frame(perf(OPEN, "raw-client", None, None if max_frame is None else uint(max_frame), None,
                             None if idle_ms is None else uint(idle_ms)))
        return self.expect(OPEN)

    def close(self):
        self.s.close()


class SurvivorTest(unittest.TestCase):
    """For tests that throw bad input at one broker (which must stop
    cleanly, exit 0): after each test, whatever it did, the broker still
    takes a message and hands it back to a fresh client."""

    @classmethod
    def setUpClass(cls):
        cls.b = Broker().start()

    @classmethod
    def tearDownClass(cls):
        code = cls.b.stop()
        assert code == 0, cls.b.log()
        cls.b.tmp.cleanup()

    def tearDown(self):
        c = connect(self.b)
        sender(c, "/queues/alive").send(Message(body="still here"))
        self.assertEqual(receiver(c, "/queues/alive").receive(timeout=5).body, "still here")
        c.close()
