#!/usr/bin/python3
"""02: the broker's life — starts on defaults, stops cleanly on signals."""
import os
import signal
import stat
import subprocess
import tempfile
import unittest

from harness import PLEXUS, Broker, main, run


class Lifecycle(unittest.TestCase):
    def test_sigterm_stops_cleanly_and_creates_the_data_dir(self):
        b = Broker()
        b.start()
        self.assertTrue(os.path.isdir(b.data_dir))
        self.assertEqual(b.stop(signal.SIGTERM), 0)
        self.assertIn("shutting down", b.log())
        self.assertIn("stopped", b.log())
        b.tmp.cleanup()

    def test_sigint_stops_cleanly(self):
        b = Broker()
        b.start()
        self.assertEqual(b.stop(signal.SIGINT), 0)
        self.assertIn("stopped", b.log())
        b.tmp.cleanup()

    def test_starts_with_no_flags_at_all_in_an_empty_directory(self):
        # Embedded defaults: no config file, data under ./var/plexus. Only
        # checked with --check-config, since the default port may be taken.
        with tempfile.TemporaryDirectory() as d:
            p = subprocess.run([PLEXUS, "--check-config"], cwd=d, capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("embedded defaults", p.stdout)

    def test_unusable_data_dir_is_a_clear_error(self):
        with tempfile.TemporaryDirectory() as d:
            # Root may write anywhere but /proc; others are stopped by modes.
            target = "/proc/plexus-cannot-be-here"
            if os.geteuid() != 0:
                ro = os.path.join(d, "ro")
                os.mkdir(ro)
                os.chmod(ro, stat.S_IRUSR | stat.S_IXUSR)
                target = os.path.join(ro, "data")
            code, _, err = run("--data-dir", target, "--listen", "127.0.0.1:0")
            self.assertEqual(code, 1)
            self.assertIn(target, err)
            self.assertEqual(err.count("\n"), 1)


if __name__ == "__main__":
    main()
