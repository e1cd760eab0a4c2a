"""The IFD-handler bridge with a real third-party driver and card: Debian's libifdvpcd.so (vsmartcard)
loaded by scrmd as `ifd:vpcd`, and vsmartcard's `vicc -t iso7816` (the Python card emulator) as
the card. Clients: pyscard, opensc-tool.

vpcd listens on 0.0.0.0, on the fixed port of its DEVICENAME (35963 and 35964 for its two
slots), so the daemon and vicc run in a private network namespace of their own (`unshare -n`,
root only): concurrent test runs cannot collide, and nothing listens on the machine's network.
The clients reach the daemon through its Unix socket, which the namespace does not hide.
"""
import os
import shutil
import signal
import subprocess
import tempfile

import pytest
from smartcard.scard import (
    SCARD_ATTR_DEVICE_FRIENDLY_NAME_A, SCARD_LEAVE_CARD, SCARD_PROTOCOL_T0, SCARD_PROTOCOL_T1,
    SCARD_S_SUCCESS, SCARD_SCOPE_USER, SCARD_SHARE_SHARED, SCARD_STATE_CHANGED,
    SCARD_STATE_EMPTY, SCARD_STATE_PRESENT, SCARD_STATE_UNAWARE, SCARD_W_REMOVED_CARD,
    SCardConnect, SCardControl, SCardDisconnect, SCardEstablishContext, SCardGetAttrib,
    SCardGetStatusChange, SCardListReaders, SCardReleaseContext, SCardTransmit)

import scrm_env as env

VPCD = '/usr/lib/pcsc/drivers/serial/libifdvpcd.so'
PORT = 0x8C7B  # vpcd's default port; private to the namespace
R0 = 'Virtual PCD 00 00'
R1 = 'Virtual PCD 00 01'
SELECT_MF = [0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00]  # works with vicc's iso7816 card
SCARD_E_UNSUPPORTED_FEATURE = 0x8010001F
CM_IOCTL_GET_FEATURE_REQUEST = 0x42000000 + 3400
PROTOCOLS = SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root for a private network namespace'),
    pytest.mark.skipif(not os.path.exists(VPCD), reason='vsmartcard-vpcd is not installed'),
    pytest.mark.skipif(shutil.which('vicc') is None, reason='vsmartcard-vpicc is not installed'),
]


def vicc_env():
    """vicc's library and pycryptodome's `Crypto` name (Debian installs it as Cryptodome)."""
    shim = tempfile.mkdtemp(prefix='scrm-vicc-')
    os.symlink('/usr/lib/python3/dist-packages/Cryptodome', os.path.join(shim, 'Crypto'))
    e = dict(os.environ)
    for k in ('LD_PRELOAD', 'LD_LIBRARY_PATH', 'ASAN_OPTIONS', 'TSAN_OPTIONS'):
        e.pop(k, None)
    e['PYTHONPATH'] = '/usr/lib/python3/site-packages/virtualsmartcard:' + shim
    return e, shim


class NetnsDaemon(env.Daemon):
    """scrmd in a private network namespace with loopback up."""

    def start(self):
        e = dict(os.environ)
        e.setdefault('SCRM_LOG', 'ipc:info,rm:info,drv:info')
        e.pop('LD_PRELOAD', None)
        e['ASAN_OPTIONS'] = 'detect_leaks=1'
        logf = open(self.log, 'ab')
        self.proc = subprocess.Popen(
            ['unshare', '-n', 'sh', '-c', 'ip link set lo up && exec "$0" -f --config "$1"',
             env.DAEMON, self.conf], stdout=logf, stderr=subprocess.STDOUT, env=e)
        logf.close()
        env.wait_for(self.ready, 20, 'scrmd to listen')

    def vicc(self, slot=0):
        """Start vicc (the card) in the daemon's namespace, connected to the slot's port."""
        e, shim = vicc_env()
        p = subprocess.Popen(['nsenter', '-t', str(self.proc.pid), '-n', 'vicc', '-t', 'iso7816',
                              '-H', '127.0.0.1', '-P', str(PORT + slot)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=e)
        p.shim = shim
        return p


def stop_vicc(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    shutil.rmtree(p.shim, ignore_errors=True)


@pytest.fixture(scope='module')
def daemon():
    d = NetnsDaemon(readers=[f'ifd:vpcd:lib={VPCD},device=/dev/null:0x{PORT:X},'
                             f'channel=0x{PORT:X},name=Virtual%20PCD'])
    yield d
    d.close()


@pytest.fixture
def ctx(daemon):
    hr, c = SCardEstablishContext(SCARD_SCOPE_USER)
    assert hr == SCARD_S_SUCCESS
    yield c
    SCardReleaseContext(c)


def state_of(c, reader):
    hr, st = SCardGetStatusChange(c, 0, [(reader, SCARD_STATE_UNAWARE)])
    assert hr == SCARD_S_SUCCESS, hex(hr)
    return st[0][1], bytes(st[0][2])


def wait_state(c, reader, flag, timeout_ms=10000):
    """Block in SCardGetStatusChange until the reader's state has `flag` (bounded)."""
    cur, _ = state_of(c, reader)
    while not cur & flag:
        hr, st = SCardGetStatusChange(c, timeout_ms, [(reader, cur & ~SCARD_STATE_CHANGED)])
        assert hr == SCARD_S_SUCCESS, f'{reader}: no state change within {timeout_ms} ms'
        cur = st[0][1]
    return cur


def test_readers_listed_with_pcscd_names(ctx):
    hr, readers = SCardListReaders(ctx, [])
    assert hr == SCARD_S_SUCCESS
    assert R0 in readers and R1 in readers  # both vpcd slots, named as pcscd names them
    state, _ = state_of(ctx, R0)
    assert state & SCARD_STATE_EMPTY


def test_insert_apdus_and_removal(daemon, ctx):
    card = daemon.vicc()
    try:
        wait_state(ctx, R0, SCARD_STATE_PRESENT)
        _, atr = state_of(ctx, R0)
        assert atr[:1] == b'\x3b'
        hr, h, proto = SCardConnect(ctx, R0, SCARD_SHARE_SHARED, PROTOCOLS)
        assert hr == SCARD_S_SUCCESS, hex(hr)
        assert proto in (SCARD_PROTOCOL_T0, SCARD_PROTOCOL_T1)
        for _ in range(3):
            hr, resp = SCardTransmit(h, proto, SELECT_MF)
            assert hr == SCARD_S_SUCCESS, hex(hr)
            assert resp == [0x90, 0x00]
        hr, name = SCardGetAttrib(h, SCARD_ATTR_DEVICE_FRIENDLY_NAME_A)
        assert hr == SCARD_S_SUCCESS and bytes(name).rstrip(b'\0') == R0.encode()
        # PC/SC control codes reach IFDHControl; vpcd has none (IFD_ERROR_NOT_SUPPORTED)
        hr, _ = SCardControl(h, CM_IOCTL_GET_FEATURE_REQUEST, [])
        assert hr == SCARD_E_UNSUPPORTED_FEATURE, hex(hr)

        stop_vicc(card)  # the card leaves with the connection open
        card = None
        wait_state(ctx, R0, SCARD_STATE_EMPTY)
        hr, _ = SCardTransmit(h, proto, SELECT_MF)
        assert hr == SCARD_W_REMOVED_CARD, hex(hr)
        SCardDisconnect(h, SCARD_LEAVE_CARD)
    finally:
        if card:
            stop_vicc(card)


def test_second_slot_is_its_own_reader(daemon, ctx):
    card = daemon.vicc(slot=1)
    try:
        wait_state(ctx, R1, SCARD_STATE_PRESENT)
        state, _ = state_of(ctx, R0)
        assert state & SCARD_STATE_EMPTY  # slot 0 saw nothing
        hr, h, proto = SCardConnect(ctx, R1, SCARD_SHARE_SHARED, PROTOCOLS)
        assert hr == SCARD_S_SUCCESS, hex(hr)
        hr, resp = SCardTransmit(h, proto, SELECT_MF)
        assert hr == SCARD_S_SUCCESS and resp == [0x90, 0x00]
        SCardDisconnect(h, SCARD_LEAVE_CARD)
    finally:
        stop_vicc(card)
    wait_state(ctx, R1, SCARD_STATE_EMPTY)


def test_opensc_tool(daemon, ctx):
    if shutil.which('opensc-tool') is None:
        pytest.skip('opensc-tool is not installed')
    card = daemon.vicc()
    try:
        wait_state(ctx, R0, SCARD_STATE_PRESENT)
        out = subprocess.run(['opensc-tool', '-r', R0, '-s', '00 A4 00 0C 02 3F 00'],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert 'SW1=0x90, SW2=0x00' in out.stdout or '90 00' in out.stdout, out.stdout
        listed = subprocess.run(['opensc-tool', '-l'], capture_output=True, text=True, timeout=60)
        assert R0 in listed.stdout and R1 in listed.stdout
    finally:
        stop_vicc(card)
    wait_state(ctx, R0, SCARD_STATE_EMPTY)
