#!/usr/bin/python3
"""42: TLS — AMQPS on its own listener for AMQP 1.0 (python3-qpid-proton,
rhea) and 0-9-1 (pika), SASL EXTERNAL with a client certificate, the admin
API and plexusctl over HTTPS, and every way a handshake goes wrong (a
client certificate from another CA or expired, a client that refuses ours,
TLS 1.0/1.1, plaintext on the TLS port, TLS on the plaintext port, a
silent client): each refused with a reason on both sides while the broker
goes on serving. Bad TLS settings stop the broker at startup.

The certificates are made here, with the openssl command, in a temporary
directory: a test CA, the server's (CN localhost), clients' (CN alice, a
user; CN mallory, no user), one expired, and one from another CA."""
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.request
import warnings

from harness import ROOT, Broker, config_file, main, missing, run

from proton import Message, SSLDomain
from proton import ConnectionException
from proton.utils import BlockingConnection

try:
    import pika
except ImportError:  # counted as a skip here, a failure in CI
    pika = None

CTL = os.path.join(os.path.dirname(os.environ.get("PLEXUS_BIN") or os.path.join(ROOT, "bin", "plexus")),
                   "plexusctl")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """CA, server and client certificates in d (PEM); returns their paths."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for ca in ("ca", "otherca"):
        openssl("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
                "-subj", f"/CN=Plexus test {ca}", cwd=d)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")

    def cert(name, cn, ca="ca", ext=None):
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", *(["-extfile", ext] if ext else []), cwd=d)

    cert("server", "localhost", ext="server.ext")
    cert("alice", "alice")
    cert("mallory", "mallory")
    cert("stranger", "alice", ca="otherca")
    # Expired: `openssl ca` takes explicit dates (x509 -req cannot go back).
    os.makedirs(os.path.join(d, "db"))
    open(os.path.join(d, "db", "index.txt"), "w").close()
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca = test\n[test]\ndatabase = db/index.txt\nnew_certs_dir = db\n"
                "serial = db/serial\ndefault_md = sha256\npolicy = any\n[any]\ncommonName = supplied\n")
    with open(os.path.join(d, "db", "serial"), "w") as f:
        f.write("1000\n")
    openssl("req", *ec, "-keyout", "expired.key", "-out", "expired.csr", "-subj", "/CN=alice", cwd=d)
    openssl("ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key", "-in", "expired.csr",
            "-out", "expired.pem", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", cwd=d)
    return {n: os.path.join(d, n) for n in os.listdir(d)}


def conf_text(p, extra=""):
    return f"""
tls = {{ cert_file = "{p['server.pem']}"; key_file = "{p['server.key']}"; ca_file = "{p['ca.pem']}";
        verify_peer = true; handshake_timeout = 1000; }};
admin = {{ cert_file = "{p['server.pem']}"; key_file = "{p['server.key']}"; }};
users = ( {{ name = "guest"; password = "guest"; tags = "administrator"; loopback_only = true; }},
          {{ name = "alice"; password = "alice-secret"; }} );
{extra}
"""


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not shutil.which("openssl"):
            raise unittest.SkipTest("missing: openssl (the command)")
        cls.dir = tempfile.TemporaryDirectory(prefix="plexus-tls-")
        cls.p = make_pki(cls.dir.name)
        conf = os.path.join(cls.dir.name, "plexus.conf")
        with open(conf, "w") as f:
            f.write(conf_text(cls.p))
        from harness import free_port
        cls.tls_port = free_port()
        cls.b = Broker("--listen-tls", f"127.0.0.1:{cls.tls_port}", config=conf).start()

    @classmethod
    def tearDownClass(cls):
        code = cls.b.stop()
        log = cls.b.log()
        cls.b.tmp.cleanup()
        cls.dir.cleanup()
        assert code == 0, f"plexus exited {code}:\n{log}"

    # ------------------------------------------------------------ helpers

    def domain(self, cert=None, ca="ca.pem"):
        d = SSLDomain(SSLDomain.MODE_CLIENT)
        d.set_trusted_ca_db(self.p[ca])
        d.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME)
        if cert:
            d.set_credentials(self.p[f"{cert}.pem"], self.p[f"{cert}.key"], None)
        return d

    def amqps(self, user=None, password=None, cert=None, mechs="PLAIN", ca="ca.pem"):
        cred = f"{user}:{password}@" if user else ""
        return BlockingConnection(f"amqps://{cred}localhost:{self.tls_port}", ssl_domain=self.domain(cert, ca),
                                  sasl_enabled_mechs=mechs, allowed_mechs=mechs, timeout=10)

    def ssl_ctx(self, cert=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.p["ca.pem"])
        if cert:
            ctx.load_cert_chain(self.p[f"{cert}.pem"], self.p[f"{cert}.key"])
        return ctx

    def handshake(self, ctx, port=None):
        """A TLS handshake with ctx, then one AMQP 1.0 header through it: the
        server's answer (a refused client certificate shows up here under TLS
        1.3, where the client's handshake ends before the server checks it)."""
        s = socket.create_connection(("127.0.0.1", port or self.tls_port), timeout=5)
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            t.sendall(b"AMQP\x03\x01\x00\x00")
            return t.recv(8)

    def api(self, path):
        req = urllib.request.Request(f"https://localhost:{self.b.admin_port}{path}")
        req.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")  # guest:guest
        ctx = ssl.create_default_context(cafile=self.p["ca.pem"])
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            return json.loads(r.read())

    def wait_log(self, text):
        self.b.wait_log(text, timeout=5)

    def assert_serving(self):
        """The broker still takes a TLS client and a plaintext one."""
        c = self.amqps("guest", "guest")
        c.close()
        c = BlockingConnection(f"amqp://guest:guest@127.0.0.1:{self.b.port}", timeout=10)
        c.close()

    def connection(self, pred):
        deadline = time.time() + 5
        while time.time() < deadline:
            for c in self.api("/api/connections"):
                if pred(c):
                    return c
            time.sleep(0.05)
        self.fail(f"no such connection in {self.api('/api/connections')}")

    # -------------------------------------------------------------- AMQP 1.0

    def test_proton_over_tls_plain_login(self):
        c = self.amqps("guest", "guest")
        try:
            snd = c.create_sender("/queues/tls-plain")
            rcv = c.create_receiver("/queues/tls-plain")
            snd.send(Message(body=b'{"id": 7}', content_type="application/json"))
            self.assertEqual(rcv.receive(timeout=5).body, b'{"id": 7}')
            rcv.accept()
            conn = self.connection(lambda x: x["user"] == "guest" and x["auth_mechanism"] == "PLAIN"
                                   and x["port"] == self.tls_port)
            self.assertEqual(conn["protocol"], "AMQP 1.0")
        finally:
            c.close()
        self.assertIn("TLSv1.3", self.b.log())

    def test_many_and_large_messages_over_tls(self):
        """More than one TLS record per read and per write, both ways: a
        1 MiB message, then 2000 small ones, each arrives whole and in order
        (input OpenSSL holds beyond what the front end took is read too)."""
        c = self.amqps("guest", "guest")
        try:
            snd = c.create_sender("/queues/tls-bulk")
            big = os.urandom(1 << 20)
            snd.send(Message(body=big))
            for i in range(2000):
                snd.send(Message(body=b"m-%d" % i + b"x" * 200))
            rcv = c.create_receiver("/queues/tls-bulk", credit=500)
            m = rcv.receive(timeout=10)
            self.assertEqual(m.body, big)
            for i in range(2000):
                self.assertEqual(rcv.receive(timeout=10).body[:8].rstrip(b"x"), b"m-%d" % i)
            rcv.accept()
        finally:
            c.close()

    def test_sasl_external_names_the_user_from_the_certificate(self):
        c = self.amqps(cert="alice", mechs="EXTERNAL")
        try:
            snd = c.create_sender("/queues/tls-external")
            snd.send(Message(body=b"by certificate"))
            conn = self.connection(lambda x: x["user"] == "alice")
            self.assertEqual(conn["auth_mechanism"], "EXTERNAL")
        finally:
            c.close()
        self.assertIn("client certificate /CN=alice (verified)", self.b.log())

    def test_sasl_external_refused_for_a_certificate_naming_no_user(self):
        with self.assertRaises(ConnectionException) as e:
            self.amqps(cert="mallory", mechs="EXTERNAL")
        self.assertIn("unauthorized", str(e.exception).lower())
        self.wait_log("authentication failed for mallory (certificate CN; no such user) (EXTERNAL)")
        self.assert_serving()

    def test_sasl_external_not_offered_without_a_client_certificate(self):
        with self.assertRaises(ConnectionException):
            self.amqps(mechs="EXTERNAL")  # TLS, but no certificate
        with self.assertRaises(ConnectionException):  # nor on the plaintext port
            BlockingConnection(f"amqp://127.0.0.1:{self.b.port}", sasl_enabled_mechs="EXTERNAL",
                               allowed_mechs="EXTERNAL", timeout=10)
        self.assert_serving()

    def test_client_certificate_from_another_ca_refused(self):
        with self.assertRaises(ssl.SSLError) as e:
            self.handshake(self.ssl_ctx("stranger"))
        self.assertIn("unknown ca", str(e.exception).lower())
        self.wait_log("TLS handshake failed: certificate verify failed (client certificate: unable to get local "
                      "issuer certificate)")
        with self.assertRaises(ConnectionException):  # proton says so too
            self.amqps(cert="stranger", mechs="EXTERNAL")
        self.assert_serving()

    def test_expired_client_certificate_refused(self):
        with self.assertRaises(ssl.SSLError) as e:
            self.handshake(self.ssl_ctx("expired"))
        self.assertIn("certificate expired", str(e.exception).lower())
        self.wait_log("(client certificate: certificate has expired)")
        self.assert_serving()

    def test_client_that_does_not_trust_our_certificate(self):
        with self.assertRaises(ConnectionException) as e:
            self.amqps("guest", "guest", ca="otherca.pem")
        self.assertIn("certificate verify failed", str(e.exception))
        ctx = ssl.create_default_context(cafile=self.p["otherca.pem"])
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.handshake(ctx)
        self.wait_log("TLS handshake failed: tlsv1 alert unknown ca")
        self.assert_serving()

    def test_tls_1_0_and_1_1_refused(self):
        for v in ("TLSv1", "TLSv1_1"):
            with self.subTest(v), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx = self.ssl_ctx()
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer what Debian's default would not
                ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, v)
                with self.assertRaises(ssl.SSLError) as e:
                    self.handshake(ctx)
                self.assertIn("protocol version", str(e.exception).lower())
        self.wait_log("TLS handshake failed: unsupported protocol")
        # The same client at 1.2 gets in: the refusal was the version's.
        ctx = self.ssl_ctx()
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        self.assertEqual(self.handshake(ctx), b"AMQP\x03\x01\x00\x00")

    def test_plaintext_client_on_the_tls_port(self):
        s = socket.create_connection(("127.0.0.1", self.tls_port), timeout=5)
        s.sendall(b"AMQP\x00\x01\x00\x00")
        self.assertEqual(s.recv(8), b"AMQP\x02\x01\x00\x00")  # AMQP 1.0's "TLS, please"
        self.assertEqual(s.recv(8), b"")
        s.close()
        self.wait_log("not a TLS handshake on the TLS port: the client sent 'AMQP\\x00\\x01\\x00\\x00' "
                      "(plaintext AMQP); answered 'AMQP 2 1 0 0' (TLS required)")
        with self.assertRaises(ConnectionException):  # proton, plaintext, on the TLS port
            BlockingConnection(f"amqp://guest:guest@127.0.0.1:{self.tls_port}", timeout=10)
        self.assert_serving()

    def test_tls_client_on_the_plaintext_port(self):
        with self.assertRaises(ssl.SSLError) as e:
            self.handshake(self.ssl_ctx(), port=self.b.port)
        self.assertIn("wrong version number", str(e.exception).lower())
        self.wait_log("a TLS handshake on the plaintext AMQP port")
        self.assert_serving()

    def test_silent_client_times_out(self):
        s = socket.create_connection(("127.0.0.1", self.tls_port), timeout=5)
        t = time.monotonic()
        self.assertEqual(s.recv(8), b"")  # closed by the broker
        self.assertLess(time.monotonic() - t, 4)  # handshake_timeout = 1000 ms
        s.close()
        self.wait_log("TLS handshake not done in 1000 ms; closed")
        self.assert_serving()

    def test_rhea_over_tls(self):
        node_modules = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node_modules", "rhea")
        if not shutil.which("node") or not os.path.isdir(node_modules):
            missing("node and rhea (npm ci in tests/integration)")
        script = """
const rhea = require('rhea'); const fs = require('fs');
const [port, ca] = process.argv.slice(1);
const c = rhea.create_container();
const timer = setTimeout(() => { console.log('timeout'); process.exit(1); }, 10000);
c.on('connection_open', (ctx) => { ctx.connection.open_receiver('/queues/tls-rhea');
                                   ctx.connection.open_sender('/queues/tls-rhea'); });
c.on('sendable', (ctx) => { if (!ctx.sender.sent) { ctx.sender.sent = true; ctx.sender.send({ body: 'via rhea' }); } });
c.on('message', (ctx) => { console.log('got ' + ctx.message.body); clearTimeout(timer); ctx.connection.close(); });
c.on('disconnected', (ctx) => { if (ctx.error) { console.log('error ' + ctx.error); process.exit(1); } });
c.connect({ host: 'localhost', port: Number(port), transport: 'tls', ca: [fs.readFileSync(ca)],
            username: 'guest', password: 'guest', reconnect: false });
"""
        env = dict(os.environ, NODE_PATH=os.path.dirname(node_modules))
        r = subprocess.run(["node", "-e", script, str(self.tls_port), self.p["ca.pem"]], capture_output=True,
                           text=True, timeout=30, env=env)
        self.assertIn("got via rhea", r.stdout, r.stdout + r.stderr)
        # And rhea trusting another CA is refused.
        r = subprocess.run(["node", "-e", script, str(self.tls_port), self.p["otherca.pem"]], capture_output=True,
                           text=True, timeout=30, env=env)
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn("got via rhea", r.stdout)

    # -------------------------------------------------------------- AMQP 0-9-1

    def test_amqp091_over_tls_with_pika(self):
        if pika is None:
            missing("python3-pika")
        ctx = ssl.create_default_context(cafile=self.p["ca.pem"])
        params = pika.ConnectionParameters(host="localhost", port=self.tls_port,
                                           ssl_options=pika.SSLOptions(ctx, "localhost"),
                                           credentials=pika.PlainCredentials("guest", "guest"))
        c = pika.BlockingConnection(params)  # Start, Start-Ok, Tune, Open: through TLS
        try:
            self.assertTrue(c.is_open)
            ch = c.channel()
            self.assertTrue(ch.is_open)
            conn = self.connection(lambda x: x["protocol"] == "AMQP 0-9-1" and x["port"] == self.tls_port)
            self.assertEqual(conn["user"], "guest")
            self.assertIs(conn["ssl"], True)  # /api/connections says which listener, as RabbitMQ's does
        finally:
            c.close()
        # pika in plaintext on the TLS port is refused, and says so.
        params = pika.ConnectionParameters(host="127.0.0.1", port=self.tls_port, connection_attempts=1,
                                           credentials=pika.PlainCredentials("guest", "guest"))
        with self.assertRaises(pika.exceptions.AMQPConnectionError):
            pika.BlockingConnection(params)
        self.wait_log("the client sent 'AMQP\\x00\\x00\\x09\\x01' (plaintext AMQP)")
        self.assert_serving()

    def test_amqp091_external_with_a_client_certificate(self):
        if pika is None:
            missing("python3-pika")

        def connect(cert):
            ctx = ssl.create_default_context(cafile=self.p["ca.pem"])
            ctx.load_cert_chain(self.p[f"{cert}.pem"], self.p[f"{cert}.key"])
            return pika.BlockingConnection(pika.ConnectionParameters(
                host="localhost", port=self.tls_port, ssl_options=pika.SSLOptions(ctx, "localhost"),
                credentials=pika.credentials.ExternalCredentials(), connection_attempts=1))

        c = connect("alice")  # the certificate's CN is the user, no password
        try:
            conn = self.connection(lambda x: x["protocol"] == "AMQP 0-9-1" and x["user"] == "alice")
            self.assertEqual(conn["auth_mechanism"], "EXTERNAL")
        finally:
            c.close()
        with self.assertRaises(pika.exceptions.AMQPConnectionError):
            connect("mallory")  # a verified certificate, but no such user
        self.wait_log("AMQP 0-9-1 authentication failed for mallory (EXTERNAL): no such user as the certificate names")
        self.assert_serving()

    # ------------------------------------------------------------------ admin

    def test_admin_api_over_https(self):
        self.assertEqual(self.api("/api/overview")["product_name"], "Plexus")
        r = subprocess.run(["curl", "-sS", "--cacert", self.p["ca.pem"], "-u", "guest:guest",
                            f"https://localhost:{self.b.admin_port}/api/whoami"], capture_output=True, text=True,
                           timeout=20)
        self.assertEqual(json.loads(r.stdout)["name"], "guest", r.stderr)
        # Plain HTTP gets nothing from the HTTPS port; curl without our CA refuses the certificate.
        r = subprocess.run(["curl", "-sS", "-u", "guest:guest", f"http://localhost:{self.b.admin_port}/api/overview"],
                           capture_output=True, text=True, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        r = subprocess.run(["curl", "-sS", "-u", "guest:guest", f"https://localhost:{self.b.admin_port}/api/overview"],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 60, r.stderr)  # peer certificate cannot be authenticated

    def test_plexusctl_over_https(self):
        url = f"https://localhost:{self.b.admin_port}"
        r = subprocess.run([CTL, "--url", url, "--cacert", self.p["ca.pem"], "--json", "status"], capture_output=True,
                           text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["product_name"], "Plexus")
        r = subprocess.run([CTL, "--url", url, "status"], capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 1)
        self.assertIn("--cacert FILE", r.stderr)
        r = subprocess.run([CTL, "--url", url, "--insecure", "list", "queues"], capture_output=True, text=True,
                           timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run([CTL, "--url", url, "status"], capture_output=True, text=True, timeout=20,
                           env=dict(os.environ, PLEXUS_CACERT=self.p["ca.pem"]))
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run([CTL, "--url", f"http://localhost:{self.b.admin_port}", "status"], capture_output=True,
                           text=True, timeout=20)
        self.assertEqual(r.returncode, 3)
        self.assertIn("use an https:// URL", r.stderr)


class TlsConfigTest(unittest.TestCase):
    """Bad TLS settings: one line naming the setting, exit status 2, at
    startup (--check-config too)."""

    @classmethod
    def setUpClass(cls):
        if not shutil.which("openssl"):
            raise unittest.SkipTest("missing: openssl (the command)")
        cls.dir = tempfile.TemporaryDirectory(prefix="plexus-tls-")
        cls.p = make_pki(cls.dir.name)

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def check(self, text, *flags):
        return run("--config", config_file(self, text), "--check-config", *flags)

    def refused(self, text, want, *flags):
        code, out, err = self.check(text, *flags)
        self.assertEqual(code, 2, out + err)
        self.assertIn(want, err)

    def test_good_settings_pass(self):
        code, out, err = self.check(conf_text(self.p))
        self.assertEqual(code, 0, err)

    def test_missing_file(self):
        text = conf_text(self.p).replace(self.p["server.pem"], "/nonexistent/server.pem", 1)
        self.refused(text, "tls.cert_file: cannot read /nonexistent/server.pem: No such file or directory")

    def test_unreadable_file(self):
        if os.geteuid() == 0:
            # root reads anything: a directory stands in for a file it cannot read
            text = conf_text(self.p).replace(self.p["server.key"], self.dir.name, 1)
            self.refused(text, "tls.key_file")
            return
        path = os.path.join(self.dir.name, "noread.key")
        shutil.copy(self.p["server.key"], path)
        os.chmod(path, 0)
        self.refused(conf_text(self.p).replace(self.p["server.key"], path, 1), "Permission denied")

    def test_not_pem(self):
        text = conf_text(self.p).replace(self.p["server.pem"], self.p["server.ext"], 1)
        self.refused(text, "tls.cert_file " + self.p["server.ext"] + ": not a PEM certificate")

    def test_key_not_matching_the_certificate(self):
        text = conf_text(self.p).replace(self.p["server.key"], self.p["alice.key"], 1)
        self.refused(text, "tls.key_file " + self.p["alice.key"] + " is not the key of the certificate")

    def test_admin_key_not_matching(self):
        text = conf_text(self.p).replace(f'key_file = "{self.p["server.key"]}"; }};\nusers',
                                         f'key_file = "{self.p["alice.key"]}"; }};\nusers')
        self.refused(text, "admin.key_file " + self.p["alice.key"] + " is not the key")

    def test_old_versions_refused(self):
        for v in ("1.0", "1.1", "2"):
            with self.subTest(v):
                text = conf_text(self.p).replace("verify_peer = true;", f'verify_peer = true; min_version = "{v}";')
                self.refused(text, f'tls.min_version must be "1.2" or "1.3", not "{v}"')

    def test_listener_without_certificate(self):
        self.refused("", "needs tls.cert_file and tls.key_file", "--listen-tls", "127.0.0.1:5671")

    def test_verify_peer_without_ca(self):
        text = conf_text(self.p).replace(f'ca_file = "{self.p["ca.pem"]}";', "")
        self.refused(text, "tls.verify_peer needs tls.ca_file")

    def test_min_version_1_3(self):
        """With min_version 1.3 a TLS 1.2 client is refused, a 1.3 one is not."""
        conf = config_file(self, conf_text(self.p).replace("verify_peer = true;",
                                                           'verify_peer = true; min_version = "1.3";'))
        from harness import free_port
        port = free_port()
        with Broker("--listen-tls", f"127.0.0.1:{port}", config=conf) as b:
            for v, ok in ((ssl.TLSVersion.TLSv1_2, False), (ssl.TLSVersion.TLSv1_3, True)):
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.load_verify_locations(self.p["ca.pem"])
                ctx.minimum_version = ctx.maximum_version = v
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                try:
                    if ok:
                        ctx.wrap_socket(s, server_hostname="localhost").close()
                    else:
                        with self.assertRaises(ssl.SSLError):
                            ctx.wrap_socket(s, server_hostname="localhost")
                finally:
                    s.close()
            b.wait_log("unsupported protocol")


if __name__ == "__main__":
    main()
