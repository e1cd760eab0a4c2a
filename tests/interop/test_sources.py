"""Readers added and removed while scrmd runs, seen by PC/SC clients through pyscard.

* `scrm reader add DEVICE` / `scrm reader remove READER`: a client blocked in SCardGetStatusChange
  on \\\\?PnP?\\Notification wakes on the arrival and on the departure, and the reader list follows;
* a caller that is neither root nor in the admin group is refused (run as nobody with setpriv) and
  nothing changes;
* SIGHUP re-reads the configuration: readers added to the file start, readers taken out leave,
  unchanged ones stay connected; a bad reader.conf.d entry is refused with file:line.

Every wait is a SCardGetStatusChange with a bounded timeout; the PnP entry carries the reader-list
count it knows, so an event that lands before the wait starts still ends it at once.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest
from smartcard.scard import (SCARD_E_TIMEOUT, SCARD_E_UNKNOWN_READER, SCARD_LEAVE_CARD,
                             SCARD_PROTOCOL_T1, SCARD_S_SUCCESS, SCARD_SCOPE_USER,
                             SCARD_SHARE_SHARED, SCARD_STATE_CHANGED, SCARD_STATE_PRESENT,
                             SCARD_STATE_UNAWARE, SCARD_STATE_UNKNOWN, SCardConnect,
                             SCardDisconnect, SCardEstablishContext, SCardGetStatusChange,
                             SCardListReaders, SCardReleaseContext, SCardTransmit)

import scrm_env as env

PNP = '\\\\?PnP?\\Notification'
LOG = 'log = core:info,ipc:info,rm:info\n'
CLI = os.environ.get('SCRM_TEST_CLI', '')


def scrm(*args, user=None):
    """Run the scrm tool (optionally as nobody); returns (exit status, stdout + stderr)."""
    cmd = [CLI] + list(args)
    if user == 'nobody':
        cmd = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups'] + cmd
    e = dict(os.environ)
    e.pop('LD_PRELOAD', None)  # scrm is linked with its own sanitizer runtime
    e['ASAN_OPTIONS'] = 'detect_leaks=1'
    p = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=30, check=False)
    return p.returncode, p.stdout + p.stderr


@pytest.fixture()
def ctx():
    hr, c = SCardEstablishContext(SCARD_SCOPE_USER)
    assert hr == SCARD_S_SUCCESS
    yield c
    SCardReleaseContext(c)


def readers(c):
    hr, names = SCardListReaders(c, [])
    assert hr == SCARD_S_SUCCESS
    return sorted(names)


def pnp_state(c):
    """The PnP entry's current state (reader-list count in the high 16 bits)."""
    hr, st = SCardGetStatusChange(c, 0, [(PNP, SCARD_STATE_UNAWARE)])
    assert hr in (SCARD_S_SUCCESS, SCARD_E_TIMEOUT)
    return st[0][1] & ~SCARD_STATE_CHANGED


class PnpWaiter(threading.Thread):
    """SCardGetStatusChange on the PnP entry in its own context, from a known state."""

    def __init__(self, timeout_ms=20000):
        super().__init__(daemon=True)
        hr, self.ctx = SCardEstablishContext(SCARD_SCOPE_USER)
        assert hr == SCARD_S_SUCCESS
        self.known = pnp_state(self.ctx)
        self.timeout_ms = timeout_ms
        self.result = None
        self.start()

    def run(self):
        self.result = SCardGetStatusChange(self.ctx, self.timeout_ms, [(PNP, self.known)])

    def woke(self):
        """Join; returns the new PnP state after checking the wait ended with a change."""
        self.join(timeout=self.timeout_ms / 1000 + 10)
        assert not self.is_alive(), 'the PnP wait did not end'
        SCardReleaseContext(self.ctx)
        hr, st = self.result
        assert hr == SCARD_S_SUCCESS, f'PnP wait ended with {hr:#x}'
        assert st[0][1] & SCARD_STATE_CHANGED
        assert st[0][1] & 0xFFFF0000 != self.known & 0xFFFF0000
        return st[0][1]


@pytest.fixture()
def daemon():
    d = env.Daemon(readers=['sim:0:card=t1'], extra=LOG)
    os.chmod(d.dir, 0o755)  # the unprivileged caller must reach the socket
    yield d
    d.close()


def test_pnp_sees_reader_add_and_remove(daemon, ctx):
    assert readers(ctx) == ['SimVendor SimReader 0']
    w = PnpWaiter()
    rc, out = scrm('reader', 'add', 'sim:7:card=t1')
    assert rc == 0, out
    assert 'SimVendor SimReader 7: reader added' in out
    w.woke()
    assert readers(ctx) == ['SimVendor SimReader 0', 'SimVendor SimReader 7']
    # the new reader works: its card answers
    hr, card, proto = SCardConnect(ctx, 'SimVendor SimReader 7', SCARD_SHARE_SHARED,
                                   SCARD_PROTOCOL_T1)
    assert hr == SCARD_S_SUCCESS and proto == SCARD_PROTOCOL_T1
    hr, resp = SCardTransmit(card, proto, [0x00, 0xA4, 0x04, 0x00, 0x07, 0xF0, 0x53, 0x43, 0x52,
                                           0x4D, 0x00, 0x01])
    assert hr == SCARD_S_SUCCESS and resp[-2:] == [0x90, 0x00]

    w = PnpWaiter()
    rc, out = scrm('reader', 'remove', 'SimVendor SimReader 7')
    assert rc == 0, out
    w.woke()
    assert readers(ctx) == ['SimVendor SimReader 0']
    # the handle on the departed reader is dead, not dangerous
    hr, _ = SCardTransmit(card, proto, [0x00, 0x84, 0x00, 0x00, 0x08])
    assert hr != SCARD_S_SUCCESS
    SCardDisconnect(card, SCARD_LEAVE_CARD)


def test_add_errors(daemon, ctx):
    rc, out = scrm('reader', 'add', 'sim:0')
    assert rc == 1 and 'exists already' in out
    rc, out = scrm('reader', 'add', 'nosuchdriver:1')
    assert rc == 1, out
    rc, out = scrm('reader', 'add', 'sim:x:color=blue')
    assert rc == 1, out
    rc, out = scrm('reader', 'remove', 'No Such Reader')
    assert rc == 1 and 'no reader' in out
    rc, out = scrm('reader', 'frobnicate', 'x')
    assert rc == 2
    assert readers(ctx) == ['SimVendor SimReader 0']


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('setpriv'),
                    reason='needs root and setpriv to run a client as nobody')
def test_unprivileged_refused(daemon, ctx):
    rc, out = scrm('reader', 'add', 'sim:8', user='nobody')
    assert rc == 1 and 'refused' in out and '0x8010006A' in out, out
    rc, out = scrm('reader', 'remove', 'SimVendor SimReader 0', user='nobody')
    assert rc == 1 and 'refused' in out, out
    assert readers(ctx) == ['SimVendor SimReader 0']
    # a normal PC/SC call still works for nobody: only administration is refused
    rc, out = scrm('list', user='nobody')
    assert rc == 0 and 'SimVendor SimReader 0' in out, out
    assert 'reader add refused: needs root or the admin group' in daemon.log_text()


def wait_present(c, name, timeout_s=10):
    """Follow the reader's state changes until a card is present (bounded)."""
    state = SCARD_STATE_UNAWARE
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        hr, st = SCardGetStatusChange(c, int((end - time.monotonic()) * 1000) + 1,
                                      [(name, state)])
        if hr != SCARD_S_SUCCESS:
            return False
        state = st[0][1] & ~SCARD_STATE_CHANGED
        if state & SCARD_STATE_PRESENT:
            return True
    return False


def wait_reader(c, name, timeout_s=10):
    """Wait until a reader exists: check it, else wait for the next reader-list change (the PnP
    state is taken before the check, so an arrival in between still ends the wait); bounded."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        known = pnp_state(c)
        hr, _ = SCardGetStatusChange(c, 0, [(name, SCARD_STATE_UNAWARE)])
        if hr == SCARD_S_SUCCESS:
            return True
        SCardGetStatusChange(c, int((end - time.monotonic()) * 1000) + 1, [(PNP, known)])
    return False


def wait_gone(c, name, timeout_s=10):
    """Follow a reader's state until it no longer exists; bounded."""
    state = SCARD_STATE_UNAWARE
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        hr, st = SCardGetStatusChange(c, int((end - time.monotonic()) * 1000) + 1,
                                      [(name, state)])
        if hr == SCARD_E_UNKNOWN_READER:
            return True
        if hr != SCARD_S_SUCCESS:
            return False
        state = st[0][1] & ~SCARD_STATE_CHANGED
        if state & SCARD_STATE_UNKNOWN:
            return True
    return False


def write_conf(d, lines):
    with open(d.conf, 'w', encoding='utf-8') as f:
        f.write(f'socket = {d.sock}\ndiscover = false\n{LOG}')
        f.write(''.join(line + '\n' for line in lines))


@pytest.fixture()
def hup_daemon():
    d = env.Daemon(readers=['sim:0:card=t1', 'sim:1'], extra=LOG)
    yield d
    d.close()


def test_sighup_reload(hup_daemon, ctx):
    d = hup_daemon
    if True:  # pylint: disable=using-constant-test
        assert readers(ctx) == ['SimVendor SimReader 0', 'SimVendor SimReader 1']
        hr, card, proto = SCardConnect(ctx, 'SimVendor SimReader 0', SCARD_SHARE_SHARED,
                                       SCARD_PROTOCOL_T1)
        assert hr == SCARD_S_SUCCESS
        # sim:1 leaves, sim:2 and sim:3 arrive, sim:0 stays (its connection too)
        write_conf(d, ['reader = sim:0:card=t1', 'reader = sim:2', 'reader = sim:3:card=t0'])
        w = PnpWaiter()
        d.proc.send_signal(signal.SIGHUP)
        w.woke()
        # SCardListReaders only once the reload is over: pyscard's SCardListReaders reads past
        # its buffer when the list grows between its size query and its fetch
        env.wait_for(lambda: d.log_text().count('SIGHUP: configuration reloaded') == 1, 10,
                     'the first reload')
        assert readers(ctx) == ['SimVendor SimReader 0', 'SimVendor SimReader 2',
                                'SimVendor SimReader 3']
        hr, resp = SCardTransmit(card, proto, [0x00, 0xA4, 0x04, 0x00, 0x07, 0xF0, 0x53, 0x43,
                                               0x52, 0x4D, 0x00, 0x01])
        assert hr == SCARD_S_SUCCESS and resp[-2:] == [0x90, 0x00]
        assert SCardDisconnect(card, SCARD_LEAVE_CARD) == SCARD_S_SUCCESS
        # a changed option is a different device: it leaves and comes back
        write_conf(d, ['reader = sim:0:card=t1', 'reader = sim:2:card=t1',
                       'reader = sim:3:card=t0'])
        d.proc.send_signal(signal.SIGHUP)
        env.wait_for(lambda: d.log_text().count('SIGHUP: configuration reloaded') == 2, 10,
                     'the second reload')
        assert wait_present(ctx, 'SimVendor SimReader 2'), 'sim:2 has its card after the reload'
        # a configuration that does not parse changes nothing
        with open(d.conf, 'a', encoding='utf-8') as f:
            f.write('no_such_key = 1\n')
        d.proc.send_signal(signal.SIGHUP)
        env.wait_for(lambda: 'configuration kept' in d.log_text(), 10, 'the refused reload')
        assert f"({d.conf}:7: unknown setting 'no_such_key'); configuration kept" in d.log_text()
        assert readers(ctx) == ['SimVendor SimReader 0', 'SimVendor SimReader 2',
                                'SimVendor SimReader 3']


# ---- reader.conf.d with a real driver: Debian's vpcd entry, through the ifd: bridge ------------

VPCD_ENTRY = ('# as vsmartcard installs it\n'
              'FRIENDLYNAME "Virtual PCD"\n'
              'DEVICENAME   /dev/null:0x8C7B\n'
              'LIBPATH      /usr/lib/pcsc/drivers/serial/libifdvpcd.so\n'
              'CHANNELID    0x8C7B\n')


@pytest.fixture()
def conf_dir_daemon():
    from test_ifd_vpcd import VPCD, NetnsDaemon  # pylint: disable=import-outside-toplevel
    if os.geteuid() != 0 or not os.path.exists(VPCD):
        pytest.skip('needs root (private network namespace) and vsmartcard-vpcd')
    rdir = tempfile.mkdtemp(prefix='scrm-readerconf-')
    with open(os.path.join(rdir, 'vpcd'), 'w', encoding='utf-8') as f:
        f.write(VPCD_ENTRY)
    with open(os.path.join(rdir, 'broken'), 'w', encoding='utf-8') as f:
        f.write('FRIENDLYNAME "Broken"\nLIBPATH /no/such/libdriver.so\nCHANNELID 1\n')
    d = NetnsDaemon(readers=['sim:0'], extra=LOG + f'reader_conf_dir = {rdir}\n')
    d.rdir = rdir
    yield d
    d.close()
    shutil.rmtree(rdir, ignore_errors=True)


def test_reader_conf_dir_and_sighup(conf_dir_daemon, ctx):
    d = conf_dir_daemon
    # the vpcd entry starts both of its slots, named as pcscd names them (the bridge adds the
    # second slot as a device of its own, just after the first); the broken entry is refused
    # with its file and line, and does not stop the others
    assert wait_reader(ctx, 'Virtual PCD 00 01')
    assert readers(ctx) == ['SimVendor SimReader 0', 'Virtual PCD 00 00', 'Virtual PCD 00 01']
    broken = os.path.join(d.rdir, 'broken')
    assert f'{broken}:2: library /no/such/libdriver.so: No such file or directory' in d.log_text()
    # the entry is removed and scrmd told: its readers leave, PnP waiters wake
    os.unlink(os.path.join(d.rdir, 'vpcd'))
    w = PnpWaiter()
    d.proc.send_signal(signal.SIGHUP)
    w.woke()
    env.wait_for(lambda: d.log_text().count('SIGHUP: configuration reloaded') == 1, 10, 'reload')
    assert wait_gone(ctx, 'Virtual PCD 00 01')  # the second slot leaves with the first
    assert readers(ctx) == ['SimVendor SimReader 0']
    # and put back: they come back
    with open(os.path.join(d.rdir, 'vpcd'), 'w', encoding='utf-8') as f:
        f.write(VPCD_ENTRY)
    w = PnpWaiter()
    d.proc.send_signal(signal.SIGHUP)
    w.woke()
    env.wait_for(lambda: d.log_text().count('SIGHUP: configuration reloaded') == 2, 10, 'reload')
    assert wait_reader(ctx, 'Virtual PCD 00 01')
    assert readers(ctx) == ['SimVendor SimReader 0', 'Virtual PCD 00 00', 'Virtual PCD 00 01']
