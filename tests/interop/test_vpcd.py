"""The vpcd reader driver with Debian's stock vicc as the card, through the PC/SC API (pyscard),
pcsc_scan and opensc-tool, against a scrmd with vpcd readers.

Each reader listens on 127.0.0.1 on a port the kernel picks (device string `vpcd:0` and
`vpcd:127.0.0.1:0`); its name "Virtual PCD <port>" tells the port vicc must connect to. Covered:
insertion (vicc connects) and APDUs, removal by stopping vicc while idle and while an APDU is in
flight, a stalled card (bounded wait, then removal), a new card in the same reader, two readers
with two cards at once, and a peer that sends garbage or connects a second time (clear log line,
only that card pays). Waits are SCardGetStatusChange calls with bounded timeouts. Run through
run_pytest.py, which makes libpcsclite.so.1 resolve to ours.
"""
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
from smartcard.scard import (
    SCARD_E_NO_SMARTCARD, SCARD_LEAVE_CARD, SCARD_PROTOCOL_T0, SCARD_PROTOCOL_T1, SCARD_S_SUCCESS,
    SCARD_SCOPE_USER, SCARD_SHARE_SHARED, SCARD_STATE_CHANGED, SCARD_STATE_EMPTY,
    SCARD_STATE_PRESENT, SCARD_STATE_UNAWARE, SCARD_W_REMOVED_CARD, SCardConnect, SCardDisconnect,
    SCardEstablishContext, SCardGetStatusChange, SCardListReaders, SCardReleaseContext,
    SCardTransmit)

import scrm_env as env
import vicc

pytestmark = pytest.mark.skipif(vicc.missing() is not None, reason=str(vicc.missing()))

# The reader with the short answer timeout is the one the stall test uses.
READERS = ['vpcd:0', 'vpcd:127.0.0.1:0:timeout=1500']
LOST = (SCARD_W_REMOVED_CARD, SCARD_E_NO_SMARTCARD)


@pytest.fixture(scope='module')
def daemon():
    d = env.Daemon(readers=READERS, log='ipc:info,rm:info,drv:info')
    yield d
    d.close()


@pytest.fixture
def ctx(daemon):
    daemon.ensure()
    hr, c = SCardEstablishContext(SCARD_SCOPE_USER)
    assert hr == SCARD_S_SUCCESS, hex(hr)
    yield c
    SCardReleaseContext(c)


def readers(c):
    """The two readers: [(name, port)] in configuration order (ports ascending is not given)."""
    hr, names = SCardListReaders(c, [])
    assert hr == SCARD_S_SUCCESS, hex(hr)
    out = [(n, int(re.fullmatch(r'Virtual PCD (\d+)', n).group(1))) for n in names]
    assert len(out) == 2, names
    return out


def reader(c, i=0):
    return readers(c)[i]


def follow(c, name, pred, timeout_s=15):
    """Wait with SCardGetStatusChange until pred(event state) holds; returns (state, ATR)."""
    hr, st = SCardGetStatusChange(c, 0, [(name, SCARD_STATE_UNAWARE)])
    assert hr == SCARD_S_SUCCESS, hex(hr)
    cur, atr = st[0][1] & ~SCARD_STATE_CHANGED, list(st[0][2])
    deadline = time.monotonic() + timeout_s
    while not pred(cur):
        left = int((deadline - time.monotonic()) * 1000)
        assert left > 0, f'{name}: state {cur:#x} never satisfied the wait'
        hr, st = SCardGetStatusChange(c, left, [(name, cur)])
        assert hr == SCARD_S_SUCCESS, hex(hr)
        cur, atr = st[0][1] & ~SCARD_STATE_CHANGED, list(st[0][2])
    return cur, atr


def present(c, name):
    state, atr = follow(c, name, lambda s: s & SCARD_STATE_PRESENT)
    assert atr == vicc.ATR, atr
    return state


def empty(c, name):
    return follow(c, name, lambda s: s & SCARD_STATE_EMPTY)


def connect(c, name):
    hr, card, proto = SCardConnect(c, name, SCARD_SHARE_SHARED,
                                   SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1)
    assert hr == SCARD_S_SUCCESS, hex(hr)
    assert proto == SCARD_PROTOCOL_T1  # vicc's ATR offers T=1 only
    return card


def select_mf(card):
    hr, resp = SCardTransmit(card, SCARD_PROTOCOL_T1, vicc.SELECT_MF)
    assert hr == SCARD_S_SUCCESS, hex(hr)
    assert resp == [0x90, 0x00], resp
    return resp


def test_insert_apdus_remove_idle(ctx):
    name, port = reader(ctx)
    empty(ctx, name)
    with vicc.Vicc(port) as card:
        present(ctx, name)
        h = connect(ctx, name)
        for _ in range(20):
            select_mf(h)
        # A command the card refuses: its status word comes back as it is.
        hr, resp = SCardTransmit(h, SCARD_PROTOCOL_T1, [0x00, 0xB0, 0x00, 0x00, 0x02])
        assert hr == SCARD_S_SUCCESS and len(resp) == 2 and resp != [0x90, 0x00], (hex(hr), resp)
        assert SCardDisconnect(h, SCARD_LEAVE_CARD) == SCARD_S_SUCCESS
        card.stop()  # idle: its connection ends, the reader reports the removal
        empty(ctx, name)


def test_new_card_after_removal(ctx):
    name, port = reader(ctx)
    for _ in range(3):
        with vicc.Vicc(port) as card:
            present(ctx, name)
            h = connect(ctx, name)
            select_mf(h)
            SCardDisconnect(h, SCARD_LEAVE_CARD)
            card.kill()
            empty(ctx, name)


def test_removal_during_apdu(ctx, daemon):
    """vicc stops with a command APDU in its socket: the transmit fails as a removal, never an
    empty success, and the reader is empty."""
    name, port = reader(ctx)
    with vicc.Vicc(port) as card:
        present(ctx, name)
        h = connect(ctx, name)
        select_mf(h)
        card.pause()
        result = {}
        t = threading.Thread(target=lambda: result.update(
            r=SCardTransmit(h, SCARD_PROTOCOL_T1, vicc.SELECT_MF)))
        t.start()
        try:
            assert vicc.socket_has_unread(port), 'the APDU never reached the card'
        finally:
            card.kill()
        t.join(30)
        assert not t.is_alive()
        hr, resp = result['r']
        assert hr in LOST, (hex(hr), resp)
        empty(ctx, name)
        SCardDisconnect(h, SCARD_LEAVE_CARD)
    # vicc died with our bytes unread: its kernel answers with a reset rather than an end of
    # stream, so either is the reason logged.
    assert re.search(r'(the card closed its connection while the response APDU was awaited|'
                     r'the response APDU: Connection reset by peer); card dropped',
                     daemon.log_text())


def test_stalled_card(ctx, daemon):
    """A card that stops answering (vicc stopped) is dropped after the reader's answer timeout
    (timeout=1500 on this reader): a removal, not a hung or empty transmit."""
    name, port = reader(ctx, 1)
    with vicc.Vicc(port) as card:
        present(ctx, name)
        h = connect(ctx, name)
        select_mf(h)
        card.pause()
        hr, resp = SCardTransmit(h, SCARD_PROTOCOL_T1, vicc.SELECT_MF)
        assert hr in LOST, (hex(hr), resp)
        empty(ctx, name)
        SCardDisconnect(h, SCARD_LEAVE_CARD)
    assert 'the card did not answer in time' in daemon.log_text()


def test_two_readers_two_cards(ctx):
    (n0, p0), (n1, p1) = readers(ctx)
    with vicc.Vicc(p0) as c0, vicc.Vicc(p1) as c1:
        present(ctx, n0)
        present(ctx, n1)
        errors = []

        def work(name):
            try:
                hr, c = SCardEstablishContext(SCARD_SCOPE_USER)
                assert hr == SCARD_S_SUCCESS
                h = connect(c, name)
                for _ in range(50):
                    select_mf(h)
                SCardDisconnect(h, SCARD_LEAVE_CARD)
                SCardReleaseContext(c)
            except AssertionError as e:  # reported by the main thread
                errors.append(f'{name}: {e}')

        threads = [threading.Thread(target=work, args=(n,)) for n in (n0, n1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        c0.stop()
        empty(ctx, n0)
        # The other card is still there and works.
        hr, st = SCardGetStatusChange(ctx, 0, [(n1, SCARD_STATE_UNAWARE)])
        assert hr == SCARD_S_SUCCESS and st[0][1] & SCARD_STATE_PRESENT
        h = connect(ctx, n1)
        select_mf(h)
        SCardDisconnect(h, SCARD_LEAVE_CARD)
        c1.stop()
        empty(ctx, n1)


def raw_peer(port):
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    return s


def wait_closed(s):
    """The reader closes our connection: end of stream or reset, within the socket timeout."""
    try:
        return s.recv(64) == b''
    except ConnectionResetError:
        return True


def test_garbage_and_second_connection(ctx, daemon):
    name, port = reader(ctx)
    # A peer that is not a card: the reader asks for the ATR, gets text, drops the peer.
    s = raw_peer(port)
    assert s.recv(64) == bytes([0, 1, 1, 0, 1, 4])  # power on + get ATR, in one message
    s.sendall(b'HTTP/1.1 400 Bad Request\r\n\r\n')
    assert wait_closed(s)
    s.close()
    empty(ctx, name)
    assert 'bad frame from the card (the ATR): frame longer than the answer may be' in \
        daemon.log_text()
    # A card is in; a second connection is refused and the card goes on working.
    with vicc.Vicc(port) as card:
        present(ctx, name)
        intruder = raw_peer(port)
        assert wait_closed(intruder)
        intruder.close()
        h = connect(ctx, name)
        select_mf(h)
        SCardDisconnect(h, SCARD_LEAVE_CARD)
        card.stop()
        empty(ctx, name)
    assert 'second card connection from 127.0.0.1:' in daemon.log_text()


def read_until(proc, patterns, timeout):
    """Collect proc's stdout until every regex in patterns matched; returns the text."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    text, end = '', time.monotonic() + timeout
    while time.monotonic() < end and not all(re.search(p, text) for p in patterns):
        for _key, _ev in sel.select(max(0.0, end - time.monotonic())):
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                return text
            text += chunk.decode(errors='replace')
    return text


def test_pcsc_scan(ctx):
    if not shutil.which('pcsc_scan'):
        pytest.skip('pcsc_scan not installed')
    name, port = reader(ctx)
    empty(ctx, name)
    p = subprocess.Popen(['pcsc_scan', '-n'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        pats = [rf'{re.escape(name)}\s+Event number: \d+\s+Card state: Card removed']
        text = read_until(p, pats, 15)
        assert re.search(pats[0], text), text
        with vicc.Vicc(port) as card:
            atr = ' '.join(f'{b:02X}' for b in vicc.ATR)
            pats = [rf'{re.escape(name)}\s+Event number: \d+\s+Card state: Card inserted[^\n]*\n'
                    rf'\s+ATR: {atr}']
            text = read_until(p, pats, 15)
            assert re.search(pats[0], text), text
            card.stop()
            pats = [rf'{re.escape(name)}\s+Event number: \d+\s+Card state: Card removed']
            text = read_until(p, pats, 15)
            assert re.search(pats[0], text), text
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_opensc_tool(ctx):
    if not shutil.which('opensc-tool'):
        pytest.skip('opensc-tool not installed')
    name, port = reader(ctx)
    with vicc.Vicc(port) as card:
        present(ctx, name)
        idx = [n for n, _ in readers(ctx)].index(name)
        out = subprocess.run(['opensc-tool', '-l'], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and name in out.stdout, out.stdout + out.stderr
        out = subprocess.run(['opensc-tool', '-r', str(idx), '-a'], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert ':'.join(f'{b:02x}' for b in vicc.ATR) in out.stdout, out.stdout
        out = subprocess.run(['opensc-tool', '-r', str(idx), '-s', '00:A4:00:0C:02:3F:00'],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert 'SW1=0x90, SW2=0x00' in out.stdout, out.stdout
        card.stop()
        empty(ctx, name)
