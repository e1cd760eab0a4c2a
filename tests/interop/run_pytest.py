#!/usr/bin/python3
"""Run pytest files of tests/interop and report every test case as a TAP line.

    run_pytest.py --daemon PATH --libdir DIR [--client scrm|pcsclite] test_file.py...

Sets up the environment the tests need and re-executes itself once with it. With --client scrm
(the default): LD_LIBRARY_PATH so that `libpcsclite.so.1` resolves to ours (pyscard, ctypes,
pcsc_scan, opensc-tool), and, when our library was built with AddressSanitizer or
ThreadSanitizer, LD_PRELOAD of that runtime (Python itself is not instrumented). With --client
pcsclite: the system's own, unmodified libpcsclite.so.1 (no LD_LIBRARY_PATH), which scrm_env
points at the daemon's pcsc-lite listener with PCSCLITE_CSOCK_NAME; the same tests then check
the same behaviour through pcsc-lite's protocol. pytest's own report goes to stderr; stdout carries only 'ok N - name' /
'not ok N - name' lines and the plan, so meson and `make check` count each case.
"""
import os
import re
import subprocess
import sys


def sanitizer_runtime(libdir):
    """(kind, path) of the ASan or TSan runtime our library needs, or (None, None)."""
    try:
        out = subprocess.run(['ldd', os.path.join(libdir, 'libpcsclite.so.1')],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    m = re.search(r'\S*lib(asan|tsan)\.so\S* => (\S+)', out)
    return (m.group(1), m.group(2)) if m else (None, None)


def reexec(args):
    env = dict(os.environ)
    env['SCRM_TEST_DAEMON'] = os.path.abspath(args['daemon'])
    env['SCRM_TEST_CLIENT'] = args['client']
    env.pop('PCSCLITE_CSOCK_NAME', None)
    if args['client'] == 'pcsclite':
        env['SCRM_TEST_LIBDIR'] = ''
        env['PYTHONDONTWRITEBYTECODE'] = '1'
        env['SCRM_TEST_REEXEC'] = '1'
        env.pop('SCRM_SOCKET', None)
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    env['SCRM_TEST_LIBDIR'] = os.path.abspath(args['libdir'])
    env['LD_LIBRARY_PATH'] = env['SCRM_TEST_LIBDIR'] + (
        ':' + env['LD_LIBRARY_PATH'] if env.get('LD_LIBRARY_PATH') else '')
    kind, rt = sanitizer_runtime(env['SCRM_TEST_LIBDIR'])
    if rt:
        env['LD_PRELOAD'] = rt
    if kind == 'asan':
        # CPython and the tools leak by design; our code is checked in scrmd and the unit tests.
        env['ASAN_OPTIONS'] = 'detect_leaks=0:verify_asan_link_order=0'
    if kind == 'tsan':
        # A report in our client library (loaded into Python) fails the test through exitcode.
        env['TSAN_OPTIONS'] = 'halt_on_error=1 exitcode=66 report_signal_unsafe=0'
    env['PYTHONDONTWRITEBYTECODE'] = '1'
    env['SCRM_TEST_REEXEC'] = '1'
    env.pop('SCRM_SOCKET', None)
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


class TapReporter:
    """pytest plugin: one TAP line per test (setup errors and failures are 'not ok')."""

    def __init__(self, out):
        self.out = out
        self.n = 0

    def emit(self, ok, name, directive=''):
        self.n += 1
        self.out.write(f'{"ok" if ok else "not ok"} {self.n} - {name}{directive}\n')
        self.out.flush()

    def pytest_runtest_logreport(self, report):
        name = report.nodeid.split('::', 1)[-1]
        if report.when == 'call':
            if report.skipped:
                self.emit(True, name, ' # SKIP ' + str(report.longrepr[-1] if isinstance(
                    report.longrepr, tuple) else 'skipped'))
            else:
                self.emit(report.passed, name)
        elif report.when == 'setup' and report.skipped:
            reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else 'skipped'
            self.emit(True, name, f' # SKIP {reason}')
        elif report.failed:  # setup or teardown error
            self.emit(False, f'{name} ({report.when})')


def main():
    argv = sys.argv[1:]
    args = {'daemon': '', 'libdir': '', 'client': 'scrm'}
    files = []
    while argv:
        a = argv.pop(0)
        if a in ('--daemon', '--libdir', '--client'):
            args[a[2:]] = argv.pop(0)
        else:
            files.append(a)
    if not os.environ.get('SCRM_TEST_REEXEC'):
        reexec(args)
    import pytest  # noqa: E402  (after the environment is in place)
    tap = os.fdopen(os.dup(1), 'w')
    os.dup2(2, 1)  # pytest's terminal output goes to stderr
    sys.stdout = sys.stderr
    reporter = TapReporter(tap)
    rc = pytest.main(['-p', 'no:cacheprovider', '-q', '-rfE', '--tb=short'] + files,
                     plugins=[reporter])
    tap.write(f'1..{reporter.n}\n')
    tap.flush()
    return 0 if rc in (0, 5) else 1


if __name__ == '__main__':
    sys.exit(main())
