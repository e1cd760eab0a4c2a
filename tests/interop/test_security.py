"""Hostile and broken clients against scrmd: other clients' handles, garbage, truncated and
oversized messages, half-closed connections, protocol-order violations and clients that never
read. Each test keeps a well-behaved pyscard client exchanging APDUs in a thread and checks that it
saw no error, that the daemon logged the offender, and (at module end) that scrmd still stops
cleanly with no sanitizer report.
"""
import os
import socket
import select
import struct
import subprocess
import sys
import threading
import time

import pytest
from smartcard.scard import (SCARD_E_INVALID_HANDLE, SCARD_LEAVE_CARD, SCARD_PROTOCOL_T1,
                             SCARD_S_SUCCESS, SCARD_SCOPE_USER, SCARD_SHARE_SHARED,
                             SCardConnect, SCardDisconnect, SCardEstablishContext,
                             SCardReleaseContext, SCardTransmit)

import scrm_env as env
from scrm_env import R_T1

E_INVALID_HANDLE = 0x80100003


@pytest.fixture(scope='module')
def daemon():
    d = env.Daemon()
    yield d
    d.close()


class GoodClient:
    """Exchanges APDUs in a loop until stopped; records every failure."""

    def __init__(self):
        hr, self.ctx = SCardEstablishContext(SCARD_SCOPE_USER)
        assert hr == SCARD_S_SUCCESS
        hr, self.card, self.proto = SCardConnect(self.ctx, env.R_SPARE, SCARD_SHARE_SHARED, 3)
        assert hr == SCARD_S_SUCCESS
        self.errors, self.count, self.stop = [], 0, False
        self.t = threading.Thread(target=self.run)
        self.t.start()

    def run(self):
        while not self.stop:
            hr, resp = SCardTransmit(self.card, self.proto, [0x80, 0xEC, 0, 0, 2, 1, 2])
            if hr != SCARD_S_SUCCESS or bytes(resp)[-2:] != b'\x90\x00':
                self.errors.append((hex(hr), bytes(resp).hex()))
            self.count += 1

    def finish(self):
        env.wait_for(lambda: self.count > 5, 10, 'good client progress')
        self.stop = True
        self.t.join(10)
        SCardDisconnect(self.card, SCARD_LEAVE_CARD)
        SCardReleaseContext(self.ctx)
        assert not self.errors, self.errors


@pytest.fixture
def good(daemon):
    daemon.ensure()
    g = GoodClient()
    yield g
    g.finish()


def log_has(daemon, text, timeout=5):
    env.wait_for(lambda: text in daemon.log_text(), timeout, f'log line "{text}"')


def closed_by_daemon(s, timeout=5):
    """True when the daemon has closed the connection (EOF or reset)."""
    s.settimeout(timeout)
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def hello(s):
    s.sendall(env.wire_hello())
    cmd, _seq, status, _body = env.wire_recv(s)
    assert cmd == env.HELLO and status == 0


def raw_connect_card(s, reader=R_T1, seq=2):
    name = reader.encode()
    s.sendall(env.wire_msg(env.CONNECT, struct.pack('<IIII', 2, 3, len(name), 0), name, seq=seq))
    cmd, rseq, status, body = env.wire_recv(s)
    assert (cmd, rseq, status) == (env.CONNECT, seq, 0)
    return struct.unpack('<QII', body)[0]


def raw_transmit(s, card, apdu, seq=3):
    s.sendall(env.wire_msg(env.TRANSMIT, struct.pack('<QIIII', card, 0, 258, len(apdu), 0), apdu,
                           seq=seq))
    return env.wire_recv(s)


def test_connect_name_with_nul(daemon, good):
    """A reader name with an embedded NUL names no reader (not the one before the NUL)."""
    s = env.wire_connect(daemon.sock)
    hello(s)
    for name in (R_T1.encode() + b'\0junk', R_T1.encode() + b'\0', b'\0' + R_T1.encode()):
        s.sendall(env.wire_msg(env.CONNECT, struct.pack('<IIII', 2, 3, len(name), 0), name,
                               seq=2))
        cmd, _seq, status, _body = env.wire_recv(s)
        assert (cmd, status) == (env.CONNECT, 0x80100009)  # SCARD_E_UNKNOWN_READER
    raw_connect_card(s, seq=3)  # the session goes on
    s.close()


def test_handle_of_other_connection(daemon, good):
    a = env.wire_connect(daemon.sock)
    b = env.wire_connect(daemon.sock)
    hello(a)
    hello(b)
    card = raw_connect_card(a)
    _cmd, _seq, status, _body = raw_transmit(a, card, bytes([0x80, 0xEC, 0, 0]))
    assert status == 0
    _cmd, _seq, status, _body = raw_transmit(b, card, bytes([0x80, 0xEC, 0, 0]))
    assert status == E_INVALID_HANDLE
    _cmd, _seq, status, _body = raw_transmit(b, card ^ 1, bytes([0x80, 0xEC, 0, 0]))
    assert status == E_INVALID_HANDLE
    a.close()
    b.close()


def test_handle_of_other_process(daemon):
    """A handle printed by another process is useless here."""
    code = ('from smartcard.scard import *\n'
            'hr, c = SCardEstablishContext(SCARD_SCOPE_USER)\n'
            f'hr, card, p = SCardConnect(c, "{R_T1}", SCARD_SHARE_SHARED, 3)\n'
            'print(card, flush=True)\n'
            'import sys; sys.stdin.readline()\n')
    p = subprocess.Popen([sys.executable, '-c', code], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        card = int(p.stdout.readline())
        hr, c = SCardEstablishContext(SCARD_SCOPE_USER)
        hr, _resp = SCardTransmit(card, SCARD_PROTOCOL_T1, [0x80, 0xEC, 0, 0])
        assert hr == SCARD_E_INVALID_HANDLE
        SCardReleaseContext(c)
    finally:
        p.stdin.close()
        p.wait(10)


def test_garbage(daemon, good):
    s = env.wire_connect(daemon.sock)
    s.sendall(os.urandom(4096))
    assert closed_by_daemon(s)
    s.close()
    log_has(daemon, 'disconnecting')


def test_huge_length(daemon, good):
    s = env.wire_connect(daemon.sock)
    hello(s)
    s.sendall(struct.pack('<IHHII', 0xFFFFFFF0, env.TRANSMIT, 0, 2, 0))
    assert closed_by_daemon(s)
    s.close()
    log_has(daemon, 'larger than the protocol allows')


def test_oversized_for_command(daemon, good):
    s = env.wire_connect(daemon.sock)
    hello(s)
    s.sendall(env.wire_msg(env.LIST_READERS, bytes(8), b'x' * 100, seq=2))
    assert closed_by_daemon(s)
    s.close()
    log_has(daemon, 'request longer than its command allows')


def test_truncated_header_then_close(daemon, good):
    s = env.wire_connect(daemon.sock)
    s.sendall(env.wire_hello()[:7])
    s.close()
    log_has(daemon, 'truncated')


def test_truncated_body_then_half_close(daemon, good):
    s = env.wire_connect(daemon.sock)
    hello(s)
    msg = env.wire_msg(env.TRANSMIT, struct.pack('<QIIII', 1, 0, 258, 100, 0), bytes(100), seq=2)
    s.sendall(msg[:60])
    s.shutdown(socket.SHUT_WR)
    assert closed_by_daemon(s)
    s.close()


def test_half_closed_after_hello(daemon, good):
    s = env.wire_connect(daemon.sock)
    hello(s)
    s.shutdown(socket.SHUT_WR)
    assert closed_by_daemon(s)
    s.close()


def test_request_before_hello(daemon, good):
    s = env.wire_connect(daemon.sock)
    s.sendall(env.wire_msg(env.LIST_READERS, bytes(8)))
    assert closed_by_daemon(s)
    s.close()
    log_has(daemon, 'request before HELLO')


def test_request_during_wait(daemon, good):
    s = env.wire_connect(daemon.sock)
    hello(s)
    name = env.R_EMPTY.encode()
    # the current state first, then a wait on it
    entry = struct.pack('<IIH', 0, 0, len(name)) + name
    s.sendall(env.wire_msg(env.GSC, struct.pack('<IIII', 0, 1, 0, 0), entry, seq=2))
    _c, _q, status, body = env.wire_recv(s)
    assert status == 0
    flags, counter = struct.unpack('<II', body[8:16])
    entry = struct.pack('<IIH', flags, counter, len(name)) + name
    s.sendall(env.wire_msg(env.GSC, struct.pack('<IIII', 1, 1, 0, 0), entry, seq=3))
    s.sendall(env.wire_msg(env.STOP_WAIT, bytes(8), seq=4))
    cmd, seq, status, _body = env.wire_recv(s)
    assert (cmd, seq, status) == (env.GSC, 3, 0x80100002)  # the wait answers CANCELLED
    s.sendall(env.wire_msg(env.STOP_WAIT, bytes(8), seq=5))  # nothing waits: ignored
    s.sendall(env.wire_msg(env.GSC, struct.pack('<IIII', 1, 1, 0, 0), entry, seq=6))
    s.sendall(env.wire_msg(env.LIST_READERS, bytes(8), seq=7))  # not allowed while waiting
    assert closed_by_daemon(s)
    s.close()
    log_has(daemon, 'while a status-change wait is pending')


def test_client_that_never_reads(daemon, good):
    s = env.wire_connect(daemon.sock)
    hello(s)
    s.setblocking(False)
    burst = b''.join(env.wire_msg(env.LIST_READERS, bytes(8), seq=i) for i in range(2, 20000))
    sent = 0
    end = time.monotonic() + 5
    stalled = False
    while sent < len(burst) and time.monotonic() < end:
        try:
            sent += s.send(burst[sent:])
        except BlockingIOError:
            # The daemon stopped reading us (back-pressure): wait for the socket to drain, bounded.
            _r, w, _x = select.select([], [s], [], 0.5)
            stalled = stalled or not w
            if stalled:
                break
    assert stalled or sent == len(burst)
    s.close()


def test_many_idle_connections(daemon, good):
    socks = [env.wire_connect(daemon.sock) for _ in range(200)]
    for s in socks[:100]:
        s.sendall(env.wire_hello())
    for s in socks[:100]:  # every one is served; the good client keeps working meanwhile
        cmd, _seq, status, _body = env.wire_recv(s)
        assert cmd == env.HELLO and status == 0
    for s in socks:
        s.close()


def test_bad_hello_magic(daemon, good):
    s = env.wire_connect(daemon.sock)
    s.sendall(env.wire_msg(env.HELLO, struct.pack('<IHHII', 0x12345678, 1, 0, 1 << 20, 0)))
    assert closed_by_daemon(s)
    s.close()
    log_has(daemon, 'bad HELLO magic')


def test_other_major_version(daemon):
    s = env.wire_connect(daemon.sock)
    s.sendall(env.wire_msg(env.HELLO, struct.pack('<IHHII', 0x4D524353, 99, 0, 1 << 20, 0)))
    cmd, _seq, status, body = env.wire_recv(s)
    assert cmd == env.HELLO and status == 0x8010001E  # SCARD_E_SERVICE_STOPPED
    assert struct.unpack('<IHH', body[:8])[1] == 1
    s.close()


def test_fuzzed_sessions(daemon, good):
    """Valid HELLO followed by mutated copies of valid requests."""
    import random
    rnd = random.Random(1234)
    name = R_T1.encode()
    seeds = [env.wire_msg(env.LIST_READERS, bytes(8), seq=2),
             env.wire_msg(env.CONNECT, struct.pack('<IIII', 2, 3, len(name), 0), name, seq=2),
             env.wire_msg(env.TRANSMIT, struct.pack('<QIIII', 7, 0, 258, 4, 0), b'\x80\xEC\0\0',
                          seq=2),
             env.wire_msg(env.GSC, struct.pack('<IIII', 0, 1, 0, 0),
                          struct.pack('<IIH', 0, 0, len(name)) + name, seq=2)]
    for i in range(150):
        msg = bytearray(rnd.choice(seeds))
        for _ in range(rnd.randint(1, 4)):
            msg[rnd.randrange(len(msg))] = rnd.randrange(256)
        s = env.wire_connect(daemon.sock)
        try:
            hello(s)
            s.sendall(bytes(msg))
            s.settimeout(0.5)
            try:
                s.recv(65536)
            except (socket.timeout, ConnectionError):
                pass
        finally:
            s.close()
    assert daemon.alive()


def test_quotas():
    """max_clients and max_cards_per_client from scrmd.conf (default: no limit)."""
    saved = os.environ.get('SCRM_SOCKET')
    d = env.Daemon(extra='max_clients = 2\nmax_cards_per_client = 1\n')
    try:
        # the start-up readiness probes (one per socket, perhaps retried) are gone: no client now
        env.wait_for(lambda: d.log_text().count(': disconnected') >= d.probes, 5,
                     'the readiness probes to leave')
        a, b = env.wire_connect(d.sock), env.wire_connect(d.sock)
        hello(a)
        hello(b)
        c = env.wire_connect(d.sock)  # the third is refused: closed without an answer
        assert closed_by_daemon(c)
        c.close()
        log_has(d, 'max_clients reached')
        raw_connect_card(a, env.R_T1, seq=2)
        name = env.R_SPARE.encode()
        a.sendall(env.wire_msg(env.CONNECT, struct.pack('<IIII', 2, 3, len(name), 0), name, seq=3))
        _cmd, _seq, status, _body = env.wire_recv(a)
        assert status == 0x80100006  # SCARD_E_NO_MEMORY: one card handle per client
        for s in (a, b):
            s.close()
    finally:
        d.close()
        if saved is not None:
            os.environ['SCRM_SOCKET'] = saved


def test_unauthenticated_and_slow_clients():
    """Before HELLO nothing larger than a HELLO is read; HELLO and every begun message must
    arrive within io_timeout_ms; a client idle between messages is never cut."""
    saved = os.environ.get('SCRM_SOCKET')
    d = env.Daemon(extra='io_timeout_ms = 300\n')
    try:
        idle = env.wire_connect(d.sock)
        hello(idle)
        big = env.wire_connect(d.sock)  # announces a 565 000-byte request (its command allows it) before its HELLO
        big.sendall(struct.pack("<IHHII", 565000, env.GSC, 0, 1, 0))
        assert closed_by_daemon(big)
        big.close()
        log_has(d, 'larger than allowed at this stage')
        silent = env.wire_connect(d.sock)  # never says HELLO
        assert closed_by_daemon(silent, timeout=10)
        silent.close()
        log_has(d, 'no HELLO in time')
        slow = env.wire_connect(d.sock)  # begins a message and stops
        hello(slow)
        slow.sendall(env.wire_msg(env.LIST_READERS, bytes(8))[:10])
        assert closed_by_daemon(slow, timeout=10)
        slow.close()
        log_has(d, 'message not completed in time')
        # The idle client outlived two timeouts and is still served.
        idle.sendall(env.wire_msg(env.LIST_READERS, bytes(8), seq=2))
        cmd, seq, status, _body = env.wire_recv(idle)
        assert (cmd, seq, status) == (env.LIST_READERS, 2, 0)
        idle.close()
    finally:
        d.close()
        if saved is not None:
            os.environ['SCRM_SOCKET'] = saved


def test_malformed_status_change_entries(daemon, good):
    """Entries that do not match their count are refused by the loop thread's request check
    (the wait itself runs on a worker, which never closes a session)."""
    s = env.wire_connect(daemon.sock)
    hello(s)
    entry = struct.pack('<IIH', 0, 0, 5) + b'Nope!'
    s.sendall(env.wire_msg(env.GSC, struct.pack('<IIII', 1, 2, 0, 0), entry, seq=2))
    assert closed_by_daemon(s)
    s.close()
    log_has(daemon, 'malformed status-change entries')
