#!/usr/bin/python3
"""01: the command line — help, version, and one-line errors for bad input."""
import os
import tempfile
import unittest

from harness import ROOT, main, run


class CliFlags(unittest.TestCase):
    def test_help_lists_the_flags_and_exits_0(self):
        code, out, err = run("--help")
        self.assertEqual(code, 0)
        for flag in ("--config", "--listen", "--admin", "--data-dir", "--log-level", "--version"):
            self.assertIn(flag, out)
        self.assertEqual(err, "")

    def test_version(self):
        code, out, _ = run("--version")
        self.assertEqual(code, 0)
        # The allocator too: tests of memory use need to know it.
        self.assertRegex(out, r"^plexus \d+\.\d+\.\d+\nallocator: (jemalloc \d+\.\d+\.\d+|libc|asan)\n$")

    def assert_one_line_error(self, args, *must_contain):
        code, out, err = run(*args)
        self.assertEqual(code, 2, err)
        self.assertEqual(out, "")
        self.assertEqual(err.count("\n"), 1, f"want one line, got: {err!r}")
        self.assertTrue(err.startswith("plexus: "), err)
        for text in must_contain:
            self.assertIn(text, err)

    def test_unknown_flag(self):
        self.assert_one_line_error(["--bogus"], "--bogus")

    def test_flag_without_value(self):
        self.assert_one_line_error(["--listen"], "--listen")

    def test_bad_listen_address(self):
        self.assert_one_line_error(["--listen", "localhost"], "--listen", "localhost")
        self.assert_one_line_error(["--listen", "127.0.0.1:70000"], "--listen")
        self.assert_one_line_error(["--admin", "::1:80"], "--admin")

    def test_bad_log_level_and_schedulers(self):
        self.assert_one_line_error(["--log-level", "loud"], "--log-level", "loud")
        self.assert_one_line_error(["--schedulers", "0"], "--schedulers")
        self.assert_one_line_error(["--schedulers", "two"], "--schedulers")

    def test_stray_argument(self):
        self.assert_one_line_error(["serve"], "serve")


class ConfigFile(unittest.TestCase):
    def write(self, text):
        f = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
        f.write(text)
        f.close()
        self.addCleanup(os.unlink, f.name)
        return f.name

    def test_unknown_setting_names_file_line_and_key(self):
        path = self.write('# a comment\namqp = {\n  lisen = "127.0.0.1:5672";\n};\n')
        code, _, err = run("--config", path)
        self.assertEqual(code, 2)
        self.assertIn(f"{path}:3:", err)
        self.assertIn("amqp.lisen", err)

    def test_unknown_section(self):
        code, _, err = run("--config", self.write("amqq = { };\n"))
        self.assertEqual(code, 2)
        self.assertIn("unknown section 'amqq'", err)

    def test_wrong_type_and_range(self):
        code, _, err = run("--config", self.write("amqp = { listen = 5672; };\n"))
        self.assertEqual(code, 2)
        self.assertIn("amqp.listen must be a string", err)
        code, _, err = run("--config", self.write("node = { schedulers = 1000; };\n"))
        self.assertEqual(code, 2)
        self.assertIn("node.schedulers must be between", err)
        code, _, err = run("--config", self.write('log = { level = "chatty"; };\n'))
        self.assertEqual(code, 2)
        self.assertIn("log.level", err)

    def test_syntax_error_names_the_line(self):
        path = self.write('node = {\n  name = ;\n};\n')
        code, _, err = run("--config", path)
        self.assertEqual(code, 2)
        self.assertRegex(err, rf"^plexus: {path}:\d+: syntax error\n$")

    def test_missing_file(self):
        code, _, err = run("--config", "/nonexistent/plexus.conf")
        self.assertEqual(code, 2)
        self.assertIn("/nonexistent/plexus.conf", err)
        self.assertIn("No such file", err)

    def test_the_documented_example_is_valid(self):
        example = os.path.join(ROOT, "conf", "plexus.conf")
        code, out, err = run("--config", example, "--check-config")
        self.assertEqual((code, err), (0, ""))
        self.assertIn("is valid", out)

    def test_check_config_rejects_a_bad_file(self):
        code, out, err = run("--config", self.write("amqp = { listen = 1; };\n"), "--check-config")
        self.assertEqual(code, 2)
        self.assertEqual(out, "")
        self.assertIn("amqp.listen", err)


if __name__ == "__main__":
    main()
