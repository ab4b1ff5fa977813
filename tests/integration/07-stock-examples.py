#!/usr/bin/python3
"""07: the stock qpid-proton examples (Debian's libqpid-proton11-dev-examples),
unchanged: python simple_send/simple_recv and client/server, and the C
send/receive, built here from the installed sources."""
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import Broker, main, missing

PY = "/usr/share/proton/examples/python"
C = "/usr/share/proton/examples/c"


def run(args, timeout=60):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


class StockExamples(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.isdir(PY) or not os.path.isdir(C):
            missing("libqpid-proton11-dev-examples (the stock proton examples)")
        cls.b = Broker().start()
        cls.addr = f"127.0.0.1:{cls.b.port}"

    @classmethod
    def tearDownClass(cls):
        assert cls.b.stop() == 0, cls.b.log()
        cls.b.tmp.cleanup()

    def test_python_simple_send_then_simple_recv(self):
        p = run(["/usr/bin/python3", f"{PY}/simple_send.py", "-a", f"{self.addr}/examples", "-m", "200"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("all messages confirmed", p.stdout)
        p = run(["/usr/bin/python3", f"{PY}/simple_recv.py", "-a", f"{self.addr}/examples", "-m", "200"])
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.strip().splitlines()
        self.assertEqual(len(lines), 200)
        self.assertEqual(lines[-1], "{'sequence': 200}")

    def test_python_client_and_server(self):
        srv = subprocess.Popen(["/usr/bin/python3", f"{PY}/server.py", "-a", f"{self.addr}/rpc-examples"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            p = run(["/usr/bin/python3", f"{PY}/client.py", "-a", f"{self.addr}/rpc-examples"])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("Twas brillig, and the slithy toves => TWAS BRILLIG, AND THE SLITHY TOVES", p.stdout)
            self.assertEqual(len(p.stdout.strip().splitlines()), 4)
        finally:
            srv.terminate()
            srv.wait(10)

    def test_c_send_and_receive(self):
        cc = shutil.which("cc") or shutil.which("gcc")
        flags = run(["pkg-config", "--cflags", "--libs", "libqpid-proton"]).stdout.split()
        with tempfile.TemporaryDirectory() as d:
            for prog in ("send", "receive"):
                p = run([cc, "-o", f"{d}/{prog}", f"{C}/{prog}.c", *flags, "-lpthread"], timeout=120)
                self.assertEqual(p.returncode, 0, p.stderr)
            host, port = self.addr.split(":")
            p = run([f"{d}/send", host, port, "c-examples", "500"])
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn("500 messages sent and acknowledged", p.stdout)
            p = run([f"{d}/receive", host, port, "c-examples", "500"])
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn("500 messages received", p.stdout)


if __name__ == "__main__":
    main()
