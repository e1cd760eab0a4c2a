"""pyscard (python3-pyscard) against scrmd through our libpcsclite.so.1.

One daemon per module with four simulated readers (scrm_env.DEFAULT_READERS); tests that insert,
remove or reset put the reader back as they found it. Run through run_pytest.py, which makes
libpcsclite.so.1 resolve to ours.
"""
import threading
import time

import pytest
from smartcard.scard import (
    SCARD_ATTR_ATR_STRING, SCARD_ATTR_DEVICE_FRIENDLY_NAME_A, SCARD_ATTR_VENDOR_NAME,
    SCARD_E_CANCELLED, SCARD_E_INVALID_HANDLE, SCARD_E_INVALID_VALUE, SCARD_E_NO_SMARTCARD,
    SCARD_E_NOT_TRANSACTED, SCARD_E_SHARING_VIOLATION, SCARD_E_TIMEOUT, SCARD_E_UNKNOWN_READER,
    SCARD_LEAVE_CARD, SCARD_PROTOCOL_T0, SCARD_PROTOCOL_T1, SCARD_PROTOCOL_UNDEFINED,
    SCARD_RESET_CARD, SCARD_S_SUCCESS, SCARD_SCOPE_USER, SCARD_SHARE_DIRECT,
    SCARD_SHARE_EXCLUSIVE, SCARD_SHARE_SHARED, SCARD_STATE_CHANGED, SCARD_STATE_EMPTY,
    SCARD_STATE_EXCLUSIVE, SCARD_STATE_INUSE, SCARD_STATE_PRESENT, SCARD_STATE_UNAWARE,
    SCARD_W_RESET_CARD, SCARD_W_REMOVED_CARD, SCardBeginTransaction, SCardCancel, SCardConnect,
    SCardControl, SCardDisconnect, SCardEndTransaction, SCardEstablishContext, SCardGetAttrib,
    SCardGetStatusChange, SCardIsValidContext, SCardListReaders, SCardReconnect,
    SCardReleaseContext, SCardStatus, SCardTransmit)

import scrm_env as env
from scrm_env import R_EMPTY, R_SPARE, R_T0, R_T1

SCARD_E_NO_READERS_AVAILABLE = 0x8010002E
SCARD_PROTOCOL_ANY = SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1


@pytest.fixture(scope='module')
def daemon():
    d = env.Daemon()
    yield d
    d.close()


def connect(c, reader, share=SCARD_SHARE_SHARED, protocols=SCARD_PROTOCOL_ANY):
    hr, card, proto = SCardConnect(c, reader, share, protocols)
    assert hr == SCARD_S_SUCCESS, hex(hr)
    return card, proto


def transmit(card, proto, apdu):
    hr, resp = SCardTransmit(card, proto, list(apdu))
    assert hr == SCARD_S_SUCCESS, hex(hr)
    resp = bytes(resp)
    if len(resp) == 2 and resp[0] == 0x61:  # T=0: fetch the rest with GET RESPONSE
        return transmit(card, proto, bytes([0x00, 0xC0, 0x00, 0x00, resp[1]]))
    return resp


def sim(c, reader, code, data=b''):
    """Drive the simulated reader through SCardControl on a DIRECT connection."""
    card, _ = connect(c, reader, SCARD_SHARE_DIRECT, 0)
    hr, _resp = SCardControl(card, code, list(data))
    SCardDisconnect(card, SCARD_LEAVE_CARD)
    return hr


def state_of(c, reader):
    hr, st = SCardGetStatusChange(c, 0, [(reader, SCARD_STATE_UNAWARE)])
    assert hr == SCARD_S_SUCCESS, hex(hr)
    return st[0][1]


def wait_state(c, reader, flag, timeout_ms=5000):
    """Block in SCardGetStatusChange until the reader's state has `flag` (bounded)."""
    cur = state_of(c, reader)
    while not cur & flag:
        hr, st = SCardGetStatusChange(c, timeout_ms, [(reader, cur & ~SCARD_STATE_CHANGED)])
        assert hr == SCARD_S_SUCCESS, f'waiting for {flag:#x} on {reader}: {hr:#x}'
        cur = st[0][1]


# ---- Context and reader list -------------------------------------------------------------------

def test_list_readers(ctx):
    hr, readers = SCardListReaders(ctx, [])
    assert hr == SCARD_S_SUCCESS
    assert readers == [env.R_T1, env.R_T0, env.R_EMPTY, env.R_SPARE]


def test_context_valid_and_released(daemon):
    hr, c = SCardEstablishContext(SCARD_SCOPE_USER)
    assert hr == SCARD_S_SUCCESS
    assert SCardIsValidContext(c) == SCARD_S_SUCCESS
    assert SCardReleaseContext(c) == SCARD_S_SUCCESS
    assert SCardIsValidContext(c) == SCARD_E_INVALID_HANDLE
    assert SCardReleaseContext(c) == SCARD_E_INVALID_HANDLE


def test_establish_bad_scope(daemon):
    hr, _c = SCardEstablishContext(77)
    assert hr == SCARD_E_INVALID_VALUE


def test_no_readers_available():
    with env.Daemon(readers=[]):
        hr, c = SCardEstablishContext(SCARD_SCOPE_USER)
        assert hr == SCARD_S_SUCCESS
        hr, _readers = SCardListReaders(c, [])
        assert hr == SCARD_E_NO_READERS_AVAILABLE
        SCardReleaseContext(c)


# ---- Connections -------------------------------------------------------------------------------

def test_connect_shared_twice(ctx):
    a, pa = connect(ctx, R_T1)
    b, pb = connect(ctx, R_T1)
    assert pa == pb == SCARD_PROTOCOL_T1
    assert state_of(ctx, R_T1) & SCARD_STATE_INUSE
    assert SCardDisconnect(a, SCARD_LEAVE_CARD) == SCARD_S_SUCCESS
    assert SCardDisconnect(b, SCARD_LEAVE_CARD) == SCARD_S_SUCCESS


def test_connect_exclusive(ctx):
    hr, c2 = SCardEstablishContext(SCARD_SCOPE_USER)
    a, _ = connect(ctx, R_T1, SCARD_SHARE_EXCLUSIVE)
    assert state_of(c2, R_T1) & SCARD_STATE_EXCLUSIVE
    hr, _card, _p = SCardConnect(c2, R_T1, SCARD_SHARE_SHARED, SCARD_PROTOCOL_ANY)
    assert hr == SCARD_E_SHARING_VIOLATION
    assert SCardDisconnect(a, SCARD_LEAVE_CARD) == SCARD_S_SUCCESS
    b, _ = connect(c2, R_T1, SCARD_SHARE_SHARED)
    hr, _card, _p = SCardConnect(ctx, R_T1, SCARD_SHARE_EXCLUSIVE, SCARD_PROTOCOL_ANY)
    assert hr == SCARD_E_SHARING_VIOLATION
    SCardDisconnect(b, SCARD_LEAVE_CARD)
    SCardReleaseContext(c2)


def test_connect_t0_protocol(ctx):
    card, proto = connect(ctx, R_T0)
    assert proto == SCARD_PROTOCOL_T0
    SCardDisconnect(card, SCARD_LEAVE_CARD)


def test_connect_unknown_reader(ctx):
    hr, _card, _p = SCardConnect(ctx, 'No Such Reader 9', SCARD_SHARE_SHARED, SCARD_PROTOCOL_ANY)
    assert hr == SCARD_E_UNKNOWN_READER


def test_connect_no_card(ctx):
    hr, _card, _p = SCardConnect(ctx, R_EMPTY, SCARD_SHARE_SHARED, SCARD_PROTOCOL_ANY)
    assert hr == SCARD_E_NO_SMARTCARD


def test_connect_direct_without_card(ctx):
    hr, card, proto = SCardConnect(ctx, R_EMPTY, SCARD_SHARE_DIRECT, 0)
    assert hr == SCARD_S_SUCCESS
    assert proto == SCARD_PROTOCOL_UNDEFINED
    assert SCardDisconnect(card, SCARD_LEAVE_CARD) == SCARD_S_SUCCESS


def test_invalid_card_handle(ctx):
    hr, _resp = SCardTransmit(123456789, SCARD_PROTOCOL_T1, [0x00, 0xA4, 0x04, 0x00])
    assert hr == SCARD_E_INVALID_HANDLE
    assert SCardDisconnect(987654321, SCARD_LEAVE_CARD) == SCARD_E_INVALID_HANDLE


def test_handle_dead_after_disconnect(ctx):
    card, proto = connect(ctx, R_T1)
    assert SCardDisconnect(card, SCARD_LEAVE_CARD) == SCARD_S_SUCCESS
    hr, _resp = SCardTransmit(card, proto, [0x80, 0xEC, 0x00, 0x00])
    assert hr == SCARD_E_INVALID_HANDLE


# ---- APDUs ---------------------------------------------------------------------------------------

ECHO = bytes([0x80, 0xEC, 0x00, 0x00])
CASES = {
    'case1': (ECHO, b'\x90\x00'),
    'case2': (bytes([0x80, 0xEE, 0x00, 0x00, 0x08]), bytes(range(8)) + b'\x90\x00'),
    # VERIFY with the card's PIN: data in, no data out. (An ECHO without Le is no case 3 test
    # over T=0, where the card cannot tell case 3 from case 4 and rightly answers 61xx.)
    'case3': (bytes([0x00, 0x20, 0x00, 0x80, 0x08]) + b'1234' + b'\xFF' * 4, b'\x90\x00'),
    'case4': (ECHO + b'\x03\xAA\xBB\xCC\x00', b'\xAA\xBB\xCC\x90\x00'),
}


@pytest.mark.parametrize('reader', [R_T0, R_T1], ids=['T0', 'T1'])
@pytest.mark.parametrize('case', sorted(CASES))
def test_apdu_cases(ctx, reader, case):
    apdu, want = CASES[case]
    card, proto = connect(ctx, reader)
    assert transmit(card, proto, apdu) == want
    SCardDisconnect(card, SCARD_LEAVE_CARD)


def test_apdu_select_and_status_word(ctx):
    card, proto = connect(ctx, R_T1)
    resp = transmit(card, proto, bytes([0x00, 0xA4, 0x04, 0x00, 0x07]) + b'\xF0SCRM\x00\x01')
    assert resp[-2:] == b'\x90\x00'
    resp = transmit(card, proto, bytes([0x00, 0xA4, 0x04, 0x00, 0x02, 0x12, 0x34]))
    assert resp == b'\x6A\x82'  # file not found
    SCardDisconnect(card, SCARD_LEAVE_CARD)


def test_extended_length_echo(ctx):
    card, proto = connect(ctx, R_T1)
    data = bytes(i & 0xFF for i in range(1000))
    apdu = ECHO + b'\x00' + len(data).to_bytes(2, 'big') + data + b'\x00\x00'
    assert transmit(card, proto, apdu) == data + b'\x90\x00'
    SCardDisconnect(card, SCARD_LEAVE_CARD)


# ---- Status --------------------------------------------------------------------------------------

def test_status(ctx):
    card, proto = connect(ctx, R_T1)
    hr, name, state, sproto, atr = SCardStatus(card)
    assert hr == SCARD_S_SUCCESS
    assert name == R_T1
    assert sproto == proto == SCARD_PROTOCOL_T1
    assert state & 0x0004  # SCARD_PRESENT
    assert atr[0] == 0x3B and len(atr) > 2
    SCardDisconnect(card, SCARD_LEAVE_CARD)


# ---- Attributes ----------------------------------------------------------------------------------

def test_get_attrib(ctx):
    card, _ = connect(ctx, R_T1)
    hr, vendor = SCardGetAttrib(card, SCARD_ATTR_VENDOR_NAME)
    assert hr == SCARD_S_SUCCESS
    assert bytes(vendor).rstrip(b'\x00') == b'SimVendor'
    hr, atr = SCardGetAttrib(card, SCARD_ATTR_ATR_STRING)
    assert hr == SCARD_S_SUCCESS
    hr2, _n, _s, _p, satr = SCardStatus(card)
    assert hr2 == SCARD_S_SUCCESS and list(atr) == list(satr)
    hr, name = SCardGetAttrib(card, SCARD_ATTR_DEVICE_FRIENDLY_NAME_A)
    assert hr == SCARD_S_SUCCESS
    assert bytes(name).rstrip(b'\x00') == R_T1.encode()
    SCardDisconnect(card, SCARD_LEAVE_CARD)


def test_get_attrib_unsupported(ctx):
    card, _ = connect(ctx, R_T1)
    hr, _v = SCardGetAttrib(card, 0x7FFF00FF)
    assert hr != SCARD_S_SUCCESS
    SCardDisconnect(card, SCARD_LEAVE_CARD)


# ---- Card events ---------------------------------------------------------------------------------

def wait_in_thread(c, states, timeout):
    out = {}

    def run():
        out['hr'], out['st'] = SCardGetStatusChange(c, timeout, states)

    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_gsc_unaware_reports_state_and_counter(ctx):
    hr, st = SCardGetStatusChange(ctx, 0, [(R_T1, SCARD_STATE_UNAWARE),
                                           (R_EMPTY, SCARD_STATE_UNAWARE)])
    assert hr == SCARD_S_SUCCESS
    (_n1, s1, atr1), (_n2, s2, atr2) = st
    assert s1 & SCARD_STATE_PRESENT and s1 & SCARD_STATE_CHANGED
    assert s2 & SCARD_STATE_EMPTY
    assert len(atr1) > 2 and len(atr2) == 0
    assert (s1 >> 16) >= 1  # the insertion at start-up counted


def test_gsc_timeout(ctx):
    cur = state_of(ctx, R_EMPTY) & ~SCARD_STATE_CHANGED
    t0 = time.monotonic()
    hr, _st = SCardGetStatusChange(ctx, 300, [(R_EMPTY, cur)])
    assert hr == SCARD_E_TIMEOUT
    assert 0.25 <= time.monotonic() - t0 < 5


def test_gsc_unknown_reader(ctx):
    hr, _st = SCardGetStatusChange(ctx, 0, [('Nope 42', SCARD_STATE_UNAWARE)])
    assert hr == SCARD_E_UNKNOWN_READER


def follow(c, reader, cur, pred, timeout_ms=10000):
    """Call SCardGetStatusChange as an application does, feeding each event state back, until
    pred(event state) holds; returns that state. Every return must carry CHANGED."""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        left = int((deadline - time.monotonic()) * 1000)
        assert left > 0, 'event not seen in time'
        hr, st = SCardGetStatusChange(c, left, [(reader, cur)])
        assert hr == SCARD_S_SUCCESS, hex(hr)
        ev = st[0][1]
        assert ev & SCARD_STATE_CHANGED
        if pred(ev):
            return ev
        cur = ev & ~SCARD_STATE_CHANGED


def test_gsc_insertion_and_removal(ctx):
    hr, c2 = SCardEstablishContext(SCARD_SCOPE_USER)
    cur = state_of(ctx, R_EMPTY) & ~SCARD_STATE_CHANGED
    assert cur & SCARD_STATE_EMPTY
    out = {}
    t = threading.Thread(target=lambda: out.setdefault(
        'ev', follow(ctx, R_EMPTY, cur, lambda e: e & SCARD_STATE_PRESENT)))
    t.start()
    assert sim(c2, R_EMPTY, env.SIM_INSERT, b't1') == SCARD_S_SUCCESS
    t.join(10)
    assert not t.is_alive() and 'ev' in out
    ev = out['ev']
    assert (ev >> 16) == ((cur >> 16) + 1) & 0xFFFF  # one card event
    # removal
    cur = ev & ~SCARD_STATE_CHANGED
    out = {}
    t = threading.Thread(target=lambda: out.setdefault(
        'ev', follow(ctx, R_EMPTY, cur, lambda e: e & SCARD_STATE_EMPTY)))
    t.start()
    assert sim(c2, R_EMPTY, env.SIM_REMOVE) == SCARD_S_SUCCESS
    t.join(10)
    assert not t.is_alive() and 'ev' in out
    assert (out['ev'] >> 16) == ((cur >> 16) + 1) & 0xFFFF
    SCardReleaseContext(c2)


def test_gsc_woken_only_by_its_reader(ctx):
    """A change on another reader does not end the wait; its own reader does."""
    hr, c2 = SCardEstablishContext(SCARD_SCOPE_USER)
    cur = state_of(ctx, R_EMPTY) & ~SCARD_STATE_CHANGED
    t, out = wait_in_thread(ctx, [(R_EMPTY, cur)], 10000)
    a, _ = connect(c2, R_T1, SCARD_SHARE_EXCLUSIVE)  # changes R_T1's state only
    SCardDisconnect(a, SCARD_RESET_CARD)
    t.join(0.3)
    assert t.is_alive()
    assert sim(c2, R_EMPTY, env.SIM_INSERT) == SCARD_S_SUCCESS
    t.join(10)
    assert out['hr'] == SCARD_S_SUCCESS
    assert sim(c2, R_EMPTY, env.SIM_REMOVE) == SCARD_S_SUCCESS
    SCardReleaseContext(c2)


def test_gsc_cancel_from_other_thread(ctx):
    cur = state_of(ctx, R_EMPTY) & ~SCARD_STATE_CHANGED
    t, out = wait_in_thread(ctx, [(R_EMPTY, cur)], 0xFFFFFFFF)
    # SCardCancel is a no-op until the wait has reached the daemon: cancel until the waiting
    # thread returns (each join is a bounded wait on that event).
    end = time.monotonic() + 10
    while t.is_alive() and time.monotonic() < end:
        assert SCardCancel(ctx) == SCARD_S_SUCCESS
        t.join(0.05)
    assert not t.is_alive()
    assert out['hr'] == SCARD_E_CANCELLED


def test_cancel_without_wait_is_noop(ctx):
    assert SCardCancel(ctx) == SCARD_S_SUCCESS
    # and does not cancel the next wait
    cur = state_of(ctx, R_EMPTY) & ~SCARD_STATE_CHANGED
    hr, _st = SCardGetStatusChange(ctx, 100, [(R_EMPTY, cur)])
    assert hr == SCARD_E_TIMEOUT


def test_gsc_pnp_reader_list_unchanged(ctx):
    hr, st = SCardGetStatusChange(ctx, 200, [('\\\\?PnP?\\Notification', SCARD_STATE_UNAWARE)])
    assert hr == SCARD_E_TIMEOUT


# ---- Transactions --------------------------------------------------------------------------------

def test_transactions_across_contexts(ctx):
    hr, c2 = SCardEstablishContext(SCARD_SCOPE_USER)
    a, _ = connect(ctx, R_T1)
    b, pb = connect(c2, R_T1)
    assert SCardBeginTransaction(a) == SCARD_S_SUCCESS
    done = {}

    def other():
        done['begin'] = SCardBeginTransaction(b)
        done['at'] = time.monotonic()

    t = threading.Thread(target=other)
    t.start()
    t.join(0.3)
    assert t.is_alive(), 'second transaction must wait for the first'
    released = time.monotonic()
    assert SCardEndTransaction(a, SCARD_LEAVE_CARD) == SCARD_S_SUCCESS
    t.join(10)
    assert done['begin'] == SCARD_S_SUCCESS and done['at'] >= released
    assert transmit(b, pb, ECHO) == b'\x90\x00'
    assert SCardEndTransaction(b, SCARD_LEAVE_CARD) == SCARD_S_SUCCESS
    assert SCardEndTransaction(b, SCARD_LEAVE_CARD) == SCARD_E_NOT_TRANSACTED
    SCardDisconnect(a, SCARD_LEAVE_CARD)
    SCardDisconnect(b, SCARD_LEAVE_CARD)
    SCardReleaseContext(c2)


def test_transaction_released_when_client_dies(daemon):
    """A context released while holding a transaction frees the reader for others."""
    hr, c1 = SCardEstablishContext(SCARD_SCOPE_USER)
    hr, c2 = SCardEstablishContext(SCARD_SCOPE_USER)
    a, _ = connect(c1, R_T1)
    b, _ = connect(c2, R_T1)
    assert SCardBeginTransaction(a) == SCARD_S_SUCCESS
    res = {}
    t = threading.Thread(target=lambda: res.setdefault('rc', SCardBeginTransaction(b)))
    t.start()
    t.join(0.2)
    assert t.is_alive()
    SCardReleaseContext(c1)  # its card handle is reset and closed, its transaction ended
    t.join(10)
    assert not t.is_alive()
    if res['rc'] == SCARD_W_RESET_CARD:  # the reset of the dead client's handle is reported
        hr, _p = SCardReconnect(b, SCARD_SHARE_SHARED, SCARD_PROTOCOL_ANY, SCARD_LEAVE_CARD)
        assert hr == SCARD_S_SUCCESS
        res['rc'] = SCardBeginTransaction(b)
    assert res['rc'] == SCARD_S_SUCCESS
    SCardEndTransaction(b, SCARD_LEAVE_CARD)
    SCardDisconnect(b, SCARD_LEAVE_CARD)
    SCardReleaseContext(c2)


# ---- Reset and removal warnings ------------------------------------------------------------------

def test_reconnect_with_reset(ctx):
    a, pa = connect(ctx, R_SPARE)
    b, pb = connect(ctx, R_SPARE)
    hr, proto = SCardReconnect(a, SCARD_SHARE_SHARED, SCARD_PROTOCOL_ANY, SCARD_RESET_CARD)
    assert hr == SCARD_S_SUCCESS and proto == SCARD_PROTOCOL_T1
    hr, _resp = SCardTransmit(b, pb, list(ECHO))
    assert hr == SCARD_W_RESET_CARD
    hr = SCardStatus(b)[0]
    assert hr == SCARD_W_RESET_CARD
    hr, _p = SCardReconnect(b, SCARD_SHARE_SHARED, SCARD_PROTOCOL_ANY, SCARD_LEAVE_CARD)
    assert hr == SCARD_S_SUCCESS
    assert transmit(b, pb, ECHO) == b'\x90\x00'
    assert transmit(a, pa, ECHO) == b'\x90\x00'
    SCardDisconnect(a, SCARD_LEAVE_CARD)
    SCardDisconnect(b, SCARD_LEAVE_CARD)


def test_removed_card_warning(ctx):
    hr, c2 = SCardEstablishContext(SCARD_SCOPE_USER)
    a, pa = connect(ctx, R_SPARE)
    assert sim(c2, R_SPARE, env.SIM_REMOVE) == SCARD_S_SUCCESS
    wait_state(c2, R_SPARE, SCARD_STATE_EMPTY)
    hr, _resp = SCardTransmit(a, pa, list(ECHO))
    assert hr == SCARD_W_REMOVED_CARD, hex(hr)
    assert SCardDisconnect(a, SCARD_LEAVE_CARD) == SCARD_S_SUCCESS
    assert sim(c2, R_SPARE, env.SIM_INSERT, b't1') == SCARD_S_SUCCESS
    wait_state(c2, R_SPARE, SCARD_STATE_PRESENT)
    SCardReleaseContext(c2)


def test_control_unsupported_code(ctx):
    card, _ = connect(ctx, R_T1)
    hr, _resp = SCardControl(card, 0x42000000 + 1, [])
    assert hr != SCARD_S_SUCCESS
    SCardDisconnect(card, SCARD_LEAVE_CARD)


def test_control_feature_request(ctx):
    card, _ = connect(ctx, R_EMPTY, SCARD_SHARE_DIRECT, 0)
    hr, resp = SCardControl(card, 0x42000000 + 3400, [])
    assert hr == SCARD_S_SUCCESS
    assert len(resp) % 6 == 0  # a list of TLV (tag, 4, control code)
    SCardDisconnect(card, SCARD_LEAVE_CARD)
