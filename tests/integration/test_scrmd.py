#!/usr/bin/python3
"""Integration test of the scrmd executable, run as a separate process in a temporary directory.

Checks: --help / --version, configuration errors that name file and line, the resource manager
running without a socket (--no-socket) with the IOCTL trace (start-up, insertion power-up and the
power-down timeout of a card present at start), a clean stop on SIGTERM and on SIGINT, the
socket created and removed, and systemd socket activation (LISTEN_PID / LISTEN_FDS = 1, fd 3),
exercised with the scrm CLI when it is built.

usage: test_scrmd.py SCRMD [SCRM_CLI]
Every wait is bounded (a deadline on reading the daemon's log); nothing sleeps and hopes.
"""
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

SCRMD = sys.argv[1]
CLI = sys.argv[2] if len(sys.argv) > 2 else None
TIMEOUT = 10.0
failures = []


def check(cond, what):
    print(("ok     " if cond else "FAILED ") + what)
    if not cond:
        failures.append(what)


def env_with(**extra):
    env = dict(os.environ)
    env.pop("SCRM_LOG", None)
    env.update(extra)
    return env


def run(args, **kw):
    return subprocess.run([SCRMD] + args, capture_output=True, text=True, timeout=TIMEOUT, **kw)


class Daemon:
    """scrmd -f with stderr captured line by line."""

    def __init__(self, args, env=None, shell_prefix=None, pass_fds=()):
        cmd = [SCRMD, "-f"] + args
        if shell_prefix:
            cmd = ["/bin/sh", "-c", shell_prefix + ' exec "$0" "$@"'] + cmd
        self.p = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  env=env or env_with(), pass_fds=pass_fds)
        self.lines = []
        self.buf = b""

    def wait_for(self, text, timeout=TIMEOUT):
        """Read stderr until a line contains text; True if seen before the deadline."""
        deadline = time.monotonic() + timeout
        if any(text in l for l in self.lines):
            return True
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.p.stderr], [], [], deadline - time.monotonic())
            if not r:
                break
            chunk = os.read(self.p.stderr.fileno(), 65536)
            if not chunk:
                break
            self.buf += chunk
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                s = line.decode("utf-8", "replace")
                self.lines.append(s)
                if text in s:
                    return True
        return False

    def stop(self, sig=signal.SIGTERM):
        self.p.send_signal(sig)
        try:
            rest = self.p.communicate(timeout=TIMEOUT)[1]
        except subprocess.TimeoutExpired:
            self.p.kill()
            rest = self.p.communicate()[1]
        self.lines += rest.decode("utf-8", "replace").splitlines()
        return self.p.returncode

    def trace(self):
        return [l.split("ioctl ", 2)[-1] for l in self.lines if "] info: ioctl " in l]


def test_help_version():
    r = run(["--help"])
    check(r.returncode == 0 and "--trace-ioctl" in r.stdout and "--power-down-ms" in r.stdout,
          "--help lists the options")
    r = run(["--version"])
    check(r.returncode == 0 and r.stdout.startswith("scrmd "), "--version")
    r = run(["--bogus-option"])
    check(r.returncode == 1, "unknown option refused")


def test_config_errors(tmp):
    path = os.path.join(tmp, "bad.conf")
    with open(path, "w") as f:
        f.write("# comment\nreader = sim:0\npower_down_ms = later\n")
    r = run(["-f", "--no-socket", "-c", path])
    check(r.returncode == 1 and (path + ":3: bad value 'later' for 'power_down_ms'") in r.stderr,
          "bad config value names file and line")
    r = run(["-f", "--no-socket", "-c", os.path.join(tmp, "missing.conf")])
    check(r.returncode == 1 and "missing.conf" in r.stderr, "missing config file refused")


def test_no_socket_trace(tmp):
    conf = os.path.join(tmp, "scrmd.conf")
    with open(conf, "w") as f:
        f.write("reader = sim:0:swallows=1\nreader = sim:1:card=t1\npower_down_ms = 100\n"
                "discover = no\n")
    d = Daemon(["--no-socket", "--trace-ioctl", "-c", conf, "-l", "core:info"])
    seen = d.wait_for("SimReader 1 IOCTL_SMARTCARD_POWER SCARD_POWER_DOWN -> STATUS_SUCCESS")
    check(seen, "power-down timeout traced for the card present at start")
    rc = d.stop(signal.SIGTERM)
    check(rc == 0, "exit status 0 after SIGTERM")
    check(any("Terminated received, stopping" in l for l in d.lines), "SIGTERM logged")
    t = d.trace()
    want_start = [
        "sim:0 IOCTL_SMARTCARD_GET_ATTRIBUTE SCARD_ATTR_VENDOR_NAME -> STATUS_SUCCESS",
        "sim:0 IOCTL_SMARTCARD_GET_ATTRIBUTE SCARD_ATTR_VENDOR_IFD_TYPE -> STATUS_SUCCESS",
        "sim:0 IOCTL_SMARTCARD_GET_ATTRIBUTE SCARD_ATTR_DEVICE_UNIT -> STATUS_SUCCESS",
        "SimVendor SimReader 0 IOCTL_SMARTCARD_GET_ATTRIBUTE SCARD_ATTR_CHARACTERISTICS -> "
        "STATUS_SUCCESS",
        "SimVendor SimReader 0 IOCTL_SMARTCARD_IS_PRESENT -> STATUS_PENDING",
    ]
    got = [l.rsplit(" (", 1)[0] for l in t[:5]]
    check(got == want_start, "start-up sequence of sim:0 in the log: %r" % got)
    check(all(l.endswith(" \u00b5s)") for l in t), "every trace line ends with the time in µs")


def test_sigint_and_socket(tmp):
    sock = os.path.join(tmp, "s.sock")
    d = Daemon(["-r", "sim:0", "--no-discover", "-l", "ipc:info"], env=env_with(SCRM_SOCKET=sock))
    check(d.wait_for("listening on"), "socket server listening")
    check(os.path.exists(sock), "socket file created from $SCRM_SOCKET")
    if CLI:
        r = subprocess.run([CLI, "list"], capture_output=True, text=True, timeout=TIMEOUT,
                           env=env_with(SCRM_SOCKET=sock))
        check(r.returncode == 0 and "SimVendor SimReader 0" in r.stdout, "scrm list via socket")
    rc = d.stop(signal.SIGINT)
    check(rc == 0, "exit status 0 after SIGINT")
    check(not os.path.exists(sock), "socket file removed at exit")


def test_socket_activation(tmp):
    sock = os.path.join(tmp, "act.sock")
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(sock)
    lsock.listen(16)
    fd = lsock.fileno()
    # fd 3 in the child, as systemd passes it; LISTEN_PID is the pid that execs scrmd.
    prefix = 'exec 3<&%d; LISTEN_PID=$$; LISTEN_FDS=1; export LISTEN_PID LISTEN_FDS;' % fd
    d = Daemon(["-r", "sim:0", "--no-discover", "-s", os.path.join(tmp, "unused.sock"), "-l",
                "core:info"], shell_prefix=prefix, pass_fds=(fd,))
    lsock.close()
    check(d.wait_for("1 reader(s)") and d.p.poll() is None, "daemon up with an inherited socket")
    check(not os.path.exists(os.path.join(tmp, "unused.sock")), "no own socket when activated")
    if CLI:
        r = subprocess.run([CLI, "list"], capture_output=True, text=True, timeout=TIMEOUT,
                           env=env_with(SCRM_SOCKET=sock))
        check(r.returncode == 0 and "SimVendor SimReader 0" in r.stdout,
              "scrm list through the activated socket")
    check(d.stop() == 0, "exit status 0 (activated)")


def main():
    with tempfile.TemporaryDirectory(prefix="scrmd-test-") as tmp:
        test_help_version()
        test_config_errors(tmp)
        test_no_socket_trace(tmp)
        test_sigint_and_socket(tmp)
        test_socket_activation(tmp)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
