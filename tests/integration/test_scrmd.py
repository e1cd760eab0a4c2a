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
import re
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
        self.lines += (self.buf + rest).decode("utf-8", "replace").splitlines()
        self.buf = b""
        return self.p.returncode

    def trace(self):
        # "ioctl [12:00:01.123456] READER ...": the time stamp is checked once, then dropped
        return [re.sub(r"^\[\d\d:\d\d:\d\d\.\d{6}\] ", "", l.split("ioctl ", 2)[-1])
                for l in self.lines if "] info: ioctl " in l]


def test_help_version():
    r = run(["--help"])
    check(r.returncode == 0 and "--trace-ioctl" in r.stdout and "--power-down-ms" in r.stdout,
          "--help lists the options")
    check("Drivers in this build" in r.stdout and "sim" in r.stdout, "--help lists the drivers")
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


def test_strict_config(tmp):
    """Comments after values, bad addresses with file:line, directories, NUL bytes, unreadable
    files: each is a clear error (exit 1), never a reader with a wrong unit or name."""
    path = os.path.join(tmp, "strict.conf")
    for bad, want in [("sim:x", "bad address 'x'"), ("sim:-1", "bad address '-1'"),
                      ("sim:1x", "bad address '1x'"),
                      ("nfc:99999999999", "bad address '99999999999'"),
                      ("sim:5:swallows=2", "bad option 'swallows=2'"),
                      ("nosuch:0", "no driver 'nosuch'")]:
        with open(path, "w") as f:
            f.write("discover = no\nreader = sim:0 # the first one\nreader = %s\n" % bad)
        d = Daemon(["--no-socket", "-c", path])
        seen = d.wait_for(path + ":3: reader " + bad + " refused")
        d.stop()
        check(seen and any(want in l for l in d.lines)
              and any("1 reader(s) started, 1 refused" in l for l in d.lines),
              "reader = %s refused with file:line and reason (%r)" % (bad, d.lines[-6:]))
    for bad, want in [("reader = sim 0", ":1: bad device string 'sim 0'"),
                      ("power_down_ms = 5000 ms", ":1: bad value '5000 ms'"),
                      ("reader = sim:0 junk", ":1: blank or control character")]:
        with open(path, "w") as f:
            f.write(bad + "\n")
        r = run(["-f", "--no-socket", "-c", path])
        check(r.returncode == 1 and (path + want) in r.stderr, "%r refused: %r" % (bad, r.stderr))
    with open(path, "wb") as f:
        f.write(b"discover = no\nreader = sim:0\x00:card=t1\n")
    r = run(["-f", "--no-socket", "-c", path])
    check(r.returncode == 1 and (path + ":2: the line holds a NUL byte") in r.stderr,
          "NUL byte in a line: %r" % r.stderr)
    r = run(["-f", "--no-socket", "-c", tmp])
    check(r.returncode == 1 and "is a directory" in r.stderr, "-c DIRECTORY refused")
    if os.geteuid() == 0 and os.path.exists("/usr/bin/setpriv"):
        with open(path, "w") as f:
            f.write("discover = no\n")
        os.chmod(path, 0o600)
        os.chmod(tmp, 0o755)
        r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            SCRMD, "-f", "--no-socket", "-c", path], capture_output=True,
                           text=True, timeout=TIMEOUT, env=env_with())
        check(r.returncode == 1 and "cannot read it: Permission denied" in r.stderr,
              "unreadable file refused: %r" % r.stderr)
    # The comment after a value is not part of it: the reader is sim:0 and it starts.
    with open(path, "w") as f:
        f.write("discover = no   # only these\nreader = sim:0:card=t1 # the first one\n")
    d = Daemon(["--no-socket", "-c", path])
    check(d.wait_for("1 reader(s) started, 0 refused"), "comment after the value ignored")
    check(any("reader 'SimVendor SimReader 0' (sim:0) started" in l for l in d.lines),
          "start-up line names the reader and its device")
    check(d.stop() == 0, "exit 0")


def test_startup_lines(tmp):
    """At the default log level: version, socket, readers, and a warning when there are none;
    $SCRM_SOCKET overriding the file is logged."""
    conf = os.path.join(tmp, "start.conf")
    with open(conf, "w") as f:
        f.write("discover = no\nsocket = %s\n" % os.path.join(tmp, "file.sock"))
    sock = os.path.join(tmp, "env.sock")
    d = Daemon(["-c", conf], env=env_with(SCRM_SOCKET=sock))
    check(d.wait_for("no readers configured"), "warning when there are no readers")
    check(any("scrmd " in l and "starting: socket " + sock in l for l in d.lines),
          "start-up line with version and socket: %r" % d.lines)
    check(any("from $SCRM_SOCKET (overrides" in l for l in d.lines),
          "environment override logged")
    check(d.stop() == 0, "exit 0 without readers")


def test_log_and_pid_files(tmp):
    log = os.path.join(tmp, "scrmd.log")
    pid = os.path.join(tmp, "scrmd.pid")
    sock = os.path.join(tmp, "daemon.sock")
    r = run(["-d", "--no-discover", "-r", "sim:0", "-s", sock, "--log-file", log, "--pid-file",
             pid], env=env_with())
    check(r.returncode == 0, "daemon mode starts (the parent exits 0)")
    deadline = time.monotonic() + TIMEOUT
    text = ""
    while time.monotonic() < deadline and "1 reader(s) started" not in text:
        select.select([], [], [], 0.02)  # the detached daemon has no pipe to wait on
        if os.path.exists(log):
            with open(log) as f:
                text = f.read()
    check("1 reader(s) started" in text, "--log-file receives the log: %r" % text[-300:])
    check(" debug: " in text, "-d turns on debug messages")
    check(text[:4].isdigit() and "T" in text[:12], "log file lines are time-stamped")
    with open(pid) as f:
        p = int(f.read().strip())
    os.kill(p, signal.SIGTERM)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and os.path.exists(pid):
        select.select([], [], [], 0.02)
    check(not os.path.exists(pid), "--pid-file removed at exit")
    with open(log) as f:
        check("scrmd stopped" in f.read(), "stop logged to the file")


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
    # before it is named, the reader appears in the trace by its device string
    attr = "IOCTL_SMARTCARD_GET_ATTRIBUTE SCARD_ATTR_"
    want_start = [
        attr + "DEVICE_FRIENDLY_NAME_A -> STATUS_NOT_SUPPORTED",
        attr + "VENDOR_NAME -> STATUS_SUCCESS",
        attr + "VENDOR_IFD_TYPE -> STATUS_SUCCESS",
        attr + "DEVICE_UNIT -> STATUS_SUCCESS",
        attr + "CHARACTERISTICS -> STATUS_SUCCESS",
        "IOCTL_SMARTCARD_IS_PRESENT -> STATUS_PENDING",
    ]
    mine = [l for l in t if l.startswith(("sim:0 ", "SimVendor SimReader 0 "))]
    got = [l[l.index("IOCTL_"):].rsplit(" (", 1)[0] for l in mine[:6]]
    check(got == want_start, "start-up sequence of sim:0 in the log: %r" % got)
    check(all(l.endswith(" \u00b5s)") for l in t), "every trace line ends with the time in µs")
    raw = [l for l in d.lines if "] info: ioctl " in l]
    check(all(re.search(r"ioctl \[\d\d:\d\d:\d\d\.\d{6}\] ", l) for l in raw),
          "every trace line has a time stamp")
    check(any("IOCTL_SMARTCARD_GET_STATE -> STATUS_SUCCESS = SCARD_" in l for l in t),
          "GET_STATE lines show the state: %r" % [l for l in t if "GET_STATE" in l][:2])
    check(any("completed: IOCTL_SMARTCARD_IS_" in l for l in t),
          "completions of tracking requests say completed:")


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


def test_trace_vendor_codes(tmp):
    """Vendor IOCTLs sent through SCardControl are traced with the driver's name of the code."""
    if not CLI:
        return
    sock = os.path.join(tmp, "v.sock")
    d = Daemon(["-r", "sim:0", "--no-discover", "--trace-ioctl", "-l", "ipc:info"],
               env=env_with(SCRM_SOCKET=sock))
    check(d.wait_for("listening on"), "socket server listening (trace)")
    for args in (["sim", "insert", "0", "t0"], ["sim", "remove", "0"]):
        r = subprocess.run([CLI] + args, capture_output=True, text=True, timeout=TIMEOUT,
                           env=env_with(SCRM_SOCKET=sock))
        check(r.returncode == 0, "scrm %s: %s" % (" ".join(args), r.stderr.strip()))
    check(d.wait_for("SIM_IOCTL_REMOVE"), "removal traced")
    d.stop()
    t = d.trace()
    want = ["IOCTL_SMARTCARD_VENDOR SIM_IOCTL_INSERT (0x00312004) -> STATUS_SUCCESS",
            "IOCTL_SMARTCARD_VENDOR SIM_IOCTL_REMOVE (0x00312008) -> STATUS_SUCCESS"]
    got = [l[l.index("IOCTL_"):].rsplit(" (", 1)[0] for l in t if "IOCTL_SMARTCARD_VENDOR" in l]
    check(got == want, "vendor codes decoded in the trace: %r" % got)


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
        test_strict_config(tmp)
        test_startup_lines(tmp)
        test_log_and_pid_files(tmp)
        test_no_socket_trace(tmp)
        test_sigint_and_socket(tmp)
        test_trace_vendor_codes(tmp)
        test_socket_activation(tmp)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
