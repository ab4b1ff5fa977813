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

PLEXUS = os.environ.get("PLEXUS_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "bin", "plexus")
ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args, timeout=10):
    """Runs plexus with args to completion; returns (code, stdout, stderr)."""
    p = subprocess.run([PLEXUS, *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


class Broker:
    """A running broker: `with Broker() as b:` ... b.port, b.url, b.log()."""

    def __init__(self, *extra, config=None, data_dir=None):
        self.tmp = tempfile.TemporaryDirectory(prefix="plexus-test-")
        self.port = free_port()
        self.admin_port = free_port()
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
        self.proc = subprocess.Popen(self.args, stdout=self.logf, stderr=subprocess.STDOUT)
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


def main():
    unittest.main(verbosity=2)
