"""The C-level PC/SC semantics of our libpcsclite.so.1 that pyscard hides, called through ctypes:
buffer sizing (length queries, SCARD_E_INSUFFICIENT_BUFFER with the needed length,
SCARD_AUTOALLOCATE + SCardFreeMemory), the event counter in the upper 16 bits, NULL-argument
errors, pcsc_stringify_error, SCARD_E_NO_SERVICE without a daemon and recovery when it returns.
"""
import ctypes
import os
import threading

import pytest

import scrm_env as env
from scrm_env import AUTOALLOCATE, DWORD, IOREQ, LONG, READERSTATE, R_EMPTY, R_T1, u

S_SUCCESS = 0
E_INVALID_HANDLE = 0x80100003
E_INVALID_PARAMETER = 0x80100004
E_INSUFFICIENT_BUFFER = 0x80100008
E_UNKNOWN_READER = 0x80100009
E_TIMEOUT = 0x8010000A
E_INVALID_VALUE = 0x80100011
E_NO_SERVICE = 0x8010001D
E_CANCELLED = 0x80100002
SHARE_SHARED, SHARE_DIRECT = 2, 3
PROTO_T1, PROTO_ANY = 2, 3
STATE_CHANGED, STATE_EMPTY, STATE_PRESENT = 0x2, 0x10, 0x20
ATTR_VENDOR_NAME = 0x10100
ATTR_ATR_STRING = 0x90303


@pytest.fixture(scope='module')
def pcsc():
    return env.lib()


@pytest.fixture(scope='module')
def daemon():
    d = env.Daemon()
    yield d
    d.close()


@pytest.fixture
def ctx(pcsc, daemon):
    daemon.ensure()
    h = LONG()
    assert u(pcsc.SCardEstablishContext(0, None, None, ctypes.byref(h))) == S_SUCCESS
    yield h.value
    pcsc.SCardReleaseContext(h.value)


def connect(pcsc, ctx, reader=R_T1, share=SHARE_SHARED, proto=PROTO_ANY):
    card, active = LONG(), DWORD()
    rc = pcsc.SCardConnect(ctx, reader.encode(), share, proto, ctypes.byref(card),
                           ctypes.byref(active))
    assert u(rc) == S_SUCCESS, hex(u(rc))
    return card.value, active.value


@env.only_client('scrm', "pcsc-lite's own library answers NULL arguments with its own codes")
def test_result_codes_are_positive(pcsc):
    """SCARD_E_* come back as the positive 64-bit values of pcsc-lite's (LONG)0x801000xx."""
    h = LONG()
    assert pcsc.SCardIsValidContext(12345) == E_INVALID_HANDLE
    assert pcsc.SCardEstablishContext(0, None, None, None) == E_INVALID_PARAMETER
    assert pcsc.SCardEstablishContext(9, None, None, ctypes.byref(h)) == E_INVALID_VALUE


def test_stringify_error(pcsc):
    assert pcsc.pcsc_stringify_error(S_SUCCESS)
    a = pcsc.pcsc_stringify_error(E_NO_SERVICE)
    b = pcsc.pcsc_stringify_error(E_INSUFFICIENT_BUFFER)
    assert a and b and a != b
    assert b'0x12345678' in pcsc.pcsc_stringify_error(0x12345678).upper().replace(b'X', b'x')


def test_list_readers_sizes(pcsc, ctx):
    n = DWORD(0)
    assert u(pcsc.SCardListReaders(ctx, None, None, ctypes.byref(n))) == S_SUCCESS
    want = b''.join(r.encode() + b'\0' for r in
                    (env.R_T1, env.R_T0, env.R_EMPTY, env.R_SPARE)) + b'\0'
    assert n.value == len(want)
    small = DWORD(5)
    buf = ctypes.create_string_buffer(5)
    assert u(pcsc.SCardListReaders(ctx, None, buf, ctypes.byref(small))) == E_INSUFFICIENT_BUFFER
    assert small.value == len(want)
    buf = ctypes.create_string_buffer(n.value)
    assert u(pcsc.SCardListReaders(ctx, None, buf, ctypes.byref(n))) == S_SUCCESS
    assert buf.raw == want
    assert u(pcsc.SCardListReaders(ctx, None, buf, None)) == E_INVALID_PARAMETER
    assert u(pcsc.SCardListReaders(4242, None, buf, ctypes.byref(n))) == E_INVALID_HANDLE


def test_list_readers_autoallocate(pcsc, ctx):
    p = ctypes.c_void_p()
    n = DWORD(AUTOALLOCATE)
    assert u(pcsc.SCardListReaders(ctx, None, ctypes.byref(p), ctypes.byref(n))) == S_SUCCESS
    assert p.value and n.value > 10
    assert ctypes.string_at(p.value, n.value).split(b'\0')[0] == env.R_T1.encode()
    assert u(pcsc.SCardFreeMemory(ctx, p)) == S_SUCCESS


def test_list_reader_groups(pcsc, ctx):
    n = DWORD(0)
    assert u(pcsc.SCardListReaderGroups(ctx, None, ctypes.byref(n))) == S_SUCCESS
    buf = ctypes.create_string_buffer(n.value)
    assert u(pcsc.SCardListReaderGroups(ctx, buf, ctypes.byref(n))) == S_SUCCESS
    assert buf.raw[:n.value] == b'SCard$DefaultReaders\0\0'


def test_status_buffers(pcsc, ctx):
    card, _ = connect(pcsc, ctx)
    name_len, atr_len, state, proto = DWORD(0), DWORD(0), DWORD(), DWORD()
    rc = pcsc.SCardStatus(card, None, ctypes.byref(name_len), ctypes.byref(state),
                          ctypes.byref(proto), None, ctypes.byref(atr_len))
    assert u(rc) == S_SUCCESS
    assert name_len.value == len(R_T1) + 1 and atr_len.value > 2
    assert proto.value == PROTO_T1 and state.value & 0x4 and state.value >> 16 >= 1
    short = DWORD(3)
    buf = ctypes.create_string_buffer(3)
    rc = pcsc.SCardStatus(card, buf, ctypes.byref(short), None, None, None, None)
    assert u(rc) == E_INSUFFICIENT_BUFFER and short.value == len(R_T1) + 1
    p, a = ctypes.c_void_p(), ctypes.c_void_p()
    nl, al = DWORD(AUTOALLOCATE), DWORD(AUTOALLOCATE)
    rc = pcsc.SCardStatus(card, ctypes.byref(p), ctypes.byref(nl), None, None, ctypes.byref(a),
                          ctypes.byref(al))
    assert u(rc) == S_SUCCESS
    assert ctypes.string_at(p.value) == R_T1.encode() and al.value == atr_len.value
    pcsc.SCardFreeMemory(ctx, p)
    pcsc.SCardFreeMemory(ctx, a)
    pcsc.SCardDisconnect(card, 0)


def test_transmit_insufficient_buffer(pcsc, ctx):
    card, proto = connect(pcsc, ctx)
    apdu = (ctypes.c_ubyte * 5)(0x80, 0xEE, 0x00, 0x00, 0x20)  # 32 bytes + SW
    pci = IOREQ(proto, 16)
    resp = (ctypes.c_ubyte * 10)()
    n = DWORD(10)
    rc = pcsc.SCardTransmit(card, ctypes.byref(pci), apdu, 5, None, resp, ctypes.byref(n))
    assert u(rc) == E_INSUFFICIENT_BUFFER and n.value == 34
    resp = (ctypes.c_ubyte * 34)()
    recv_pci = IOREQ(0, 0)
    rc = pcsc.SCardTransmit(card, ctypes.byref(pci), apdu, 5, ctypes.byref(recv_pci), resp,
                            ctypes.byref(n))
    assert u(rc) == S_SUCCESS and n.value == 34 and bytes(resp)[-2:] == b'\x90\x00'
    assert recv_pci.dwProtocol == proto
    if env.CLIENT == 'scrm':  # pcsc-lite's library passes the caller's cbPciLength through
        assert recv_pci.cbPciLength == 16
    rc = pcsc.SCardTransmit(card, None, apdu, 5, None, resp, ctypes.byref(n))
    assert u(rc) == E_INVALID_PARAMETER
    pcsc.SCardDisconnect(card, 0)


def test_get_attrib_sizes(pcsc, ctx):
    card, _ = connect(pcsc, ctx)
    n = DWORD(0)
    assert u(pcsc.SCardGetAttrib(card, ATTR_VENDOR_NAME, None, ctypes.byref(n))) == S_SUCCESS
    assert n.value >= len('SimVendor')
    small = DWORD(2)
    buf = ctypes.create_string_buffer(2)
    rc = pcsc.SCardGetAttrib(card, ATTR_VENDOR_NAME, buf, ctypes.byref(small))
    assert u(rc) == E_INSUFFICIENT_BUFFER and small.value == n.value
    p = ctypes.c_void_p()
    al = DWORD(AUTOALLOCATE)
    assert u(pcsc.SCardGetAttrib(card, ATTR_ATR_STRING, ctypes.byref(p), ctypes.byref(al))) == 0
    assert ctypes.string_at(p.value, 1) == b'\x3b'
    pcsc.SCardFreeMemory(ctx, p)
    assert u(pcsc.SCardGetAttrib(card, ATTR_VENDOR_NAME, buf, None)) == E_INVALID_PARAMETER
    pcsc.SCardDisconnect(card, 0)


def test_control_insufficient_buffer(pcsc, ctx):
    card, _ = connect(pcsc, ctx, R_EMPTY, SHARE_DIRECT, 0)
    out = (ctypes.c_ubyte * 12)()
    got = DWORD(0)
    rc = pcsc.SCardControl(card, 0x42000000 + 2048 + 4, None, 0, out, 12, ctypes.byref(got))
    assert u(rc) == S_SUCCESS and got.value == 12  # SIM_IOCTL_INFO: three u32
    rc = pcsc.SCardControl(card, 0x42000000 + 2048 + 4, None, 0, out, 4, ctypes.byref(got))
    assert u(rc) == E_INSUFFICIENT_BUFFER
    # lpBytesReturned is optional, as in pcsc-lite
    assert u(pcsc.SCardControl(card, 0x42000000 + 2048 + 4, None, 0, out, 12, None)) == S_SUCCESS
    pcsc.SCardDisconnect(card, 0)


def test_transmit_protocol_any_old(pcsc, ctx):
    """pcsc-lite's old SCARD_PROTOCOL_ANY (0x1000) in the send PCI means the card's protocol."""
    card, _proto = connect(pcsc, ctx)
    apdu = (ctypes.c_ubyte * 5)(0x80, 0xEE, 0x00, 0x00, 0x04)
    resp = (ctypes.c_ubyte * 16)()
    n = DWORD(16)
    pci = IOREQ(0x1000, 16)
    rc = pcsc.SCardTransmit(card, ctypes.byref(pci), apdu, 5, None, resp, ctypes.byref(n))
    assert u(rc) == S_SUCCESS and bytes(resp[:n.value]) == b'\x00\x01\x02\x03\x90\x00'
    pcsc.SCardDisconnect(card, 0)


def test_gsc_counter_in_upper_bits(pcsc, ctx):
    rs = (READERSTATE * 2)()
    rs[0].szReader = R_T1.encode()
    rs[1].szReader = R_EMPTY.encode()
    assert u(pcsc.SCardGetStatusChange(ctx, 0, rs, 2)) == S_SUCCESS
    assert rs[0].dwEventState & STATE_PRESENT and rs[0].dwEventState & STATE_CHANGED
    assert rs[0].cbAtr > 2 and rs[0].rgbAtr[0] == 0x3B
    assert rs[1].dwEventState & STATE_EMPTY and rs[1].cbAtr == 0
    counter = rs[0].dwEventState >> 16
    assert counter >= 1
    # Same state but a stale counter in dwCurrentState: reported as changed at once.
    rs[0].dwCurrentState = (rs[0].dwEventState & 0xFFFC) | (((counter + 5) & 0xFFFF) << 16)
    rs[1].dwCurrentState = rs[1].dwEventState & ~STATE_CHANGED
    assert u(pcsc.SCardGetStatusChange(ctx, 0, rs, 2)) == S_SUCCESS
    assert rs[0].dwEventState & STATE_CHANGED and not rs[1].dwEventState & STATE_CHANGED
    # Up to date: a timeout.
    for r in rs:
        r.dwCurrentState = r.dwEventState & ~STATE_CHANGED
    assert u(pcsc.SCardGetStatusChange(ctx, 50, rs, 2)) == E_TIMEOUT


@env.only_client('scrm', "argument checks are client-side, and pcsc-lite's library does not validate the context when every entry is ignored")
def test_gsc_arguments(pcsc, ctx):
    rs = (READERSTATE * 1)()
    assert u(pcsc.SCardGetStatusChange(ctx, 0, None, 1)) == E_INVALID_PARAMETER
    assert u(pcsc.SCardGetStatusChange(ctx, 0, rs, 1)) == E_INVALID_VALUE  # szReader NULL
    rs[0].szReader = b'No such reader'
    assert u(pcsc.SCardGetStatusChange(ctx, 0, rs, 1)) == E_UNKNOWN_READER
    rs[0].dwCurrentState = 1  # SCARD_STATE_IGNORE: nothing to watch
    assert u(pcsc.SCardGetStatusChange(ctx, 1000, rs, 1)) == S_SUCCESS
    assert u(pcsc.SCardGetStatusChange(999, 0, rs, 1)) == E_INVALID_HANDLE


@env.only_client('scrm', "pcsc-lite's library holds the context lock during SCardGetStatusChange, so SCardReleaseContext waits (test_pcsclite.py covers cancel)")
def test_release_context_ends_wait(pcsc, daemon):
    h = LONG()
    assert u(pcsc.SCardEstablishContext(0, None, None, ctypes.byref(h))) == S_SUCCESS
    rs = (READERSTATE * 1)()
    rs[0].szReader = R_EMPTY.encode()
    pcsc.SCardGetStatusChange(h.value, 0, rs, 1)
    rs[0].dwCurrentState = rs[0].dwEventState & ~STATE_CHANGED
    out = {}
    t = threading.Thread(target=lambda: out.setdefault(
        'rc', u(pcsc.SCardGetStatusChange(h.value, 0xFFFFFFFF, rs, 1))))
    t.start()
    t.join(0.2)
    assert t.is_alive()
    assert u(pcsc.SCardReleaseContext(h.value)) == S_SUCCESS
    t.join(10)
    assert out['rc'] == E_CANCELLED


@env.only_client('scrm', "SCRM_SOCKET and reconnecting contexts are our library's; test_pcsclite.py restarts the daemon under pcsc-lite's")
def test_no_service_and_recovery(pcsc, tmp_path):
    saved = os.environ.get('SCRM_SOCKET')
    os.environ['SCRM_SOCKET'] = str(tmp_path / 'nothing.sock')
    try:
        h = LONG()
        assert u(pcsc.SCardEstablishContext(0, None, None, ctypes.byref(h))) == E_NO_SERVICE
    finally:
        if saved is not None:
            os.environ['SCRM_SOCKET'] = saved
    d = env.Daemon(readers=['sim:0:card=t1'])
    try:
        assert u(pcsc.SCardEstablishContext(0, None, None, ctypes.byref(h))) == S_SUCCESS
        n = DWORD(0)
        assert u(pcsc.SCardListReaders(h.value, None, None, ctypes.byref(n))) == S_SUCCESS
        card, _ = connect(pcsc, h.value)
        assert d.stop() == 0
        assert u(pcsc.SCardListReaders(h.value, None, None, ctypes.byref(n))) == E_NO_SERVICE
        d.start()
        # the context reconnects by itself, SCardGetStatusChange included; the old card handle
        # is gone
        rs = READERSTATE(R_T1.encode(), None, 0, 0, 0)
        assert u(pcsc.SCardGetStatusChange(h.value, 0, ctypes.byref(rs), 1)) == S_SUCCESS
        assert u(pcsc.SCardListReaders(h.value, None, None, ctypes.byref(n))) == S_SUCCESS
        assert u(pcsc.SCardBeginTransaction(card)) == E_INVALID_HANDLE
        card, _ = connect(pcsc, h.value)
        assert u(pcsc.SCardDisconnect(card, 0)) == S_SUCCESS
        assert u(pcsc.SCardReleaseContext(h.value)) == S_SUCCESS
    finally:
        d.close()


def test_socket_is_close_on_exec(pcsc, ctx):
    """Every descriptor the library opened carries FD_CLOEXEC (pcsc-lite UnitaryTests/exec.c)."""
    import fcntl
    fds = [int(f) for f in os.listdir('/proc/self/fd')]
    socks = []
    for fd in fds:
        try:
            target = os.readlink(f'/proc/self/fd/{fd}')
        except OSError:
            continue
        if target.startswith('socket:') or 'eventfd' in target:
            socks.append(fd)
    assert socks, 'the context should hold a socket'
    for fd in socks:
        try:
            flags = fcntl.fcntl(fd, fcntl.F_GETFD)
        except OSError:
            continue
        assert flags & fcntl.FD_CLOEXEC, f'fd {fd} lacks FD_CLOEXEC'
