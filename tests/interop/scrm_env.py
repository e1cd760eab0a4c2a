"""Shared helpers of the PC/SC interop tests: start a private scrmd, reach our libpcsclite.so.1.

Every test daemon runs in its own temporary directory with its own socket (SCRM_SOCKET) and a
configuration file that lists simulated readers; the test process points SCRM_SOCKET at it and
loads our libpcsclite.so.1 (run_pytest.py sets LD_LIBRARY_PATH before Python starts, so pyscard,
ctypes, pcsc_scan and opensc-tool all get ours).

Environment (set by run_pytest.py from the meson test definition):
  SCRM_TEST_DAEMON   path of the scrmd executable
  SCRM_TEST_LIBDIR   directory holding our libpcsclite.so.1 (empty: the system's)
  SCRM_TEST_CLIENT   'scrm' (our libpcsclite, scrm's protocol) or 'pcsclite' (the distribution's
                     unmodified libpcsclite.so.1 on scrmd's pcsc-lite listener)

The same test files run once per client library. A test that checks something only one side has
(scrm's own wire protocol, our library's extensions) is marked with only_client().
"""
import ctypes
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

LIBDIR = os.environ.get('SCRM_TEST_LIBDIR', '')
DAEMON = os.environ.get('SCRM_TEST_DAEMON', '')
CLIENT = os.environ.get('SCRM_TEST_CLIENT', 'scrm')

# The distribution's libpcsclite reads PCSCLITE_CSOCK_NAME once per process: every daemon of this
# process serves pcsc-lite's protocol on the same path, in a directory of this process.
PCSCLITE_SOCK = ''
if CLIENT == 'pcsclite':
    import atexit  # pylint: disable=wrong-import-position
    _PCL_DIR = tempfile.mkdtemp(prefix='scrm-pcsclite-')
    atexit.register(shutil.rmtree, _PCL_DIR, True)
    PCSCLITE_SOCK = os.path.join(_PCL_DIR, 'pcscd.comm')
    os.environ['PCSCLITE_CSOCK_NAME'] = PCSCLITE_SOCK


def only_client(name, why):
    """pytest mark: run the test only with client library `name` ('scrm' or 'pcsclite')."""
    import pytest  # pylint: disable=import-outside-toplevel
    return pytest.mark.skipif(CLIENT != name, reason=f'{name} client only: {why}')

# Readers every default daemon has: name -> device string.
R_T1 = 'SimVendor SimReader 0'  # T=1 card inserted
R_T0 = 'SimVendor SimReader 1'  # T=0 card inserted
R_EMPTY = 'SimVendor SimReader 2'  # no card
R_SPARE = 'SimVendor SimReader 3'  # T=1 card, for tests that reset or remove
DEFAULT_READERS = ['sim:0:card=t1', 'sim:1:card=t0', 'sim:2', 'sim:3:card=t1']

SIM_INSERT = 0x42000000 + 2048 + 1  # SCARD_CTL_CODE(2049) -> SIM_IOCTL_INSERT
SIM_REMOVE = 0x42000000 + 2048 + 2
SIM_FAULT = 0x42000000 + 2048 + 3


def wait_for(pred, timeout=5.0, what='condition'):
    """Poll pred() (cheap local checks only) until true; fail after timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.01)
    raise AssertionError(f'timed out waiting for {what}')


_live = []  # daemons of this process, oldest first


class Daemon:
    """A scrmd with simulated readers in a temporary directory.

    With the pcsc-lite client all daemons share PCSCLITE_SOCK, so a second daemon (a test's own
    beside the module's) stops the running one until it is closed, then starts it again."""

    probes = 0  # connections ready() made: each is a client the daemon sees come and go

    def __init__(self, readers=None, extra='', log=None):
        self.log_levels = log  # SCRM_LOG for this daemon (every start), else the environment's
        self.paused = _live[-1] if PCSCLITE_SOCK and _live and _live[-1].alive() else None
        if self.paused:
            self.paused.stop()
        self.dir = tempfile.mkdtemp(prefix='scrm-interop-')
        self.sock = os.path.join(self.dir, 'scrm.sock')
        self.log = os.path.join(self.dir, 'scrmd.log')
        self.conf = os.path.join(self.dir, 'scrmd.conf')
        with open(self.conf, 'w', encoding='utf-8') as f:
            f.write(f'socket = {self.sock}\n')
            if PCSCLITE_SOCK:
                f.write(f'pcsclite_socket = {PCSCLITE_SOCK}\n')
            f.write('discover = false\n')
            for r in readers if readers is not None else DEFAULT_READERS:
                f.write(f'reader = {r}\n')
            f.write(extra)
        self.proc = None
        self.crashed = False
        self.saved_socket = os.environ.get('SCRM_SOCKET')
        os.environ['SCRM_SOCKET'] = self.sock  # clients of this test process use this daemon
        _live.append(self)
        self.start()

    def start(self):
        env = dict(os.environ)
        if self.log_levels:
            env['SCRM_LOG'] = self.log_levels
        env.setdefault('SCRM_LOG', 'ipc:info,rm:info')
        env.pop('LD_PRELOAD', None)  # scrmd is linked with its own sanitizer runtime
        env['ASAN_OPTIONS'] = 'detect_leaks=1'
        logf = open(self.log, 'ab')
        self.proc = subprocess.Popen([DAEMON, '-f', '--config', self.conf], stdout=logf,
                                     stderr=subprocess.STDOUT, env=env)
        logf.close()
        self.probes = 0
        wait_for(self.ready, 10, 'scrmd to listen')

    def ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f'scrmd exited with {self.proc.returncode}:\n{self.log_text()}')
        for path in [self.sock] + ([PCSCLITE_SOCK] if PCSCLITE_SOCK else []):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                self.probes += 1
            except OSError:
                return False
            finally:
                s.close()
        return True

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def ensure(self):
        """Restart a daemon that died (the crash stays in the log and fails close()), so one
        crash fails one test rather than every later test of the module."""
        if self.proc is not None and self.proc.poll() is not None:
            self.crashed = True
            self.start()

    def stop(self):
        """SIGTERM and wait; returns the exit status (0 for a clean stop)."""
        if not self.proc:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        return rc

    def log_text(self):
        try:
            with open(self.log, encoding='utf-8', errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def close(self):
        rc = self.stop()
        text = self.log_text()
        if self.saved_socket is None:
            os.environ.pop('SCRM_SOCKET', None)
        else:
            os.environ['SCRM_SOCKET'] = self.saved_socket
        shutil.rmtree(self.dir, ignore_errors=True)
        if self in _live:
            _live.remove(self)
        if self.paused:
            os.environ['SCRM_SOCKET'] = self.paused.sock
            self.paused.start()
        assert rc == 0 and not self.crashed, f'scrmd exit status {rc}:\n{text}'
        for bad in ('AddressSanitizer', 'LeakSanitizer', 'ThreadSanitizer', 'runtime error',
                    'assertion'):
            assert bad not in text, f'scrmd reported {bad}:\n{text}'

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- ctypes view of libpcsclite.so.1 (for what pyscard hides: buffer sizes, AUTOALLOCATE) ------

LONG = ctypes.c_long
DWORD = ctypes.c_ulong
AUTOALLOCATE = (1 << 64) - 1


class READERSTATE(ctypes.Structure):
    _fields_ = [('szReader', ctypes.c_char_p), ('pvUserData', ctypes.c_void_p),
                ('dwCurrentState', DWORD), ('dwEventState', DWORD), ('cbAtr', DWORD),
                ('rgbAtr', ctypes.c_ubyte * 33)]


class IOREQ(ctypes.Structure):
    _fields_ = [('dwProtocol', DWORD), ('cbPciLength', DWORD)]


def lib():
    """Our libpcsclite.so.1 through ctypes (LD_LIBRARY_PATH makes the soname ours)."""
    path = os.path.join(LIBDIR, 'libpcsclite.so.1') if LIBDIR else 'libpcsclite.so.1'
    l = ctypes.CDLL(path)
    for fn in ('SCardEstablishContext', 'SCardReleaseContext', 'SCardIsValidContext',
               'SCardConnect', 'SCardReconnect', 'SCardDisconnect', 'SCardBeginTransaction',
               'SCardEndTransaction', 'SCardStatus', 'SCardGetStatusChange', 'SCardControl',
               'SCardTransmit', 'SCardListReaderGroups', 'SCardListReaders', 'SCardFreeMemory',
               'SCardCancel', 'SCardGetAttrib', 'SCardSetAttrib'):
        getattr(l, fn).restype = LONG
    l.SCardEstablishContext.argtypes = [DWORD, ctypes.c_void_p, ctypes.c_void_p,
                                        ctypes.POINTER(LONG)]
    l.SCardReleaseContext.argtypes = [LONG]
    l.SCardIsValidContext.argtypes = [LONG]
    l.SCardCancel.argtypes = [LONG]
    l.SCardListReaders.argtypes = [LONG, ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(DWORD)]
    l.SCardListReaderGroups.argtypes = [LONG, ctypes.c_void_p, ctypes.POINTER(DWORD)]
    l.SCardFreeMemory.argtypes = [LONG, ctypes.c_void_p]
    l.SCardConnect.argtypes = [LONG, ctypes.c_char_p, DWORD, DWORD, ctypes.POINTER(LONG),
                               ctypes.POINTER(DWORD)]
    l.SCardReconnect.argtypes = [LONG, DWORD, DWORD, DWORD, ctypes.POINTER(DWORD)]
    l.SCardDisconnect.argtypes = [LONG, DWORD]
    l.SCardBeginTransaction.argtypes = [LONG]
    l.SCardEndTransaction.argtypes = [LONG, DWORD]
    l.SCardStatus.argtypes = [LONG, ctypes.c_void_p, ctypes.POINTER(DWORD), ctypes.POINTER(DWORD),
                              ctypes.POINTER(DWORD), ctypes.c_void_p, ctypes.POINTER(DWORD)]
    l.SCardGetStatusChange.argtypes = [LONG, DWORD, ctypes.POINTER(READERSTATE), DWORD]
    l.SCardControl.argtypes = [LONG, DWORD, ctypes.c_void_p, DWORD, ctypes.c_void_p, DWORD,
                               ctypes.POINTER(DWORD)]
    l.SCardTransmit.argtypes = [LONG, ctypes.POINTER(IOREQ), ctypes.c_void_p, DWORD,
                                ctypes.POINTER(IOREQ), ctypes.c_void_p, ctypes.POINTER(DWORD)]
    l.SCardGetAttrib.argtypes = [LONG, DWORD, ctypes.c_void_p, ctypes.POINTER(DWORD)]
    l.SCardSetAttrib.argtypes = [LONG, DWORD, ctypes.c_void_p, DWORD]
    l.pcsc_stringify_error.restype = ctypes.c_char_p
    l.pcsc_stringify_error.argtypes = [LONG]
    return l


def u(rc):
    """A LONG result as the unsigned value the constants have (SCARD_E_* are positive)."""
    return rc & 0xFFFFFFFFFFFFFFFF


# ---- scrm's wire protocol, for the tests that play a misbehaving client -------------------------

HELLO, LIST_READERS, GSC, STOP_WAIT, CONNECT, TRANSMIT = 1, 2, 3, 4, 5, 11


def wire_msg(cmd, fixed, var=b'', seq=1, flags=0, size=None):
    body = fixed + var
    return struct.pack('<IHHII', 16 + len(body) if size is None else size, cmd, flags, seq,
                       0) + body


def wire_hello(seq=1):
    return wire_msg(HELLO, struct.pack('<IHHII', 0x4D524353, 1, 0, 1 << 20, 0), seq=seq)


def wire_recv(s):
    """Read one reply: (cmd, seq, status, body)."""
    hdr = b''
    while len(hdr) < 16:
        chunk = s.recv(16 - len(hdr))
        if not chunk:
            raise ConnectionError('closed')
        hdr += chunk
    size, cmd, _flags, seq, status = struct.unpack('<IHHII', hdr)
    body = b''
    while len(body) < size - 16:
        chunk = s.recv(size - 16 - len(body))
        if not chunk:
            raise ConnectionError('closed')
        body += chunk
    return cmd, seq, status, body


def wire_connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # Blocking connect: a full listen backlog makes it wait instead of failing with EAGAIN.
    s.connect(path)
    s.settimeout(10)
    return s
