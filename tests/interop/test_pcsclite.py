"""scrmd's pcsc-lite listener: what only pcsc-lite's own protocol has.

Run with --client pcsclite (the system's unmodified libpcsclite.so.1, PCSCLITE_CSOCK_NAME set by
scrm_env). Most cases speak the protocol directly on a raw socket, as a client library would,
to check the daemon side byte for byte: pcsc-lite's framing (replies without header, raw buffers
after TRANSMIT / CONTROL), the reader-state array, the one-signal-per-WAIT rule, SCardCancel on a
connection of its own, version negotiation, and what happens to malformed or hostile clients.
"""
import os
import socket
import struct
import subprocess
import threading

import pytest
from smartcard.scard import (SCARD_E_CANCELLED, SCARD_S_SUCCESS, SCARD_SCOPE_USER,
                             SCARD_STATE_EMPTY, SCARD_STATE_PRESENT, SCARD_STATE_UNAWARE,
                             SCardCancel, SCardConnect, SCardControl, SCardEstablishContext,
                             SCardGetStatusChange, SCardListReaders, SCardReleaseContext,
                             SCardTransmit)

import scrm_env as env
from scrm_env import R_EMPTY, R_T1

pytestmark = env.only_client('pcsclite', 'pcsc-lite protocol tests')

VERSION, ESTABLISH, RELEASE, CONNECT, DISCONNECT = 0x11, 0x01, 0x02, 0x04, 0x06
BEGIN, END, TRANSMIT, CONTROL, STATUS, CANCEL = 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0D
GET_ATTRIB, SET_ATTRIB = 0x0F, 0x10
GET_STATE, WAIT, STOP, READER_EVENTS, STATE_SIZE, STATE_ARRAY = 0x12, 0x13, 0x14, 0x15, 0x16, 0x17
RS = 184  # READER_STATE
SERVICE_STOPPED, INVALID_HANDLE, UNKNOWN_READER = 0x8010001E, 0x80100003, 0x80100009


@pytest.fixture(scope='module')
def daemon():
    d = env.Daemon()
    yield d
    d.close()


class Raw:
    """One connection speaking pcsc-lite's protocol by hand."""

    def __init__(self, timeout=5.0):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(env.PCSCLITE_SOCK)

    def send(self, cmd, body=b'', size=None, extra=b''):
        self.s.sendall(struct.pack('<II', len(body) if size is None else size, cmd) + body + extra)

    def recv(self, n):
        out = b''
        while len(out) < n:
            chunk = self.s.recv(n - len(out))
            if not chunk:
                raise EOFError(f'closed after {len(out)} of {n} bytes')
            out += chunk
        return out

    def closed(self):
        """True if the daemon closed the connection (EOF or reset) with nothing sent."""
        try:
            return self.s.recv(1) == b''
        except ConnectionResetError:
            return True

    def nothing_pending(self, wait=0.2):
        self.s.settimeout(wait)
        try:
            data = self.s.recv(1)
        except socket.timeout:
            return True
        finally:
            self.s.settimeout(5.0)
        raise AssertionError(f'unexpected bytes {data!r}')

    def version(self, major=4, minor=4):
        self.send(VERSION, struct.pack('<iiI', major, minor, 0))
        return struct.unpack('<iiI', self.recv(12))

    def establish(self):
        self.send(ESTABLISH, struct.pack('<III', 2, 0, 0))
        scope, ctx, rv = struct.unpack('<III', self.recv(12))
        assert scope == 2 and rv == 0 and 0 < ctx < 0x80000000
        return ctx

    def connect(self, ctx, reader=R_T1, share=2, protocols=3):
        self.send(CONNECT, struct.pack('<I', ctx) + reader.encode().ljust(128, b'\0') +
                  struct.pack('<IIiII', share, protocols, 0, 0, 0))
        rep = self.recv(152)
        card, proto, rv = struct.unpack('<iII', rep[140:152])
        assert rep[:140] == struct.pack('<I', ctx) + reader.encode().ljust(128, b'\0') + \
            struct.pack('<II', share, protocols), 'CONNECT echoes its request'
        return card, proto, rv

    def states(self, count=16):
        data = self.recv(count * RS)
        out = []
        for i in range(count):
            e = data[i * RS:(i + 1) * RS]
            name = e[:128].split(b'\0')[0].decode()
            counter, state, sharing = struct.unpack('<IIi', e[128:140])
            atr_len, proto = struct.unpack('<II', e[176:184])
            out.append((name, counter, state, sharing, e[140:140 + min(atr_len, 33)], atr_len,
                        proto))
        return out

    def close(self):
        self.s.close()


def session(minor=4):
    r = Raw()
    assert r.version(4, minor) == (4, minor, 0)
    return r, r.establish()


# ---- Handshake and version ----------------------------------------------------------------------

@pytest.mark.parametrize('minor', [4, 5, 6])
def test_versions_served(daemon, minor):
    r, ctx = session(minor)
    r.send(RELEASE, struct.pack('<II', ctx, 0))
    assert r.recv(8) == struct.pack('<II', ctx, 0)
    r.close()


@pytest.mark.parametrize('major,minor', [(4, 3), (4, 7), (3, 4), (5, 4)])
def test_old_or_unknown_version_refused_like_pcscd(daemon, major, minor):
    """Answered with the newest version served and SCARD_E_SERVICE_STOPPED; the connection stays
    open (a newer client retries with the version offered)."""
    r = Raw()
    assert r.version(major, minor) == (4, 6, SERVICE_STOPPED)
    assert r.version(4, 5) == (4, 5, 0)
    r.establish()
    r.close()
    assert 'speaks pcsc-lite protocol' in daemon.log_text()


def test_establish_without_version(daemon):
    r = Raw()
    r.establish()
    r.close()


def test_library_with_each_client_api(daemon):
    """Debian's library end to end: list, connect, transmit, control, cancel."""
    hr, c = SCardEstablishContext(SCARD_SCOPE_USER)
    assert hr == SCARD_S_SUCCESS
    hr, readers = SCardListReaders(c, [])
    assert hr == SCARD_S_SUCCESS and R_T1 in readers and R_EMPTY in readers
    hr, card, proto = SCardConnect(c, R_T1, 2, 3)
    assert hr == SCARD_S_SUCCESS
    hr, resp = SCardTransmit(card, proto, [0x80, 0xEE, 0x00, 0x00, 0x04])  # 4 bytes + SW
    assert hr == SCARD_S_SUCCESS and resp[-2:] == [0x90, 0x00]
    hr, _ = SCardControl(card, 0x42000000 + 3400, [])
    assert hr == SCARD_S_SUCCESS
    SCardReleaseContext(c)


# ---- Reader-state array and events ------------------------------------------------------------

def test_reader_state_array(daemon):
    r, _ctx = session()
    r.send(GET_STATE, size=0)
    st = r.states()
    names = [e[0] for e in st]
    assert names[:4] == [env.R_T1, env.R_T0, env.R_EMPTY, env.R_SPARE]
    t1 = st[0]
    assert t1[2] == 0x34 and 0 < t1[5] <= 33 and len(t1[4]) == t1[5]  # PRESENT|POWERED|NEGOTIABLE
    assert st[2][2] == 0x02 and st[2][5] == 0  # ABSENT
    for e in st[4:]:  # unused slots: empty name, cardAtrLength 34, all else 0
        assert e[0] == '' and e[5] == 34 and e[1:4] == (0, 0, 0) and e[6] == 0
    # 4:6: the size, then the whole array
    r2, _ = session(6)
    r2.send(STATE_SIZE)
    (n,) = struct.unpack('<i', r2.recv(4))
    assert n == 4
    r2.send(STATE_ARRAY)
    assert [e[0] for e in r2.states(n)] == names[:4]
    r2.send(READER_EVENTS)
    events, rv = struct.unpack('<iI', r2.recv(8))
    assert rv == 0 and events >= 1
    r.close()
    r2.close()


def test_sharing_and_protocol_in_array(daemon):
    r, ctx = session()
    card, proto, rv = r.connect(ctx)
    assert rv == 0 and proto == 2 and 0 < card
    r.send(GET_STATE)
    t1 = r.states()[0]
    assert t1[3] == 1 and t1[6] == 2  # one shared handle, T=1
    r.send(STATUS, struct.pack('<iI', card, 0))
    assert r.recv(8) == struct.pack('<iI', card, 0)
    r.send(DISCONNECT, struct.pack('<iII', card, 0, 0))
    assert r.recv(12) == struct.pack('<iII', card, 0, 0)
    r.close()


def test_wait_signal_once_then_stop_gets_nothing(daemon):
    """WAIT answers the array; a card event sends exactly one {0, 0}; a STOP after it gets no
    reply (the daemon already dropped the registration), a STOP while registered gets {0, 0}."""
    r, _ctx = session()
    r.send(WAIT)
    before = r.states()[2]
    assert before[0] == R_EMPTY and before[2] == 0x02
    hr, c = SCardEstablishContext(SCARD_SCOPE_USER)
    hr, card, _p = SCardConnect(c, R_EMPTY, 3, 0)  # DIRECT: drive the simulated reader
    assert hr == SCARD_S_SUCCESS
    assert r.recv(8) == b'\0' * 8  # the sharing change of the DIRECT connect is an event too
    r.send(WAIT)
    r.states()
    hr, _ = SCardControl(card, env.SIM_INSERT, list(b't1'))
    assert hr == SCARD_S_SUCCESS
    assert r.recv(8) == b'\0' * 8
    r.send(STOP)
    r.nothing_pending()
    r.send(WAIT)
    after = r.states()[2]
    assert after[2] == 0x34 and after[1] == before[1] + 1  # counter updated before the signal
    r.send(STOP)
    assert r.recv(8) == b'\0' * 8
    hr, _ = SCardControl(card, env.SIM_REMOVE, [])
    assert hr == SCARD_S_SUCCESS
    r.nothing_pending()  # not registered: no signal
    SCardReleaseContext(c)
    r.close()


def test_stop_without_wait_has_no_reply(daemon):
    r, _ctx = session()
    r.send(STOP)
    assert r.version() == (4, 4, 0)  # the next reply is the first thing that arrives
    r.close()


def test_cancel_on_its_own_connection(daemon):
    r, ctx = session()
    r.send(WAIT)
    r.states()
    c = Raw()  # no version, no establish: CANCEL is the only message
    c.send(CANCEL, struct.pack('<iI', ctx, 0))
    assert c.recv(8) == struct.pack('<iI', ctx, 0)
    c.close()
    assert r.recv(8) == struct.pack('<II', 0, SCARD_E_CANCELLED)
    r.send(STOP)
    r.nothing_pending()  # a cancelled client is unregistered already
    # a context that is not waiting: success, nothing sent to it
    c = Raw()
    c.send(CANCEL, struct.pack('<iI', ctx, 0))
    assert c.recv(8) == struct.pack('<iI', ctx, 0)
    r.nothing_pending()
    c.send(CANCEL, struct.pack('<iI', 0x7FFFFFFF if ctx != 0x7FFFFFFF else 1, 0))
    assert struct.unpack('<iI', c.recv(8))[1] == INVALID_HANDLE
    c.close()
    r.close()


def test_library_cancel_and_insertion(daemon):
    """SCardGetStatusChange through Debian's library: removal and insertion wake it, SCardCancel
    ends it."""
    hr, c2 = SCardEstablishContext(SCARD_SCOPE_USER)
    hr, card, _p = SCardConnect(c2, env.R_SPARE, 3, 0)  # DIRECT: drives the simulated reader
    assert hr == SCARD_S_SUCCESS
    hr, c = SCardEstablishContext(SCARD_SCOPE_USER)
    hr, st = SCardGetStatusChange(c, 0, [(env.R_SPARE, SCARD_STATE_UNAWARE)])
    known = st[0][1] & ~2
    assert known & SCARD_STATE_PRESENT
    res = {}
    t = threading.Thread(target=lambda: res.setdefault(
        'r', SCardGetStatusChange(c, 0xFFFFFFFF, [(env.R_SPARE, known)])))
    t.start()
    t.join(0.3)
    assert t.is_alive()
    hr, _ = SCardControl(card, env.SIM_REMOVE, [])
    assert hr == SCARD_S_SUCCESS
    t.join(10)
    assert not t.is_alive() and res['r'][0] == SCARD_S_SUCCESS
    st = res['r'][1]
    assert st[0][1] & SCARD_STATE_EMPTY and (st[0][1] >> 16) == (known >> 16) + 1
    hr, card, _p = SCardConnect(c2, env.R_SPARE, 3, 0)  # the old handle saw the removal
    hr, _ = SCardControl(card, env.SIM_INSERT, list(b't1'))
    assert hr == SCARD_S_SUCCESS
    hr, st = SCardGetStatusChange(c, 5000, [(env.R_SPARE, st[0][1] & ~2)])
    assert hr == SCARD_S_SUCCESS and st[0][1] & SCARD_STATE_PRESENT
    res.clear()
    t = threading.Thread(target=lambda: res.setdefault(
        'r', SCardGetStatusChange(c, 0xFFFFFFFF, [(env.R_SPARE, st[0][1] & ~2)])))
    t.start()
    t.join(0.3)
    assert t.is_alive()
    assert SCardCancel(c) == SCARD_S_SUCCESS
    t.join(10)
    assert not t.is_alive() and res['r'][0] == SCARD_E_CANCELLED
    SCardReleaseContext(c2)
    SCardReleaseContext(c)


# ---- Security and malformed input ---------------------------------------------------------------

def test_foreign_card_handle_closes_that_client_only(daemon):
    a, ctx_a = session()
    card, _p, rv = a.connect(ctx_a)
    assert rv == 0
    b, _ctx_b = session()
    b.send(TRANSMIT, struct.pack('<iIIIIIII', card, 2, 16, 5, 3, 16, 258, 0),
           extra=bytes([0, 0xA4, 4, 0, 0]))
    assert b.closed()
    a.send(STATUS, struct.pack('<iI', card, 0))  # the owner is not disturbed
    assert a.recv(8) == struct.pack('<iI', card, 0)
    a.close()
    assert 'with a card handle it does not own' in daemon.log_text()


def test_connect_with_another_context_refused(daemon):
    a, ctx_a = session()
    b, _ctx_b = session()
    _card, _p, rv = b.connect(ctx_a)
    assert rv == INVALID_HANDLE
    a.close()
    b.close()


@pytest.mark.parametrize('what,msg', [
    ('unknown command', struct.pack('<II', 0, 0x63)),
    ('GET_STATUS_CHANGE is not served', struct.pack('<II', 0, 0x0C)),
    ('wrong length', struct.pack('<II', 8, VERSION) + struct.pack('<ii', 4, 4)),
    ('oversized send buffer', struct.pack('<II', 32, TRANSMIT) +
     struct.pack('<iIIIIIII', 1, 2, 16, 65549, 3, 16, 258, 0)),
])
def test_malformed_closes_that_client_only(daemon, what, msg):
    other, _ctx = session()
    r = Raw()
    r.s.sendall(msg)
    assert r.closed(), what
    assert other.version() == (4, 4, 0)
    other.close()
    assert daemon.alive()


def test_truncated_message(daemon):
    r = Raw()
    r.s.sendall(struct.pack('<II', 152, CONNECT) + b'\1' * 40)
    r.close()
    other, _ctx = session()
    other.close()
    env.wait_for(lambda: 'truncated' in daemon.log_text(), 5, 'the truncation in the log')


def test_client_that_never_reads(daemon):
    """Requests without reading the replies: the daemon stops reading from that client (its
    output is bounded) and serves everyone else; closing it frees everything."""
    r, _ctx = session()
    r.s.setblocking(False)
    sent = 0
    try:
        while sent < 64 << 20:
            sent += r.s.send(struct.pack('<II', 0, GET_STATE) * 512)
    except BlockingIOError:
        pass
    assert sent < 64 << 20, 'the daemon must stop reading a client that does not read'
    other, ctx = session()
    card, _p, rv = other.connect(ctx)
    assert rv == 0
    other.send(DISCONNECT, struct.pack('<iII', card, 0, 0))
    assert other.recv(12)[8:] == b'\0' * 4
    other.close()
    r.close()
    assert daemon.alive()


def test_more_than_16_readers():
    """A 4:4 client sees 16 readers (logged); a 4:6 client sees all of them."""
    readers = [f'sim:{i}' for i in range(18)]
    with env.Daemon(readers=readers) as d:
        r, _ctx = session(4)
        r.send(GET_STATE)
        st = r.states()
        assert all(e[0] for e in st) and len(st) == 16
        r2, _ = session(6)
        r2.send(STATE_SIZE)
        assert struct.unpack('<i', r2.recv(4))[0] == 18
        r2.send(STATE_ARRAY)
        assert len([e for e in r2.states(18) if e[0]]) == 18
        hr, c = SCardEstablishContext(SCARD_SCOPE_USER)
        hr, names = SCardListReaders(c, [])
        assert hr == SCARD_S_SUCCESS and len(names) == 16
        SCardReleaseContext(c)
        r.close()
        r2.close()
        assert 'see the first 16 only' in d.log_text()


def test_daemon_restart(daemon):
    """A context of the old daemon fails cleanly; a new one works at once."""
    hr, c = SCardEstablishContext(SCARD_SCOPE_USER)
    assert hr == SCARD_S_SUCCESS
    assert daemon.stop() == 0
    daemon.start()
    hr, _ = SCardListReaders(c, [])
    assert hr != SCARD_S_SUCCESS  # the old connection is gone: an error, not a hang
    SCardReleaseContext(c)
    hr, c = SCardEstablishContext(SCARD_SCOPE_USER)
    assert hr == SCARD_S_SUCCESS
    hr, readers = SCardListReaders(c, [])
    assert hr == SCARD_S_SUCCESS and R_T1 in readers
    SCardReleaseContext(c)


def test_pcsc_scan_and_opensc_tool(daemon):
    """The distribution's tools with their own library."""
    e = dict(os.environ)
    out = subprocess.run(['pcsc_scan', '-n', '-r'], capture_output=True, text=True, env=e,
                         timeout=30)
    assert R_T1 in out.stdout, out.stdout + out.stderr
    out = subprocess.run(['opensc-tool', '--list-readers'], capture_output=True, text=True,
                         env=e, timeout=30)
    assert R_T1 in out.stdout, out.stdout + out.stderr
