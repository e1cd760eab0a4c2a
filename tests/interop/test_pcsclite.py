"""scrmd's pcsc-lite listener: what only pcsc-lite's own protocol has.

Run with --client pcsclite (the system's unmodified libpcsclite.so.1, PCSCLITE_CSOCK_NAME set by
scrm_env). Most cases speak the protocol directly on a raw socket, as a client library would,
to check the daemon side byte for byte: pcsc-lite's framing (replies without header, raw buffers
after TRANSMIT / CONTROL), the reader-state array, the one-signal-per-WAIT rule, SCardCancel on a
connection of its own, version negotiation, and what happens to malformed or hostile clients.
"""
import fcntl
import glob
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading

import pytest
from smartcard.scard import (SCARD_E_CANCELLED, SCARD_S_SUCCESS, SCARD_SCOPE_USER,
                             SCARD_STATE_EMPTY, SCARD_STATE_PRESENT, SCARD_STATE_UNAWARE,
                             SCardBeginTransaction, SCardCancel, SCardConnect, SCardControl,
                             SCardDisconnect, SCardEndTransaction, SCardEstablishContext,
                             SCardGetStatusChange, SCardListReaders, SCardReconnect,
                             SCardReleaseContext, SCardTransmit)

import scrm_env as env
from scrm_env import R_EMPTY, R_SPARE, R_T1

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

    def __init__(self, timeout=5.0, path=None):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path or env.PCSCLITE_SOCK)

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
    # 4:6's WAIT has no answer: pcsc-lite 2.5 fetches the table itself right after it
    r2.send(WAIT)
    r2.send(STATE_SIZE)
    assert struct.unpack('<i', r2.recv(4)) == (n,)
    r2.send(STATE_ARRAY)
    assert [e[0] for e in r2.states(n)] == names[:4]
    r2.send(STOP)
    assert r2.recv(8) == b'\0' * 8
    # an event between WAIT and the table fetch is signalled after the table, never inside it
    r2.send(WAIT)
    r2.send(STATE_SIZE)
    assert struct.unpack('<i', r2.recv(4)) == (n,)
    hr, c = SCardEstablishContext(SCARD_SCOPE_USER)
    hr, card, _p = SCardConnect(c, R_EMPTY, 3, 0)  # DIRECT: a sharing change, an event
    assert hr == SCARD_S_SUCCESS
    r2.send(STATE_ARRAY)
    assert [e[0] for e in r2.states(n)] == names[:4]
    assert r2.recv(8) == b'\0' * 8
    SCardReleaseContext(c)
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


def proc_threads(pid):
    with open(f'/proc/{pid}/status', encoding='ascii') as f:
        for line in f:
            if line.startswith('Threads:'):
                return int(line.split()[1])
    return -1


APDU = bytes([0, 0xA4, 4, 0, 0])


def transmit(r, card):
    r.send(TRANSMIT, struct.pack('<iIIIIIII', card, 2, 16, len(APDU), 3, 16, 258, 0), extra=APDU)
    rep = r.recv(32)
    rv, n = struct.unpack('<I', rep[28:32])[0], struct.unpack('<I', rep[24:28])[0]
    return rv, r.recv(n) if rv == 0 else b''


def test_blocked_begins_hold_no_worker():
    """More clients blocked in BEGIN_TRANSACTION than the daemon has worker threads
    (max_threads = 2): each request waits as an event (a watch on the reader), not on a worker,
    so the holder's TRANSMIT and END are served; then the waiters get the transaction one at a
    time, each ending it in turn, until all have had it."""
    d = env.Daemon(extra='max_threads = 2\n')
    try:
        holder, hctx = session()
        hcard, _p, rv = holder.connect(hctx)
        assert rv == 0
        waiters = []
        for _ in range(8):  # connected first (a connect waits for a transaction as well)
            r, ctx = session()
            card, _p, rv = r.connect(ctx)
            assert rv == 0
            waiters.append((r, card))
        holder.send(BEGIN, struct.pack('<iI', hcard, 0))
        assert holder.recv(8) == struct.pack('<iI', hcard, 0)
        for r, card in waiters:
            r.send(BEGIN, struct.pack('<iI', card, 0))
        # the holder is served although more requests wait than there are workers
        rv, resp = transmit(holder, hcard)
        assert rv == 0 and len(resp) == 2
        assert not select.select([r.s for r, _ in waiters], [], [], 0)[0], \
            'nobody gets the transaction while it is held'
        assert proc_threads(d.proc.pid) <= 2 + 8, 'workers capped (scrmd has a few threads more)'
        holder.send(END, struct.pack('<iII', hcard, 0, 0))
        assert holder.recv(12) == struct.pack('<iII', hcard, 0, 0)
        pending = dict((r.s, (r, card)) for r, card in waiters)
        while pending:
            ready = select.select(list(pending), [], [], 10)[0]
            assert len(ready) == 1, 'exactly one waiter at a time has the transaction'
            r, card = pending.pop(ready[0])
            assert r.recv(8) == struct.pack('<iI', card, 0)
            assert transmit(r, card)[0] == 0
            r.send(END, struct.pack('<iII', card, 0, 0))
            assert r.recv(12) == struct.pack('<iII', card, 0, 0)
        for r, _ in waiters:
            r.close()
        holder.close()
        assert d.alive()
    finally:
        d.close()


def test_library_begins_past_the_thread_cap():
    """The same through the system's libpcsclite.so.1 (each thread its own context, as pcsc-lite
    wants): with max_threads = 2, six threads block in SCardBeginTransaction; the holder ends its
    transaction and every thread gets it in turn."""
    d = env.Daemon(extra='max_threads = 2\n', log='ipc:debug,rm:info')  # to see the waits start
    try:
        hr, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
        hr, card, proto = SCardConnect(ctx, R_T1, 2, 3)
        assert hr == SCARD_S_SUCCESS
        results, connected, go = [], threading.Barrier(7), threading.Barrier(7)

        def waiter():
            c = SCardEstablishContext(SCARD_SCOPE_USER)[1]
            h = SCardConnect(c, R_T1, 2, 3)[1]
            connected.wait()
            go.wait()
            rc = SCardBeginTransaction(h)
            if rc == SCARD_S_SUCCESS:
                rc = SCardTransmit(h, proto, list(APDU))[0] or \
                    SCardEndTransaction(h, 0)
            results.append(rc)
            SCardDisconnect(h, 0)  # LEAVE (a release with the card connected would reset it)
            SCardReleaseContext(c)

        ts = [threading.Thread(target=waiter) for _ in range(6)]
        for t in ts:
            t.start()
        connected.wait()
        assert SCardBeginTransaction(card) == SCARD_S_SUCCESS
        go.wait()

        def waiting():
            return len(set(re.findall(r'client (\d+): waits for the transaction',
                                      d.log_text()))) >= 6
        env.wait_for(waiting, 20, 'six clients waiting in SCardBeginTransaction')
        holder = []  # in a thread: with a waiter holding a worker, these would never return

        def holder_calls():
            holder.append(SCardTransmit(card, proto, list(APDU))[0])
            holder.append(SCardEndTransaction(card, 0))
        t = threading.Thread(target=holder_calls, daemon=True)
        t.start()
        t.join(20)
        assert holder == [SCARD_S_SUCCESS] * 2, 'the holder is served'
        for t in ts:
            t.join(20)
        assert not any(t.is_alive() for t in ts) and results == [SCARD_S_SUCCESS] * 6
        SCardReleaseContext(ctx)
    finally:
        d.close()


def test_busy_reader_holds_no_worker():
    """pcsc-lite clients (raw) send an APDU to one reader while its card hangs in another
    handle's TRANSMIT (SIM_FAULT_HANG, freed by the IOCTL watchdog), more of them than max_threads:
    their requests wait in the daemon without a worker each (parked on the reader), another
    reader's client is served meanwhile, and every waiter is answered once the reader is free.
    The waiters' TRANSMITs are parked as the loop thread reads them (no worker sees them), and
    each runs on the worker that frees the reader, one after the other."""
    # the simulator says when it hangs (drv:info); ipc:trace shows the parks and hand-overs
    d = env.Daemon(extra='max_threads = 2\nioctl_watchdog_ms = 8000\n',
                   log='ipc:trace,rm:info,drv:info')
    try:
        waiters = []
        for _ in range(8):
            r, ctx = session()
            card, _p, rv = r.connect(ctx)
            assert rv == 0
            waiters.append((r, card))
        hr, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
        hr, holder, hp = SCardConnect(ctx, R_T1, 2, 3)
        assert hr == SCARD_S_SUCCESS
        assert SCardControl(holder, env.SIM_FAULT, list(struct.pack('<II', 7, 1)))[0] == 0  # HANG
        result = {}
        hung = threading.Thread(target=lambda: result.update(
            rc=SCardTransmit(holder, hp, list(APDU))[0] & 0xFFFFFFFF))
        hung.start()
        env.wait_for(lambda: 'hanging (SIM_FAULT_HANG)' in d.log_text(), 10, 'the card to hang')
        for r, card in waiters:
            r.send(TRANSMIT, struct.pack('<iIIIIIII', card, 2, 16, len(APDU), 3, 16, 258, 0),
                   extra=APDU)
        other, octx = session()  # another reader's client is served during the hang
        ocard, _p, rv = other.connect(octx, reader=R_SPARE)
        assert rv == 0
        for _ in range(10):
            assert transmit(other, ocard)[0] == 0
        assert hung.is_alive(), 'the watchdog freed the reader before the check was done'
        hung.join(60)
        assert not hung.is_alive() and result['rc'] == 0x80100002  # SCARD_E_CANCELLED
        for r, card in waiters:
            r.s.settimeout(30)
            rep = r.recv(32)
            assert struct.unpack('<iIIIIIII', rep)[7] == 0
            assert len(r.recv(struct.unpack('<iIIIIIII', rep)[6])) == 2
        log = d.log_text()
        # parked by the loop thread as it read them, except one a worker took itself: of the two
        # workers (max_threads = 2) one runs the hung TRANSMIT, the other may still linger on the
        # last waiter's session after its CONNECT and parks that TRANSMIT when it finds the reader
        # busy
        assert log.count('TRANSMIT parked on arrival, its reader is busy') >= len(waiters) - 1, log
        assert log.count('its parked request runs next on this worker') == len(waiters), log
        for r, _ in waiters:
            r.close()
        other.close()
        SCardDisconnect(holder, 0)
        SCardReleaseContext(ctx)
    finally:
        d.close()


def test_answered_client_not_held_by_the_next_request():
    """pcsc-lite's front end: after its answer a client's session lingers on the worker that runs
    the reader's next request, which takes the client's next request itself. When that next
    request hangs (SIM_FAULT_HANG for two TRANSMITs, each cancelled by the IOCTL watchdog), the
    loop thread takes the session back after SRV_LINGER_US: the client's APDU to another reader
    is answered while the hung one still waits, not after it."""
    d = env.Daemon(extra='ioctl_watchdog_ms = 3000\n', log='ipc:trace,drv:info')
    try:
        a, actx = session()
        b, bctx = session()
        card_a, _p, rv = a.connect(actx)
        assert rv == 0
        card_b, _p, rv = b.connect(bctx)
        assert rv == 0
        spare_b, _p, rv = b.connect(bctx, reader=R_SPARE)
        assert rv == 0
        hr, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
        hr, holder, _hp = SCardConnect(ctx, R_T1, 2, 3)
        assert hr == SCARD_S_SUCCESS
        assert SCardControl(holder, env.SIM_FAULT, list(struct.pack('<II', 7, 2)))[0] == 0

        def send_transmit(r, card):
            r.send(TRANSMIT, struct.pack('<iIIIIIII', card, 2, 16, len(APDU), 3, 16, 258, 0),
                   extra=APDU)

        def hangs():
            return d.log_text().count('hanging (SIM_FAULT_HANG)')

        send_transmit(b, card_b)  # hangs until the watchdog cancels it
        env.wait_for(lambda: hangs() == 1, 10, 'a hang')
        send_transmit(a, card_a)  # parked behind it; runs next on the same worker, and hangs
        env.wait_for(lambda: 'TRANSMIT parked on arrival' in d.log_text(), 10, "a's park")
        b.s.settimeout(30)
        assert struct.unpack('<I', b.recv(32)[28:32])[0] == 0x80100002  # SCARD_E_CANCELLED
        env.wait_for(lambda: hangs() == 2, 10, "a's request to hang")
        rv, data = transmit(b, spare_b)  # another reader: answered during a's hang
        assert rv == 0 and len(data) == 2  # a status word
        assert not select.select([a.s], [], [], 0)[0], "b was answered only after a's hang"
        assert 'the loop thread reads it again' in d.log_text()
        a.s.settimeout(30)
        assert struct.unpack('<I', a.recv(32)[28:32])[0] == 0x80100002
        a.close()
        b.close()
        SCardDisconnect(holder, 0)
        SCardReleaseContext(ctx)
    finally:
        d.close()

NEW_PCSCLITE_ROOT = '/var/cache/scrm'  # scripts/install-deps.sh check

# Run by a newer pcsc-lite library in a process of its own: every call that has a message of its
# own, the reader-events counter (PnP entry, 4:5+) and a wait woken by a change.
NEW_CLIENT = r'''
import sys, threading
from smartcard.scard import *
reader = sys.argv[1]
def ok(hr, what):
    if hr != SCARD_S_SUCCESS:
        sys.exit(f'{what}: {SCardGetErrorMessage(hr)} ({hr & 0xFFFFFFFF:#x})')
hr, ctx = SCardEstablishContext(SCARD_SCOPE_USER); ok(hr, 'establish')
hr, readers = SCardListReaders(ctx, []); ok(hr, 'list')
assert reader in readers, readers
hr, card, proto = SCardConnect(ctx, reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1)
ok(hr, 'connect')
hr, resp = SCardTransmit(card, proto, [0, 0xA4, 4, 0, 0]); ok(hr, 'transmit')
assert len(resp) == 2, resp
hr, name, state, p, atr = SCardStatus(card); ok(hr, 'status')
assert name == reader and state & 0x04 and atr, (name, state, atr)  # SCARD_PRESENT
ok(SCardBeginTransaction(card), 'begin')
ok(SCardEndTransaction(card, SCARD_LEAVE_CARD), 'end')
hr, attr = SCardGetAttrib(card, SCARD_ATTR_ATR_STRING); ok(hr, 'get attrib')
assert attr == atr
hr, states = SCardGetStatusChange(ctx, 0, [(reader, SCARD_STATE_UNAWARE)]); ok(hr, 'status change')
assert states[0][1] & SCARD_STATE_PRESENT, states
pnp = '\\\\?PnP?\\Notification'
hr, states = SCardGetStatusChange(ctx, 0, [(pnp, SCARD_STATE_UNAWARE)])
assert hr in (SCARD_S_SUCCESS, SCARD_E_TIMEOUT), hex(hr)
hr, states = SCardGetStatusChange(ctx, 0, [(reader, SCARD_STATE_UNAWARE)]); ok(hr, 'state')
cur = states[0][1] & ~SCARD_STATE_CHANGED
assert cur & SCARD_STATE_INUSE, hex(cur)
res = {}
def wait():  # woken by the disconnect below (no longer INUSE), before or after it starts
    hr2, ctx2 = SCardEstablishContext(SCARD_SCOPE_USER)
    res['r'] = SCardGetStatusChange(ctx2, INFINITE, [(reader, cur)])
    SCardReleaseContext(ctx2)
t = threading.Thread(target=wait, daemon=True); t.start()
ok(SCardDisconnect(card, SCARD_LEAVE_CARD), 'disconnect')
t.join(20)
assert not t.is_alive() and res['r'][0] == SCARD_S_SUCCESS, res
assert not res['r'][1][0][1] & SCARD_STATE_INUSE, res
ok(SCardCancel(ctx), 'cancel without a wait')
ok(SCardReleaseContext(ctx), 'release')
print('done')
'''


@pytest.mark.parametrize('suite,least,protocol', [('trixie', (2, 3), '4:5'),
                                                   ('sid', (2, 5), '4:6')])
def test_newer_pcsclite_client_library(daemon, suite, least, protocol):
    """pcsc-lite 2.3's (Debian 13 trixie) and 2.5's (sid) libpcsclite.so.1, protocols 4:5 and
    4:6, against scrmd's pcsc-lite listener: scripts/install-deps.sh check unpacks them into
    /var/cache/scrm/libpcsclite-SUITE (sid's with its libc6, whose loader runs Python here since
    the library needs a newer glibc than Debian 12's)."""
    root = os.path.join(NEW_PCSCLITE_ROOT, f'libpcsclite-{suite}')
    libs = glob.glob(os.path.join(root, 'usr', 'lib', '*', 'libpcsclite_real.so.1'))
    if not libs or not os.path.exists(os.path.join(root, 'VERSION')):
        pytest.skip(f'no pcsc-lite {least[0]}.{least[1]}+ client library in {root}: '
                    f'scripts/install-deps.sh check fetches it from Debian {suite}\'s archive '
                    '(needs root and network)')
    with open(os.path.join(root, 'VERSION'), encoding='ascii') as f:
        version = f.read().strip()
    assert tuple(int(x) for x in version.split('-')[0].split('.')[:2]) >= least, version
    libdir = os.path.dirname(libs[0])
    e = dict(os.environ, PCSCLITE_CSOCK_NAME=env.PCSCLITE_SOCK)
    e.pop('LD_PRELOAD', None)
    loader = os.path.join(libdir, 'ld-linux-x86-64.so.2')
    if os.path.exists(loader):  # the suite's own libc6 (sid)
        cmd = [loader, '--library-path', libdir, sys.executable]
    else:
        cmd = [sys.executable]
        e['LD_LIBRARY_PATH'] = libdir
    out = subprocess.run(cmd + ['-c', NEW_CLIENT, R_T1], env=e, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == 'done', \
        f'pcsc-lite {version} (protocol {protocol}): {out.stderr}'
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


@pytest.mark.parametrize('names', ['scrm:pcsclite', 'pcsclite:scrm', ''])
def test_socket_activation_with_two_sockets(names):
    """As systemd passes scrmd.socket and scrmd-pcscd.socket: fds 3 and 4, told apart by
    LISTEN_FDNAMES (FileDescriptorName=), or without names by the path (".../pcscd.comm")."""
    tmp = tempfile.mkdtemp(prefix='scrm-activation-')
    paths = {'scrm': os.path.join(tmp, 'scrm.sock'), 'pcsclite': os.path.join(tmp, 'pcscd.comm')}
    order = names.split(':') if names else ['pcsclite', 'scrm']
    socks = []
    for kind in order:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(paths[kind])
        s.listen(8)
        socks.append(s)
    conf = os.path.join(tmp, 'scrmd.conf')
    with open(conf, 'w', encoding='utf-8') as f:
        f.write('discover = false\nreader = sim:0:card=t1\n')
    # above 4, so that moving them to 3 and 4 in the child cannot overwrite one with the other
    # (bash: dash takes single-digit descriptors only)
    fds = [fcntl.fcntl(s.fileno(), fcntl.F_DUPFD, 10) for s in socks]
    prefix = (f'exec 3<&{fds[0]} 4<&{fds[1]}; LISTEN_PID=$$; LISTEN_FDS=2; '
              f'LISTEN_FDNAMES={names}; export LISTEN_PID LISTEN_FDS LISTEN_FDNAMES; ')
    if not names:
        prefix = prefix.replace('LISTEN_FDNAMES=; ', '').replace(' LISTEN_FDNAMES;', ';')
    e = dict(os.environ)
    e.pop('LD_PRELOAD', None)
    log = open(os.path.join(tmp, 'log'), 'wb')
    e['SCRM_LOG'] = 'ipc:info'
    proc = subprocess.Popen(['bash', '-c', prefix + f'exec {env.DAEMON} -f --config {conf}'],
                            pass_fds=fds, stdout=log, stderr=subprocess.STDOUT, env=e)
    try:
        r = Raw(path=paths['pcsclite'])
        assert r.version() == (4, 4, 0)
        ctx = r.establish()
        _card, proto, rv = r.connect(ctx, reader='SimVendor SimReader 0')
        assert rv == 0 and proto == 2
        r.close()
        # the other socket speaks scrm's protocol: a pcsc-lite VERSION there is refused
        bad = Raw(path=paths['scrm'])
        bad.send(VERSION, struct.pack('<iiI', 4, 4, 0))
        assert bad.closed()
        bad.close()
    finally:
        proc.terminate()
        rc = proc.wait(timeout=20)
        log.close()
        text = open(os.path.join(tmp, 'log'), encoding='utf-8', errors='replace').read()
        for s in socks:
            s.close()
        for fd in fds:
            os.close(fd)
        shutil.rmtree(tmp, ignore_errors=True)
    assert rc == 0, text
    assert 'serving pcsc-lite\'s protocol on an inherited socket' in text, text


ETC = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'etc')


def unit_value(unit, key):
    with open(os.path.join(ETC, unit), encoding='utf-8') as f:
        for line in f:
            if line.startswith(key + '='):
                return line.split('=', 1)[1].strip()
    raise AssertionError(f'{key} not in {unit}')


def test_systemd_socket_activate_with_the_units():
    """The shipped units run without systemd as PID 1: systemd-socket-activate listens on both
    sockets with the units' FileDescriptorName= values and starts the service's ExecStart= (with
    the build's scrmd and a test configuration) on the first connection."""
    tool = shutil.which('systemd-socket-activate')
    if not tool:
        pytest.skip('systemd-socket-activate (package systemd) not installed')
    names = [unit_value('scrmd.socket', 'FileDescriptorName'),
             unit_value('scrmd-pcscd.socket', 'FileDescriptorName')]
    assert unit_value('scrmd.socket', 'ListenStream') == '/run/scrm/scrm.sock'
    assert unit_value('scrmd-pcscd.socket', 'ListenStream') == '/run/pcscd/pcscd.comm'
    exec_start = unit_value('scrmd.service', 'ExecStart').split()
    assert exec_start[0] == '@sbindir@/scrmd', exec_start
    tmp = tempfile.mkdtemp(prefix='scrm-activate-')
    scrm_sock, pcl_sock = os.path.join(tmp, 'scrm.sock'), os.path.join(tmp, 'pcscd.comm')
    conf = os.path.join(tmp, 'scrmd.conf')
    with open(conf, 'w', encoding='utf-8') as f:
        f.write('discover = false\nreader = sim:0:card=t1\n')
    e = dict(os.environ, SCRM_LOG='ipc:info')
    e.pop('LD_PRELOAD', None)
    log = open(os.path.join(tmp, 'log'), 'wb')
    # the tool passes its children only the variables named with -E
    proc = subprocess.Popen([tool, '-l', scrm_sock, '-l', pcl_sock, '--fdname=' + ':'.join(names),
                             '-E', 'SCRM_LOG=ipc:info', env.DAEMON] + exec_start[1:] + ['--config', conf],
                            stdout=log, stderr=subprocess.STDOUT, env=e)
    try:
        env.wait_for(lambda: os.path.exists(pcl_sock) and os.path.exists(scrm_sock), 10,
                     'systemd-socket-activate to listen')
        r = Raw(path=pcl_sock)  # starts scrmd
        assert r.version() == (4, 4, 0)
        ctx = r.establish()
        _card, proto, rv = r.connect(ctx, reader='SimVendor SimReader 0')
        assert rv == 0 and proto == 2
        r.close()
        s = env.wire_connect(scrm_sock)  # scrm's protocol on the other one
        s.sendall(env.wire_msg(env.HELLO, struct.pack('<IHHII', 0x4D524353, 1, 1, 1 << 20, 0)))
        cmd, _seq, status, _body = env.wire_recv(s)
        assert cmd == env.HELLO and status == 0
        s.close()
    finally:
        proc.terminate()
        rc = proc.wait(timeout=20)
        log.close()
        text = open(os.path.join(tmp, 'log'), encoding='utf-8', errors='replace').read()
        shutil.rmtree(tmp, ignore_errors=True)
    assert rc == 0, text
    assert 'serving pcsc-lite\'s protocol on an inherited socket' in text, text
    assert 'serving scrm\'s protocol on an inherited socket' in text, text


# ---- Replay of pcsc-lite 1.9.9's conversations ---------------------------------------------------
#
# The client side of conversations between Debian 12's libpcsclite.so.1 and pcscd 1.9.9, message
# for message, in the order the library sends them, with what pcscd answered; scrmd's answers must
# be the same bytes. Where the bytes depend on the reader rather than on the daemon (reader names,
# the card's ATR and answers, the driver's own attribute and control answers) they are those of
# the simulated readers here: reader 0 with a T=1 card, reader 1 empty, as pcscd's two vpcd
# readers were. Handles are random: {C} / {H} capture the daemon's value at its first appearance
# and must be the same bytes wherever they appear later. Expected differences, each documented in
# docs/pcsc.md, are marked DIFF.

R0, R1 = 'SimVendor SimReader 0', 'SimVendor SimReader 1'
ATR0 = bytes.fromhex('3b878131fe455343524d2d5431cb')


class Cap:
    """A 4-byte handle: captured from the daemon the first time, compared afterwards."""

    def __init__(self, name):
        self.name = name


C, H = Cap('C'), Cap('H')


def u32(*v):
    return b''.join(struct.pack('<I', x & 0xFFFFFFFF) for x in v)


def req(cmd, *body):
    """A request: header + body segments (bytes, or a list holding a Cap of 4 bytes)."""
    segs = []
    for b in body:
        segs.extend(b if isinstance(b, list) else [b])
    size = sum(4 if isinstance(x, Cap) else len(x) for x in segs)
    return [u32(size, cmd)] + segs


def name128(n):
    return n.encode().ljust(128, b'\0')


def array(entries):
    """READER_STATE[16]: entries are (name, counter, state, sharing, atr, protocol)."""
    out = b''
    for i in range(16):
        if i < len(entries):
            n, counter, state, sharing, atr, proto = entries[i]
            out += name128(n) + struct.pack('<IIi', counter, state, sharing)
            out += atr.ljust(33, b'\0') + b'\0' * 3 + u32(len(atr), proto)
        else:
            out += b'\0' * 176 + u32(34, 0)
    return out


def idle(counter0=1, sharing0=0, proto0=0, present=True):
    first = (R0, counter0, 0x34, sharing0, ATR0, proto0) if present else \
        (R0, counter0, 0x02, sharing0, b'', 0)
    return array([first, (R1, 0, 0x02, 0, b'', 0)])


RP_VERSION = [('c', 1, req(0x11, u32(4, 4, 0))), ('s', 1, [u32(4, 4, 0)])]
RP_ESTABLISH = [('c', 1, req(0x01, u32(2, 0, 0))), ('s', 1, [u32(2), C, u32(0)])]
RP_RELEASE = [('c', 1, req(0x02, [C], u32(0))), ('s', 1, [C, u32(0)])]


def flat(x):
    """req() may hold a nested list with a Cap: flatten one level."""
    out = []
    for e in x:
        out.extend(e if isinstance(e, list) else [e])
    return out


SCENARIOS = {
    'establish_release': RP_VERSION + RP_ESTABLISH + RP_RELEASE,
    'list_readers': RP_VERSION + RP_ESTABLISH + [
        ('c', 1, req(0x12)), ('s', 1, [idle()]),
        ('c', 1, req(0x12)), ('s', 1, [idle()]),
    ] + RP_RELEASE,
    'connect_transmit_disconnect': RP_VERSION + RP_ESTABLISH + [
        ('c', 1, req(0x04, [C], name128(R0), u32(2, 3, 0, 0, 0))),
        ('s', 1, [C, name128(R0), u32(2, 3), H, u32(2, 0)]),
        ('c', 1, req(0x12)), ('s', 1, [idle(sharing0=1, proto0=2)]),
        ('c', 1, req(0x0B, [H], u32(0))), ('s', 1, [H, u32(0)]),
        ('c', 1, req(0x09, [H], u32(2, 16, 7, 3, 16, 258, 0)) + [bytes.fromhex('00a4000c023f00')]),
        # DIFF: ioRecvPciProtocol is the answer's protocol (2); pcscd passed vpcd's 1 through
        ('s', 1, [H, u32(2, 16, 7, 2, 16, 2, 0), bytes.fromhex('9000')]),
        ('c', 1, req(0x06, [H], u32(0, 0))), ('s', 1, [H, u32(0, 0)]),
    ] + RP_RELEASE,
    'transactions_and_control': RP_VERSION + RP_ESTABLISH + [
        ('c', 1, req(0x04, [C], name128(R0), u32(2, 3, 0, 0, 0))),
        ('s', 1, [C, name128(R0), u32(2, 3), H, u32(2, 0)]),
        ('c', 1, req(0x07, [H], u32(0))), ('s', 1, [H, u32(0)]),
        ('c', 1, req(0x08, [H], u32(0, 0))), ('s', 1, [H, u32(0, 0)]),
        # the simulated reader answers GET_FEATURE_REQUEST with no feature (vpcd: unsupported)
        ('c', 1, req(0x0A, [H], u32(0x42000D48, 0, 256, 0, 0))),
        ('s', 1, [H, u32(0x42000D48, 0, 256, 0, 0)]),
        # GET_ATTRIB ATR_STRING: the library sends rv 0x8010001D and a 264-byte zero buffer
        ('c', 1, req(0x0F, [H], u32(0x00090303), bytes(264), u32(264, 0x8010001D))),
        ('s', 1, [H, u32(0x00090303), ATR0.ljust(264, b'\0'), u32(len(ATR0), 0)]),
        ('c', 1, req(0x05, [H], u32(2, 3, 1, 2, 0))), ('s', 1, [H, u32(2, 3, 1, 2, 0)]),
        ('c', 1, req(0x06, [H], u32(0, 0))), ('s', 1, [H, u32(0, 0)]),
    ] + RP_RELEASE,
    'get_status_change': RP_VERSION + RP_ESTABLISH + [
        # UNAWARE, timeout 0
        ('c', 1, req(0x13)), ('s', 1, [idle(sharing0=1)]),
        ('c', 1, req(0x14)), ('s', 1, [u32(0, 0)]),
        # INFINITE: the removal is signalled, the array re-read, then STOP
        ('c', 1, req(0x13)), ('s', 1, [idle(sharing0=1)]),
        ('act', 'remove'), ('s', 1, [u32(0, 0)]),
        ('c', 1, req(0x13)), ('s', 1, [idle(counter0=2, sharing0=1, present=False)]),
        ('c', 1, req(0x14)), ('s', 1, [u32(0, 0)]),
        # insertion (the driving handle first forgets the removal, while nobody waits)
        ('act', 'rearm'),
        ('c', 1, req(0x13)), ('s', 1, [idle(counter0=2, sharing0=1, present=False)]),
        ('act', 'insert'), ('s', 1, [u32(0, 0)]),
        ('c', 1, req(0x13)), ('s', 1, [idle(counter0=3, sharing0=1)]),
        ('c', 1, req(0x14)), ('s', 1, [u32(0, 0)]),
        # a timeout: WAIT, STOP, WAIT, STOP
        ('c', 1, req(0x13)), ('s', 1, [idle(counter0=3, sharing0=1)]),
        ('c', 1, req(0x14)), ('s', 1, [u32(0, 0)]),
        ('c', 1, req(0x13)), ('s', 1, [idle(counter0=3, sharing0=1)]),
        ('c', 1, req(0x14)), ('s', 1, [u32(0, 0)]),
    ] + RP_RELEASE,
    'cancel': RP_VERSION + RP_ESTABLISH + [
        ('c', 1, req(0x13)), ('s', 1, [idle()]),
        ('c', 1, req(0x14)), ('s', 1, [u32(0, 0)]),
        ('c', 1, req(0x13)), ('s', 1, [idle()]),
        ('open', 2), ('c', 2, req(0x0D, [C], u32(0))), ('s', 2, [C, u32(0)]),
        ('s', 1, [u32(0, 0x80100002)]), ('close', 2),
    ] + RP_RELEASE,
    'errors': RP_VERSION + RP_ESTABLISH + [
        ('c', 1, req(0x04, [C], name128('No Such Reader 00 00'), u32(2, 3, 0, 0, 0))),
        ('s', 1, [C, name128('No Such Reader 00 00'), u32(2, 3, 0, 0, 0x80100009)]),
    ] + RP_RELEASE + [
        # DIFF: pcscd 1.9.9 answers its own 4:4, scrmd (like pcscd 2.5) its newest, 4:6
        ('open', 2), ('c', 2, req(0x11, u32(4, 3, 0))), ('s', 2, [u32(4, 6, 0x8010001E)]),
        ('c', 2, req(0x01, u32(2, 0, 0))), ('s', 2, [u32(2), Cap('C2'), u32(0)]),
        ('close', 2),
        ('open', 3), ('c', 3, req(0x01, u32(2, 0, 0))), ('s', 3, [u32(2), Cap('C3'), u32(0)]),
        ('close', 3),
        ('open', 4), ('c', 4, RP_VERSION[0][2]), ('s', 4, [u32(4, 4, 0)]),
        ('c', 4, req(0x01, u32(2, 0, 0))), ('s', 4, [u32(2), Cap('C4'), u32(0)]),
        ('c', 4, req(0x09, u32(0x12345678, 2, 16, 7, 0, 16, 258, 0)) +
         [bytes.fromhex('00a4000c023f00')]), ('eof', 4),
        ('open', 5), ('c', 5, RP_VERSION[0][2]), ('s', 5, [u32(4, 4, 0)]),
        ('c', 5, req(0x63)), ('eof', 5),
        ('open', 6), ('c', 6, RP_VERSION[0][2]), ('s', 6, [u32(4, 4, 0)]),
        ('c', 6, req(0x0C)), ('eof', 6),
        ('open', 7), ('c', 7, [u32(8, 0x11), u32(4, 4)]), ('eof', 7),
        ('open', 8), ('c', 8, RP_VERSION[0][2]), ('s', 8, [u32(4, 4, 0)]),
        ('c', 8, req(0x01, u32(2, 0, 0))), ('s', 8, [u32(2), Cap('C8'), u32(0)]),
        ('c', 8, req(0x14)),  # STOP without WAIT: no answer; the RP_RELEASE reply comes first
        ('c', 8, req(0x02, [Cap('C8')], u32(0))), ('s', 8, [Cap('C8'), u32(0)]),
    ],
}


def replay(steps, driver):
    conns = {1: Raw()}
    caps = {}
    for step in steps:
        kind = step[0]
        if kind == 'open':
            conns[step[1]] = Raw()
        elif kind == 'close':
            conns.pop(step[1]).close()
        elif kind == 'act':
            if step[1] == 'rearm':  # the handle saw the removal: clear its mark
                hr, _p = SCardReconnect(driver, 3, 0, 0)
                assert hr == SCARD_S_SUCCESS, hex(hr)
                continue
            code = env.SIM_REMOVE if step[1] == 'remove' else env.SIM_INSERT
            hr, _ = SCardControl(driver, code, list(b't1') if step[1] == 'insert' else [])
            assert hr == SCARD_S_SUCCESS, hex(hr)
        elif kind == 'c':
            data = b''
            for seg in flat(step[2]):
                data += caps[seg.name] if isinstance(seg, Cap) else seg
            conns[step[1]].s.sendall(data)
        elif kind == 's':
            r = conns[step[1]]
            for seg in step[2]:
                if isinstance(seg, Cap):
                    got = r.recv(4)
                    if seg.name in caps:
                        assert got == caps[seg.name], f'{seg.name} changed'
                    else:
                        v = struct.unpack('<I', got)[0]
                        assert 0 < v < 0x80000000, f'{seg.name} = {v:#x}'
                        caps[seg.name] = got
                else:
                    got = r.recv(len(seg))
                    assert got == seg, f'step {step}: got {got.hex()} want {seg.hex()}'
        elif kind == 'eof':
            assert conns.pop(step[1]).closed()
    for r in conns.values():
        r.nothing_pending(0.05)
        r.close()


@pytest.mark.parametrize('name', list(SCENARIOS))
def test_replay_pcsclite_1_9_9(name):
    with env.Daemon(readers=['sim:0:card=t1', 'sim:1']):
        driver = None
        if name == 'get_status_change':  # a DIRECT handle moves the card (sharing 1 throughout)
            hr, c = SCardEstablishContext(SCARD_SCOPE_USER)
            hr, driver, _p = SCardConnect(c, R0, 3, 0)
            assert hr == SCARD_S_SUCCESS
        replay(SCENARIOS[name], driver)
        if driver is not None:
            SCardReleaseContext(c)
