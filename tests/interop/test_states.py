"""The state words PC/SC applications see, exactly as Debian's pcscd (pcsc-lite 1.9.9) reports them,
and the connect/monitor race.

The expected words were measured with pcscd, libifdvpcd and `vicc -t iso7816` in the same
situations (docs/pcsc.md, "State words"): SCardStatus gives PRESENT|POWERED|NEGOTIABLE (0x34) for
a usable card whether idle, connected or switched off by the power-down timer, PRESENT (0x4) after
SCARD_UNPOWER_CARD, PRESENT|SWALLOWED (0x0C) for a mute card, ABSENT (0x2) on an empty reader; in
SCardGetStatusChange INUSE needs a card, EXCLUSIVE shows even on an empty reader, UNPOWERED is never
set, a mute card is PRESENT|MUTE with no ATR, an unavailable reader is UNAVAILABLE alone. The
counter is in the upper 16 bits of both words.
"""
import pytest
from smartcard.scard import (
    SCARD_E_NO_SMARTCARD, SCARD_E_READER_UNAVAILABLE,
    SCARD_E_SHARING_VIOLATION, SCARD_LEAVE_CARD, SCARD_PROTOCOL_T0, SCARD_PROTOCOL_T1,
    SCARD_S_SUCCESS, SCARD_SCOPE_USER, SCARD_SHARE_DIRECT, SCARD_SHARE_EXCLUSIVE,
    SCARD_SHARE_SHARED, SCARD_STATE_CHANGED, SCARD_STATE_EMPTY, SCARD_STATE_EXCLUSIVE,
    SCARD_STATE_INUSE, SCARD_STATE_MUTE, SCARD_STATE_PRESENT, SCARD_STATE_UNAVAILABLE,
    SCARD_STATE_UNAWARE, SCARD_UNPOWER_CARD, SCARD_W_REMOVED_CARD, SCARD_W_UNRESPONSIVE_CARD,
    SCardConnect, SCardControl, SCardDisconnect, SCardEstablishContext,
    SCardGetStatusChange, SCardReconnect, SCardReleaseContext, SCardStatus, SCardTransmit)

import scrm_env as env

ANY = SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1
R = 'SimVendor SimReader 0'
ATR_T1 = bytes.fromhex('3B 87 81 31 FE 45 53 43 52 4D 2D 54 31 CB')
# pcsc-lite's SCardStatus state bits
ABSENT, PRESENT, SWALLOWED, POWERED, NEGOTIABLE = 0x2, 0x4, 0x8, 0x10, 0x20
USABLE = PRESENT | POWERED | NEGOTIABLE  # 0x34
POWER_DOWN_LINE = 'IOCTL_SMARTCARD_POWER SCARD_POWER_DOWN -> STATUS_SUCCESS'


@pytest.fixture(scope='module')
def daemon():
    d = env.Daemon(readers=['sim:0'], extra='power_down_ms = 100\ntrace_ioctl = true\n')
    yield d
    d.close()


def connect(c, share=SCARD_SHARE_SHARED, protocols=ANY, want=SCARD_S_SUCCESS):
    hr, card, proto = SCardConnect(c, R, share, protocols if share != SCARD_SHARE_DIRECT else 0)
    assert hr == want, f'{hr:#x}'
    return card, proto


def control(card, code, data=b''):
    hr, _resp = SCardControl(card, code, list(data))
    return hr


def sim(c, code, data=b''):
    card, _ = connect(c, SCARD_SHARE_DIRECT)
    hr = control(card, code, data)
    SCardDisconnect(card, SCARD_LEAVE_CARD)
    return hr


def fault(c, kind, param=0):
    return sim(c, env.SIM_FAULT, kind.to_bytes(4, 'little') + param.to_bytes(4, 'little'))


def gsc(c):
    """(event state, ATR) of the reader, from SCardGetStatusChange with UNAWARE."""
    hr, st = SCardGetStatusChange(c, 0, [(R, SCARD_STATE_UNAWARE)])
    assert hr == SCARD_S_SUCCESS, f'{hr:#x}'
    return st[0][1], bytes(st[0][2])


def insert(c, profile=b't1'):
    """Insert a card and wait until the reader shows it (events are asynchronous)."""
    assert sim(c, env.SIM_INSERT, profile) == SCARD_S_SUCCESS
    wait_gsc(c, lambda e: e & SCARD_STATE_PRESENT, 'the insertion')


def remove(c):
    assert sim(c, env.SIM_REMOVE) == SCARD_S_SUCCESS
    wait_gsc(c, lambda e: e & SCARD_STATE_EMPTY, 'the removal')


def wait_gsc(c, pred, what):
    """Block in SCardGetStatusChange until pred(event state) holds (bounded)."""
    cur, _ = gsc(c)
    for _ in range(20):
        if pred(cur):
            return cur
        hr, st = SCardGetStatusChange(c, 5000, [(R, cur & ~SCARD_STATE_CHANGED)])
        assert hr == SCARD_S_SUCCESS, f'waiting for {what}: {hr:#x}'
        cur = st[0][1]
    raise AssertionError(f'no {what}')


def status(card):
    """(result, state word, protocol, ATR) of SCardStatus."""
    hr, _reader, state, proto, atr = SCardStatus(card)
    return hr, state, proto, bytes(atr)


def direct_status(c):
    card, _ = connect(c, SCARD_SHARE_DIRECT)
    try:
        return status(card)
    finally:
        SCardDisconnect(card, SCARD_LEAVE_CARD)


def power_downs(daemon):
    return daemon.log_text().count(POWER_DOWN_LINE)


def test_state_words(daemon, ctx):
    """Every situation of the pcscd comparison, in one run (counter c counts the events)."""
    hr, other = SCardEstablishContext(SCARD_SCOPE_USER)
    assert hr == SCARD_S_SUCCESS
    # empty reader: EMPTY; a DIRECT handle does not make it INUSE; SCardStatus ABSENT
    ev, atr = gsc(ctx)
    c = ev >> 16
    assert ev & 0xFFFF == SCARD_STATE_EMPTY | SCARD_STATE_CHANGED and atr == b''
    connect(ctx, want=SCARD_E_NO_SMARTCARD)
    d, _ = connect(ctx, SCARD_SHARE_DIRECT)
    assert status(d) == (SCARD_S_SUCCESS, c << 16 | ABSENT, 0, b'')
    assert gsc(ctx)[0] == c << 16 | SCARD_STATE_EMPTY | SCARD_STATE_CHANGED
    SCardDisconnect(d, SCARD_LEAVE_CARD)
    # inserted, idle (powered at insertion, then switched off by the timer): PRESENT, 0x34
    downs = power_downs(daemon)
    insert(ctx)
    c += 1
    assert gsc(ctx) == (c << 16 | SCARD_STATE_PRESENT | SCARD_STATE_CHANGED, ATR_T1)
    env.wait_for(lambda: power_downs(daemon) > downs, what='the power-down timer')
    assert gsc(ctx) == (c << 16 | SCARD_STATE_PRESENT | SCARD_STATE_CHANGED, ATR_T1)
    assert direct_status(ctx) == (SCARD_S_SUCCESS, c << 16 | USABLE, 0, ATR_T1)
    # shared: 0x34 with the protocol; INUSE; an EXCLUSIVE connect is refused
    h, proto = connect(ctx)
    assert proto == SCARD_PROTOCOL_T1
    assert status(h) == (SCARD_S_SUCCESS, c << 16 | USABLE, SCARD_PROTOCOL_T1, ATR_T1)
    assert gsc(other)[0] == c << 16 | SCARD_STATE_PRESENT | SCARD_STATE_INUSE | SCARD_STATE_CHANGED
    connect(other, SCARD_SHARE_EXCLUSIVE, want=SCARD_E_SHARING_VIOLATION)
    SCardDisconnect(h, SCARD_LEAVE_CARD)
    # exclusive: EXCLUSIVE (not INUSE); nobody else connects, not even DIRECT
    h, _ = connect(ctx, SCARD_SHARE_EXCLUSIVE)
    assert status(h) == (SCARD_S_SUCCESS, c << 16 | USABLE, SCARD_PROTOCOL_T1, ATR_T1)
    assert gsc(other)[0] == c << 16 | SCARD_STATE_PRESENT | SCARD_STATE_EXCLUSIVE | \
        SCARD_STATE_CHANGED
    connect(other, want=SCARD_E_SHARING_VIOLATION)
    connect(other, SCARD_SHARE_DIRECT, want=SCARD_E_SHARING_VIOLATION)
    # the card pulled under the exclusive handle: EMPTY | EXCLUSIVE, as pcscd shows it
    assert control(h, env.SIM_REMOVE) == SCARD_S_SUCCESS
    c += 1
    ev = wait_gsc(other, lambda e: e & SCARD_STATE_EMPTY, 'the removal')
    assert ev == c << 16 | SCARD_STATE_EMPTY | SCARD_STATE_EXCLUSIVE | SCARD_STATE_CHANGED
    assert status(h)[0] == SCARD_W_REMOVED_CARD
    SCardDisconnect(h, SCARD_LEAVE_CARD)
    assert gsc(other)[0] == c << 16 | SCARD_STATE_EMPTY | SCARD_STATE_CHANGED
    # UNPOWER: SCardStatus PRESENT alone (the ATR stays), no UNPOWERED in the event state
    insert(ctx)
    c += 1
    h, _ = connect(ctx)
    assert SCardDisconnect(h, SCARD_UNPOWER_CARD) == SCARD_S_SUCCESS
    assert direct_status(ctx) == (SCARD_S_SUCCESS, c << 16 | PRESENT, 0, ATR_T1)
    assert gsc(ctx) == (c << 16 | SCARD_STATE_PRESENT | SCARD_STATE_CHANGED, ATR_T1)
    h, _ = connect(ctx)
    assert status(h) == (SCARD_S_SUCCESS, c << 16 | USABLE, SCARD_PROTOCOL_T1, ATR_T1)
    # removed under a shared handle: EMPTY (no INUSE without a card); the handle's calls
    remove(ctx)
    c += 1
    assert gsc(other)[0] == c << 16 | SCARD_STATE_EMPTY | SCARD_STATE_CHANGED
    assert status(h)[0] == SCARD_W_REMOVED_CARD
    assert SCardTransmit(h, SCARD_PROTOCOL_T1, [0x00, 0xA4, 0x00, 0x0C])[0] == SCARD_W_REMOVED_CARD
    assert SCardReconnect(h, SCARD_SHARE_SHARED, ANY, SCARD_LEAVE_CARD)[0] == SCARD_E_NO_SMARTCARD
    assert SCardDisconnect(h, SCARD_LEAVE_CARD) == SCARD_S_SUCCESS
    assert direct_status(ctx) == (SCARD_S_SUCCESS, c << 16 | ABSENT, 0, b'')
    # a mute card: PRESENT | MUTE without an ATR; SCardStatus PRESENT | SWALLOWED; connect refused
    assert fault(ctx, 1, 1) == SCARD_S_SUCCESS  # SIM_FAULT_MUTE
    insert(ctx)
    c += 1
    assert gsc(ctx) == (c << 16 | SCARD_STATE_PRESENT | SCARD_STATE_MUTE | SCARD_STATE_CHANGED,
                        b'')
    connect(ctx, want=SCARD_W_UNRESPONSIVE_CARD)
    assert direct_status(ctx) == (SCARD_S_SUCCESS, c << 16 | PRESENT | SWALLOWED, 0, b'')
    assert fault(ctx, 0) == SCARD_S_SUCCESS
    remove(ctx)
    c += 1
    # a reader that stops answering: UNAVAILABLE alone; a card connect gets READER_UNAVAILABLE
    # (scrm's choice, docs/pcsc.md), DIRECT still connects
    assert fault(ctx, 3) == SCARD_S_SUCCESS  # SIM_FAULT_READER_LOST
    ev = wait_gsc(ctx, lambda e: e & SCARD_STATE_UNAVAILABLE, 'the reader lost')
    assert ev & 0xFFFF == SCARD_STATE_UNAVAILABLE | SCARD_STATE_CHANGED
    connect(ctx, want=SCARD_E_READER_UNAVAILABLE)
    assert fault(ctx, 4) == SCARD_S_SUCCESS  # SIM_FAULT_READER_BACK
    wait_gsc(ctx, lambda e: e & SCARD_STATE_EMPTY, 'the reader back')
    SCardReleaseContext(other)


def test_insert_then_connect_race(ctx):
    """Insert and connect at once, hundreds of times: the handle always sees the new card's ATR,
    a usable state and the counter of that insertion (before the fix the monitor could lag)."""
    c = gsc(ctx)[0] >> 16
    for turn in range(300):
        assert sim(ctx, env.SIM_INSERT, b't1') == SCARD_S_SUCCESS
        c += 1
        h, _ = connect(ctx)
        got = status(h)
        assert got == (SCARD_S_SUCCESS, (c & 0xFFFF) << 16 | USABLE, SCARD_PROTOCOL_T1,
                       ATR_T1), f'turn {turn}: {got}'
        assert SCardDisconnect(h, SCARD_LEAVE_CARD) == SCARD_S_SUCCESS
        assert sim(ctx, env.SIM_REMOVE) == SCARD_S_SUCCESS
        c += 1


@pytest.mark.parametrize('profile,atr,proto', [
    ('bad-tck', '3B 8B 81 31 FE 45 53 43 52 4D 2D 42 41 44 54 43 4B E3', SCARD_PROTOCOL_T1),
    ('atr-extra', '3B 4A 02 53 43 52 4D 2D 45 58 54 52 41 90 00', SCARD_PROTOCOL_T0),
    ('short-hist', '3B 4B 02 53 43 52 4D 2D 53 48 4F 52 54', SCARD_PROTOCOL_T0),
])
def test_imperfect_atr(daemon, ctx, profile, atr, proto):
    """A card whose ATR breaks ISO 7816-3 (wrong TCK, bytes after the end, a historical byte
    missing) is present with its ATR as read and connects with default parameters: the first
    offered protocol (T=0 without TD1), no PPS; scrmd logs a warning."""
    atr = bytes.fromhex(atr)
    insert(ctx, profile.encode())
    ev, got = gsc(ctx)
    assert ev & SCARD_STATE_PRESENT and not ev & SCARD_STATE_MUTE and got == atr
    h, p = connect(ctx)
    assert p == proto
    assert status(h)[1:] == ((ev >> 16) << 16 | USABLE, proto, atr)
    hr, resp = SCardTransmit(h, proto, [0x80, 0xEC, 0x00, 0x00, 0x03, 1, 2, 3, 0x00])
    assert hr == SCARD_S_SUCCESS and bytes(resp) == bytes([1, 2, 3, 0x90, 0x00])
    SCardDisconnect(h, SCARD_LEAVE_CARD)
    remove(ctx)
    assert 'does not follow ISO 7816-3' in daemon.log_text()
