#!/usr/bin/python3
"""41: running as a service — `make install` into a scratch DESTDIR lays out
the tree (binaries that run, a configuration that parses, a systemd unit
that systemd-analyze accepts, with the sandboxing the README promises), an
administrator's configuration survives a reinstall and an uninstall, and
the installed broker speaks systemd's readiness protocol: READY=1 only once
its ports accept connections, STOPPING=1 on SIGTERM, nothing from a broker
that cannot bind its port.

The binaries installed are the ones under test ($PLEXUS_BIN, $PLEXUSCTL_BIN;
under `make asan` the sanitized ones): make is told not to rebuild them.
"""
import configparser
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import time
import unittest

from harness import PLEXUS, ROOT, free_ports, main, missing

PLEXUSCTL = os.environ.get("PLEXUSCTL_BIN") or os.path.join(ROOT, "bin", "plexusctl")
AMQP_HEADER = b"AMQP\x00\x01\x00\x00"


def make(*args, check=True):
    """Runs make in the source tree with the binaries under test; a parent
    make's MAKEFLAGS (its variables, its jobserver) is kept out."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    plexus, ctl = os.path.abspath(PLEXUS), os.path.abspath(PLEXUSCTL)
    cmd = ["make", "--no-print-directory", "-C", ROOT, f"PLEXUS={plexus}", f"CTL={ctl}", "-o", plexus, "-o", ctl,
           *args]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    return p


class Installed(unittest.TestCase):
    """One `make install DESTDIR=... PREFIX=/usr` shared by the cases."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="plexus-install-")
        cls.dest = os.path.join(cls.tmp.name, "root")
        make("install", f"DESTDIR={cls.dest}", "PREFIX=/usr")
        cls.bin = os.path.join(cls.dest, "usr/bin/plexus")
        cls.ctl = os.path.join(cls.dest, "usr/bin/plexusctl")
        cls.conf = os.path.join(cls.dest, "etc/plexus/plexus.conf")
        cls.unit = os.path.join(cls.dest, "usr/lib/systemd/system/plexus.service")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_the_tree_holds_binaries_that_run_and_a_configuration_that_parses(self):
        for path, name in ((self.bin, "plexus"), (self.ctl, "plexusctl")):
            mode = os.stat(path).st_mode
            self.assertTrue(stat.S_ISREG(mode) and mode & 0o111 == 0o111, f"{path}: mode {oct(mode)}")
            p = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertTrue(p.stdout.startswith(f"{name} "), p.stdout)
        # The configuration may hold passwords: root's alone (systemd hands
        # it to the broker as a credential).
        self.assertEqual(stat.S_IMODE(os.stat(self.conf).st_mode), 0o640)
        with open(self.conf, "rb") as a, open(os.path.join(ROOT, "conf/plexus.conf"), "rb") as b:
            self.assertEqual(a.read(), b.read())
        p = subprocess.run([self.bin, "--config", self.conf, "--check-config"], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # Nothing else is installed: no stray temporary file.
        found = sorted(os.path.relpath(os.path.join(d, f), self.dest) for d, _, fs in os.walk(self.dest) for f in fs)
        self.assertEqual(found, ["etc/plexus/plexus.conf", "usr/bin/plexus", "usr/bin/plexusctl",
                                 "usr/lib/systemd/system/plexus.service"])

    def test_the_unit_names_the_installed_paths_and_sandboxes_the_broker(self):
        """Read key by key (what systemd-analyze cannot tell: that the
        sandboxing is there at all)."""
        with open(self.unit) as f:
            text = f.read()
        self.assertNotIn("@", text.replace("AF_", ""), "a placeholder left unsubstituted")
        u = configparser.RawConfigParser(strict=True, delimiters=("=",), comment_prefixes=("#",))
        u.optionxform = str
        u.read_string(text)
        s = u["Service"]
        self.assertEqual(s["ExecStart"], "/usr/bin/plexus --config %d/plexus.conf --data-dir /var/lib/plexus")
        self.assertEqual(s["LoadCredential"], "plexus.conf:/etc/plexus/plexus.conf")
        want = {"Type": "notify", "DynamicUser": "yes", "StateDirectory": "plexus", "ProtectSystem": "strict",
                "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes", "NoNewPrivileges": "yes",
                "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "Restart": "on-failure",
                "CapabilityBoundingSet": ""}
        for k, v in want.items():
            self.assertEqual(s.get(k), v, k)
        self.assertGreaterEqual(int(s["LimitNOFILE"]), 65536)
        # No other writable path, no output redirected away from the journal.
        for k in ("ReadWritePaths", "StandardOutput", "StandardError", "User"):
            self.assertNotIn(k, s)
        self.assertEqual(u["Install"]["WantedBy"], "multi-user.target")

    def test_systemd_analyze_accepts_the_unit_and_refuses_a_broken_one(self):
        if not shutil.which("systemd-analyze"):
            missing("systemd-analyze (Debian package systemd)")
        # verify checks that ExecStart's binary exists on this machine, so
        # this unit comes from an install whose paths are real (a PREFIX in
        # the scratch directory, no DESTDIR).
        prefix = os.path.join(self.tmp.name, "prefix", "usr")
        make("install", f"PREFIX={prefix}")
        unit = os.path.join(prefix, "lib/systemd/system/plexus.service")
        p = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True, timeout=60)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))
        # The same unit with a bad value and a misspelt key: verify only
        # warns (exit 0), so its output is what tells.
        with open(unit) as f:
            text = f.read()
        bad = os.path.join(self.tmp.name, "bad.service")
        with open(bad, "w") as f:
            f.write(text.replace("ProtectSystem=strict", "ProtectSystem=stricter")
                    .replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
        p = subprocess.run(["systemd-analyze", "verify", bad], capture_output=True, text=True, timeout=60)
        self.assertIn("stricter", p.stderr)
        self.assertIn("NoNewPrivilege", p.stderr)


class Reinstall(unittest.TestCase):
    def test_an_edited_configuration_survives_reinstall_and_uninstall(self):
        with tempfile.TemporaryDirectory(prefix="plexus-install-") as d:
            make("install", f"DESTDIR={d}", "PREFIX=/usr")
            conf = os.path.join(d, "etc/plexus/plexus.conf")
            with open(conf, "a") as f:
                f.write("# edited\n")
            p = make("install", f"DESTDIR={d}", "PREFIX=/usr")
            self.assertIn("keeping", p.stdout)
            with open(conf) as f:
                self.assertTrue(f.read().endswith("# edited\n"))
            make("uninstall", f"DESTDIR={d}", "PREFIX=/usr")
            for f in ("usr/bin/plexus", "usr/bin/plexusctl", "usr/lib/systemd/system/plexus.service"):
                self.assertFalse(os.path.exists(os.path.join(d, f)), f)
            self.assertTrue(os.path.exists(conf))
            # Unchanged, it goes with the rest.
            os.unlink(conf)
            make("install", f"DESTDIR={d}", "PREFIX=/usr")
            make("uninstall", f"DESTDIR={d}", "PREFIX=/usr")
            self.assertFalse(os.path.exists(os.path.join(d, "etc/plexus")))

    def test_a_local_prefix_puts_configuration_under_it(self):
        with tempfile.TemporaryDirectory(prefix="plexus-install-") as d:
            make("install", f"DESTDIR={d}")  # PREFIX defaults to /usr/local
            for f in ("usr/local/bin/plexus", "usr/local/etc/plexus/plexus.conf",
                      "usr/local/lib/systemd/system/plexus.service"):
                self.assertTrue(os.path.isfile(os.path.join(d, f)), f)
            with open(os.path.join(d, "usr/local/lib/systemd/system/plexus.service")) as f:
                text = f.read()
            self.assertIn("ExecStart=/usr/local/bin/plexus ", text)
            self.assertIn("LoadCredential=plexus.conf:/usr/local/etc/plexus/plexus.conf", text)


class Notify(unittest.TestCase):
    """The installed broker and a NOTIFY_SOCKET this test binds, as systemd
    would (a unix datagram socket; SO_PASSCRED tells who sent each one)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="plexus-notify-")
        dest = os.path.join(cls.tmp.name, "root")
        make("install", f"DESTDIR={dest}", "PREFIX=/usr")
        cls.bin = os.path.join(dest, "usr/bin/plexus")
        cls.conf = os.path.join(dest, "etc/plexus/plexus.conf")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=self.tmp.name)
        self.sock_path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.sock_path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.sock.close()

    def start(self, port, admin_port, notify_socket=None):
        self.log = os.path.join(self.dir, "plexus.log")
        env = dict(os.environ, NOTIFY_SOCKET=notify_socket or self.sock_path)
        with open(self.log, "ab") as logf:
            p = subprocess.Popen([self.bin, "--config", self.conf, "--listen", f"127.0.0.1:{port}", "--admin",
                                  f"127.0.0.1:{admin_port}", "--data-dir", os.path.join(self.dir, "data")],
                                 stdout=logf, stderr=subprocess.STDOUT, env=env)
        self.procs.append(p)
        return p

    def broker_log(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def recv(self, timeout):
        """The next notification as (text, sender pid), or None."""
        self.sock.settimeout(timeout)
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            return None
        pid = None
        for level, kind, body in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", body[:12])[0]
        return data.decode(), pid

    def amqp_answers(self, port):
        """True if the port takes a connection and answers the AMQP header."""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
                c.sendall(AMQP_HEADER)
                c.settimeout(2)
                return c.recv(8) == AMQP_HEADER
        except OSError:
            return False

    def test_ready_once_listening_and_stopping_on_sigterm(self):
        port, admin_port = free_ports(2)
        p = self.start(port, admin_port)
        # Until READY comes, nothing but READY may come; when it does, both
        # ports must already take connections (checked before anything else).
        got = self.recv(30)
        self.assertIsNotNone(got, f"no notification within 30 s:\n{self.broker_log()}")
        text, pid = got
        amqp_up = self.amqp_answers(port)
        try:
            socket.create_connection(("127.0.0.1", admin_port), timeout=2).close()
            admin_up = True
        except OSError:
            admin_up = False
        self.assertEqual(text.split("\n"), ["READY=1"])
        self.assertEqual(pid, p.pid)
        self.assertTrue(amqp_up, "READY=1 came before the AMQP port answered")
        self.assertTrue(admin_up, "READY=1 came before the admin port accepted")
        self.assertIsNone(self.recv(0.3), "a second notification while running")
        p.send_signal(signal.SIGTERM)
        got = self.recv(30)
        self.assertIsNotNone(got, f"no STOPPING=1 after SIGTERM:\n{self.broker_log()}")
        self.assertEqual(got, ("STOPPING=1", p.pid))
        self.assertEqual(p.wait(30), 0, self.broker_log())
        self.assertIsNone(self.recv(0.1))

    def test_a_taken_amqp_port_exits_non_zero_without_ready(self):
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        try:
            p = self.start(taken.getsockname()[1], free_ports(1)[0])
            self.assertNotEqual(p.wait(30), 0, self.broker_log())
        finally:
            taken.close()
        self.assertIn("cannot listen", self.broker_log())
        self.assertIsNone(self.recv(0.2), "a broker that did not start notified")

    def test_a_taken_admin_port_exits_non_zero_without_ready(self):
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        try:
            p = self.start(free_ports(1)[0], taken.getsockname()[1])
            self.assertNotEqual(p.wait(30), 0, self.broker_log())
        finally:
            taken.close()
        self.assertIsNone(self.recv(0.2), "a broker that did not start notified")

    def test_an_unreachable_notify_socket_is_logged_and_the_broker_runs(self):
        port, admin_port = free_ports(2)
        p = self.start(port, admin_port, notify_socket=os.path.join(self.dir, "nobody-listens"))
        deadline = time.time() + 30
        while "started" not in self.broker_log() and p.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        self.assertTrue(self.amqp_answers(port), self.broker_log())
        self.assertIn("cannot notify the service manager (READY=1)", self.broker_log())
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(30), 0, self.broker_log())


if __name__ == "__main__":
    main()
