"""The contactless reader (nfc driver) through the PC/SC API: pyscard and pcsc_scan against a scrmd
with two NFC readers, through our libpcsclite.so.1.

Tags are moved into and out of the simulated RF field the way any PC/SC program can do it: with
SCardControl on a DIRECT connection and the driver's vendor IOCTL codes (include/smc/nfc.h,
NFC_IOCTL_BASE 2304), written the pcsc-lite way SCARD_CTL_CODE(n) = 0x42000000 + n (docs/pcsc.md,
"Control codes"). Each test leaves the field of nfc:0 empty. Waits are SCardGetStatusChange calls
with bounded timeouts; pcsc_scan's output is read until the expected lines appear, then it is
stopped. Run through run_pytest.py, which makes libpcsclite.so.1 resolve to ours.
"""
import os
import re
import selectors
import shutil
import signal
import subprocess
import threading
import time
from functools import reduce

import pytest
from smartcard.scard import (
    SCARD_ATTR_ATR_STRING, SCARD_ATTR_CHARACTERISTICS, SCARD_E_PROTO_MISMATCH,
    SCARD_E_READER_UNAVAILABLE, SCARD_LEAVE_CARD, SCARD_PROTOCOL_T0, SCARD_PROTOCOL_T1,
    SCARD_S_SUCCESS, SCARD_SCOPE_USER, SCARD_SHARE_DIRECT, SCARD_SHARE_SHARED, SCARD_STATE_CHANGED,
    SCARD_STATE_EMPTY, SCARD_STATE_PRESENT, SCARD_STATE_UNAVAILABLE, SCARD_STATE_UNAWARE,
    SCARD_UNPOWER_CARD, SCARD_W_REMOVED_CARD, SCardConnect, SCardControl, SCardDisconnect,
    SCardEstablishContext, SCardGetAttrib, SCardGetStatusChange, SCardListReaders,
    SCardReleaseContext, SCardStatus, SCardTransmit)

import scrm_env as env

R0 = 'SCRM IFD 0'  # nfc:0, empty field at start
R1 = 'SCRM IFD 1'  # nfc:1, an ISO 14443-4 B tag in the field from the start
READERS = ['nfc:0', 'nfc:1:unit=1,tag=iso4b']

SCARD_READER_CONTACTLESS = 0x8


def ctl(n):
    return 0x42000000 + 2304 + n


NFC_RADIO, NFC_TAG_ENTER, NFC_TAG_LEAVE, NFC_INFO = ctl(1), ctl(2), ctl(3), ctl(5)

KEY_FF = [0xFF] * 6
UID_CLASSIC = '01020304'
AID = [0xF0, 0x53, 0x43, 0x52, 0x4D, 0x4E, 0x46, 0x43]


def tck(body):
    """ATR with its check byte (XOR of T0 .. last historical byte)."""
    return body + [reduce(lambda a, b: a ^ b, body[1:], 0)]


def storage_atr(ss, nn):
    """The PC/SC part 3 ATR of a storage card (docs/nfc.md, "ATR synthesis")."""
    return tck([0x3B, 0x8F, 0x80, 0x01, 0x80, 0x4F, 0x0C, 0xA0, 0x00, 0x00, 0x03, 0x06, ss, 0x00,
                nn, 0x00, 0x00, 0x00, 0x00])


ATR_ISO4A = tck([0x3B, 0x88, 0x80, 0x01] + list(b'SCRM-NFC'))  # ATS historical bytes
ATR_ISO4B = tck([0x3B, 0x88, 0x80, 0x01, 0x53, 0x43, 0x52, 0x4D, 0x00, 0x81, 0x71, 0x00])
# Every tag profile and the ATR the reader synthesizes for it.
TAG_ATRS = {
    'iso4a': ATR_ISO4A,
    'iso4b': ATR_ISO4B,
    'classic1k': storage_atr(0x03, 0x01),
    'classic4k': storage_atr(0x03, 0x02),
    'mini': storage_atr(0x03, 0x26),
    'ultralight': storage_atr(0x03, 0x03),
    'ultralight-c': storage_atr(0x03, 0x3A),
    'ultralight-ev1': storage_atr(0x03, 0x3D),
    'felica': storage_atr(0x11, 0x3B),
    'icode-sli': storage_atr(0x0C, 0x14),
    'iso15693': storage_atr(0x0C, 0x00),
    'jewel': storage_atr(0x00, 0x2F),
    'topaz': storage_atr(0x00, 0x30),
    'jcop': tck([0x3B, 0x85, 0x80, 0x01] + [0x80] + list(b'JCOP')),  # ISO-DEP side first
}


def hexs(b):
    return ' '.join(f'{x:02X}' for x in b)


@pytest.fixture(scope='module')
def daemon():
    d = env.Daemon(readers=READERS, extra='power_down_ms = 400\ntrace_ioctl = yes\n')
    yield d
    d.close()


@pytest.fixture
def ctx(daemon):
    daemon.ensure()
    hr, c = SCardEstablishContext(SCARD_SCOPE_USER)
    assert hr == SCARD_S_SUCCESS
    yield c
    control(c, R0, NFC_TAG_LEAVE)  # leave the field empty (fails harmlessly when it is)
    control(c, R0, NFC_RADIO, b'\x01\x00\x00\x00')
    SCardReleaseContext(c)


def control(c, reader, code, data=b''):
    """SCardControl on a DIRECT connection, as `scrm nfc` does; returns (hr, output bytes)."""
    hr, card, _p = SCardConnect(c, reader, SCARD_SHARE_DIRECT, 0)
    assert hr == SCARD_S_SUCCESS, hex(hr)
    hr, out = SCardControl(card, code, list(data))
    SCardDisconnect(card, SCARD_LEAVE_CARD)
    return hr, bytes(out)


def enter(c, profile, reader=R0):
    hr, _out = control(c, reader, NFC_TAG_ENTER, profile.encode())
    assert hr == SCARD_S_SUCCESS, hex(hr)


def leave(c, reader=R0):
    hr, _out = control(c, reader, NFC_TAG_LEAVE)
    assert hr == SCARD_S_SUCCESS, hex(hr)


def state_of(c, reader):
    hr, st = SCardGetStatusChange(c, 0, [(reader, SCARD_STATE_UNAWARE)])
    assert hr == SCARD_S_SUCCESS, hex(hr)
    return st[0][1], bytes(st[0][2])


def follow(c, reader, pred, timeout_s=10):
    """Wait with SCardGetStatusChange, as an application does, until pred(event state) holds.
    Returns (event state, ATR)."""
    cur, atr = state_of(c, reader)
    cur &= ~SCARD_STATE_CHANGED
    deadline = time.monotonic() + timeout_s
    while not pred(cur):
        left = int((deadline - time.monotonic()) * 1000)
        assert left > 0, f'{reader}: state {cur:#x} never satisfied the wait'
        hr, st = SCardGetStatusChange(c, left, [(reader, cur)])
        assert hr == SCARD_S_SUCCESS, hex(hr)
        assert st[0][1] & SCARD_STATE_CHANGED
        cur, atr = st[0][1] & ~SCARD_STATE_CHANGED, bytes(st[0][2])
    return cur, atr


def connect(c, reader=R0, protocols=SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1):
    hr, card, proto = SCardConnect(c, reader, SCARD_SHARE_SHARED, protocols)
    assert hr == SCARD_S_SUCCESS, hex(hr)
    assert proto == SCARD_PROTOCOL_T1  # contactless cards are always "T=1"
    return card


def xfer(card, apdu):
    """Transmit; returns (data, sw) with sw as an int."""
    hr, resp = SCardTransmit(card, SCARD_PROTOCOL_T1, list(apdu))
    assert hr == SCARD_S_SUCCESS, hex(hr)
    assert len(resp) >= 2
    return bytes(resp[:-2]), resp[-2] << 8 | resp[-1]


# ---- the reader -------------------------------------------------------------------------------

def test_readers_listed_and_contactless(ctx):
    hr, readers = SCardListReaders(ctx, [])
    assert hr == SCARD_S_SUCCESS
    assert readers == [R0, R1]
    hr, card, _p = SCardConnect(ctx, R0, SCARD_SHARE_DIRECT, 0)
    assert hr == SCARD_S_SUCCESS
    hr, attr = SCardGetAttrib(card, SCARD_ATTR_CHARACTERISTICS)
    assert hr == SCARD_S_SUCCESS
    assert int.from_bytes(bytes(attr), 'little') == SCARD_READER_CONTACTLESS
    hr, info = SCardControl(card, NFC_INFO, [])
    assert hr == SCARD_S_SUCCESS
    # u32 radio on, u32 no tag in the field
    assert len(info) == 20 and bytes(info[:8]) == bytes([1, 0, 0, 0, 0, 0, 0, 0])
    SCardDisconnect(card, SCARD_LEAVE_CARD)


def test_tag_in_field_at_startup(ctx):
    st, atr = state_of(ctx, R1)
    assert st & SCARD_STATE_PRESENT
    assert list(atr) == ATR_ISO4B
    card = connect(ctx, R1)
    data, sw = xfer(card, [0x00, 0xA4, 0x04, 0x00, len(AID)] + AID)
    assert sw == 0x9000 and data == b''
    SCardDisconnect(card, SCARD_LEAVE_CARD)


# ---- arrival and departure ---------------------------------------------------------------------

def test_arrival_and_departure_seen_by_gsc(ctx):
    st, _atr = state_of(ctx, R0)
    assert st & SCARD_STATE_EMPTY
    counter = st >> 16
    hr, c2 = SCardEstablishContext(SCARD_SCOPE_USER)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault(
        'ev', follow(ctx, R0, lambda e: e & SCARD_STATE_PRESENT)))
    t.start()
    enter(c2, 'iso4a')
    t.join(10)
    assert not t.is_alive() and 'ev' in out
    ev, atr = out['ev']
    assert list(atr) == ATR_ISO4A
    assert ev >> 16 == (counter + 1) & 0xFFFF  # one card event
    out = {}
    t = threading.Thread(target=lambda: out.setdefault(
        'ev', follow(ctx, R0, lambda e: e & SCARD_STATE_EMPTY)))
    t.start()
    leave(c2)
    t.join(10)
    assert not t.is_alive() and 'ev' in out
    ev, atr = out['ev']
    assert ev >> 16 == (counter + 2) & 0xFFFF
    assert atr == b''
    SCardReleaseContext(c2)


def test_arrival_reads_atr_without_reset(ctx, daemon):
    """The resource manager reads a new tag's ATR as an attribute: an NFC reader reports SPECIFIC
    at once, so no POWER is sent at insertion (scrmd's IOCTL trace shows it)."""
    enter(ctx, 'ultralight')
    follow(ctx, R0, lambda e: e & SCARD_STATE_PRESENT)
    # (vendor IOCTLs, i.e. the SCardControl that moved the tag, are left out)
    # trace lines: "ioctl [time] READER [completed: ]IOCTL_... -> STATUS_...[ = result] (n µs)"
    lines = []
    for ln in daemon.log_text().splitlines():
        m = re.search(r'ioctl \[[\d:.]+\] (.*)$', ln)
        if not m or not m.group(1).startswith(R0 + ' '):
            continue
        ln = m.group(1)[len(R0) + 1:].replace('completed: ', '', 1)
        ln = re.sub(r' = \S+( \(\d+ µs\))$', r'\1', ln)
        if ln.startswith('IOCTL_') and 'IOCTL_SMARTCARD_VENDOR' not in ln:
            lines.append(ln)
    arrivals = [i for i, ln in enumerate(lines)
                if ln.startswith('IOCTL_SMARTCARD_IS_PRESENT -> STATUS_SUCCESS')]
    assert arrivals, '\n'.join(lines)
    seq = [re.sub(r' \(\d+ µs\)$', '', ln) for ln in lines[arrivals[-1]:arrivals[-1] + 3]]
    assert seq == ['IOCTL_SMARTCARD_IS_PRESENT -> STATUS_SUCCESS',
                   'IOCTL_SMARTCARD_GET_STATE -> STATUS_SUCCESS',
                   'IOCTL_SMARTCARD_GET_ATTRIBUTE SCARD_ATTR_ATR_STRING -> STATUS_SUCCESS'], lines


def activations(c):
    """The driver's count of RF activations so far (NFC_IOCTL_INFO)."""
    hr, info = control(c, R0, NFC_INFO)
    assert hr == SCARD_S_SUCCESS and len(info) == 20
    return int.from_bytes(info[8:12], 'little')


@env.only_client('scrm', "pcsc-lite's protocol has no SCARD_STATE_UNPOWERED (its library never reports it)")
def test_unpower_then_connect(ctx):
    """SCARD_UNPOWER_CARD switches the tag's "virtual" power off (SCardStatus: PRESENT alone, as
    pcscd reports an unpowered card; the ATR stays known); the next connect re-activates the tag
    over RF. SCardGetStatusChange never reports UNPOWERED (pcscd does not either)."""
    enter(ctx, 'iso4a')
    first = activations(ctx)
    card = connect(ctx)
    assert SCardDisconnect(card, SCARD_UNPOWER_CARD) == SCARD_S_SUCCESS
    st, atr = state_of(ctx, R0)
    assert st & 0xFFFF == SCARD_STATE_PRESENT | SCARD_STATE_CHANGED
    assert list(atr) == ATR_ISO4A
    hr, direct, _p = SCardConnect(ctx, R0, SCARD_SHARE_DIRECT, 0)
    assert hr == SCARD_S_SUCCESS
    hr, _reader, state, _proto, atr = SCardStatus(direct)
    assert hr == SCARD_S_SUCCESS and state & 0xFFFF == 0x0004  # SCARD_PRESENT
    assert list(atr) == ATR_ISO4A
    SCardDisconnect(direct, SCARD_LEAVE_CARD)
    card = connect(ctx)
    hr, _reader, state, _proto, atr = SCardStatus(card)
    assert state & 0xFFFF == 0x0034  # SCARD_PRESENT | SCARD_POWERED | SCARD_NEGOTIABLE
    assert activations(ctx) == first + 1
    _d, sw = xfer(card, [0x00, 0xA4, 0x04, 0x00, len(AID)] + AID)
    assert sw == 0x9000
    SCardDisconnect(card, SCARD_LEAVE_CARD)


def test_departure_under_connection(ctx):
    enter(ctx, 'iso4a')
    card = connect(ctx)
    leave(ctx)
    follow(ctx, R0, lambda e: e & SCARD_STATE_EMPTY)
    hr, _resp = SCardTransmit(card, SCARD_PROTOCOL_T1, [0xFF, 0xCA, 0x00, 0x00, 0x00])
    assert hr == SCARD_W_REMOVED_CARD
    SCardDisconnect(card, SCARD_LEAVE_CARD)


def test_radio_off_and_on(ctx):
    enter(ctx, 'classic1k')
    follow(ctx, R0, lambda e: e & SCARD_STATE_PRESENT)
    hr, _out = control(ctx, R0, NFC_RADIO, b'\x00\x00\x00\x00')
    assert hr == SCARD_S_SUCCESS
    st, _atr = follow(ctx, R0, lambda e: not e & SCARD_STATE_PRESENT)
    assert st & 0xFFFF == SCARD_STATE_UNAVAILABLE  # not empty, not unknown: the radio is off
    hr, _card, _p = SCardConnect(ctx, R0, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T1)
    assert hr == SCARD_E_READER_UNAVAILABLE
    hr, _out = control(ctx, R0, NFC_RADIO, b'\x01\x00\x00\x00')
    assert hr == SCARD_S_SUCCESS
    _st, atr = follow(ctx, R0, lambda e: e & SCARD_STATE_PRESENT)
    assert list(atr) == TAG_ATRS['classic1k']
    card = connect(ctx)
    data, sw = xfer(card, [0xFF, 0xCA, 0x00, 0x00, 0x00])
    assert sw == 0x9000 and len(data) == 4
    SCardDisconnect(card, SCARD_LEAVE_CARD)


def test_iso_dep_get_data(ctx):
    """Get Data on ISO 14443-4 cards is answered by the reader, as PC/SC part 3 readers do: P1 00
    the UID (A) or PUPI (B), P1 01 the ATS historical bytes (A) or the ATTRIB answer's higher layer
    response (B; none from the simulated card)."""
    enter(ctx, 'iso4a')
    card = connect(ctx)
    assert xfer(card, [0xFF, 0xCA, 0x00, 0x00, 0x00]) == (bytes.fromhex('04534352 4D3441'), 0x9000)
    assert xfer(card, [0xFF, 0xCA, 0x01, 0x00, 0x00]) == (b'SCRM-NFC', 0x9000)
    assert xfer(card, [0xFF, 0xCA, 0x00, 0x00, 0x02]) == (b'', 0x6C07)  # Le too short
    assert xfer(card, [0xFF, 0xCA, 0x02, 0x00, 0x00]) == (b'', 0x6B00)
    _d, sw = xfer(card, [0x00, 0xA4, 0x04, 0x00, len(AID)] + AID)  # other APDUs: the card's
    assert sw == 0x9000
    SCardDisconnect(card, SCARD_LEAVE_CARD)
    card = connect(ctx, R1)
    assert xfer(card, [0xFF, 0xCA, 0x00, 0x00, 0x00]) == (bytes.fromhex('5C524D42'), 0x9000)
    assert xfer(card, [0xFF, 0xCA, 0x01, 0x00, 0x00]) == (b'', 0x9000)
    SCardDisconnect(card, SCARD_LEAVE_CARD)


def test_iso_dep_get_data_to_the_card():
    """getdata=card keeps the NFC class extension's behaviour: Get Data goes to the ISO-DEP card,
    whose application does not know CLA FF."""
    with env.Daemon(readers=['nfc:0:getdata=card,tag=iso4a']):
        hr, c = SCardEstablishContext(SCARD_SCOPE_USER)
        assert hr == SCARD_S_SUCCESS
        card = connect(c)
        data, sw = xfer(card, [0xFF, 0xCA, 0x00, 0x00, 0x00])
        assert sw != 0x9000 and data == b''
        SCardDisconnect(card, SCARD_LEAVE_CARD)
        SCardReleaseContext(c)


# ---- storage tags: pseudo-APDUs ----------------------------------------------------------------

def test_uid_with_get_data(ctx):
    enter(ctx, 'classic1k:' + UID_CLASSIC)
    card = connect(ctx)
    assert xfer(card, [0xFF, 0xCA, 0x00, 0x00, 0x00]) == (bytes.fromhex(UID_CLASSIC), 0x9000)
    assert xfer(card, [0xFF, 0xCA, 0x00, 0x00, 0x02]) == (b'', 0x6C04)  # Le too short
    assert xfer(card, [0xFF, 0xCA, 0x01, 0x00, 0x00])[0] == bytes(TAG_ATRS['classic1k'][4:19])
    hr, _reader, _state, proto, atr = SCardStatus(card)
    assert hr == SCARD_S_SUCCESS and proto == SCARD_PROTOCOL_T1
    assert list(atr) == TAG_ATRS['classic1k']
    SCardDisconnect(card, SCARD_LEAVE_CARD)
    leave(ctx)
    enter(ctx, 'ultralight')
    card = connect(ctx)
    data, sw = xfer(card, [0xFF, 0xCA, 0x00, 0x00, 0x00])
    assert sw == 0x9000 and len(data) == 7 and data[:3] == bytes([0x04, 0x55, 0x4C])
    SCardDisconnect(card, SCARD_LEAVE_CARD)


def load_key(card, slot, key):
    return xfer(card, [0xFF, 0x82, 0x00, slot, 0x06] + key)


def authenticate(card, block, slot, key_type=0x60):
    return xfer(card, [0xFF, 0x86, 0x00, 0x00, 0x05, 0x01, 0x00, block, key_type, slot])


def read_block(card, block):
    return xfer(card, [0xFF, 0xB0, 0x00, block, 0x10])


def test_classic_block_read_after_authentication(ctx):
    enter(ctx, 'classic1k:' + UID_CLASSIC)
    card = connect(ctx)
    assert read_block(card, 4) == (b'', 0x6982)  # not authenticated
    assert load_key(card, 0, KEY_FF) == (b'', 0x9000)
    assert authenticate(card, 4, 0) == (b'', 0x9000)
    assert read_block(card, 4) == (bytes(16), 0x9000)
    # block 0 (sector 0): the manufacturer block starts with the UID and its BCC
    assert read_block(card, 0) == (b'', 0x6982)  # sector 1's authentication does not cover it
    assert authenticate(card, 0, 0) == (b'', 0x9000)
    data, sw = read_block(card, 0)
    uid = bytes.fromhex(UID_CLASSIC)
    assert sw == 0x9000 and data[:5] == uid + bytes([reduce(lambda a, b: a ^ b, uid)])
    # write then read back in sector 2
    assert authenticate(card, 8, 0) == (b'', 0x9000)
    payload = list(range(0x10, 0x20))
    assert xfer(card, [0xFF, 0xD6, 0x00, 0x09, 0x10] + payload) == (b'', 0x9000)
    assert read_block(card, 9) == (bytes(payload), 0x9000)
    SCardDisconnect(card, SCARD_LEAVE_CARD)


def test_classic_wrong_key_refused(ctx):
    enter(ctx, 'classic1k')
    card = connect(ctx)
    assert load_key(card, 1, [0x00] * 6) == (b'', 0x9000)
    assert authenticate(card, 4, 1) == (b'', 0x6300)  # wrong key
    assert read_block(card, 4) == (b'', 0x6982)
    assert authenticate(card, 4, 2) == (b'', 0x6988)  # key number not loaded
    # the right key still works on the woken tag
    assert load_key(card, 0, KEY_FF) == (b'', 0x9000)
    assert authenticate(card, 4, 0) == (b'', 0x9000)
    assert read_block(card, 4) == (bytes(16), 0x9000)
    SCardDisconnect(card, SCARD_LEAVE_CARD)


def test_ultralight_write_and_read_back(ctx):
    enter(ctx, 'ultralight')
    card = connect(ctx)
    assert xfer(card, [0xFF, 0xB0, 0x00, 0x04, 0x10]) == (b'SCRM-UL-TAG-DATA', 0x9000)
    assert xfer(card, [0xFF, 0xD6, 0x00, 0x05, 0x04, 0xDE, 0xAD, 0xBE, 0xEF]) == (b'', 0x9000)
    assert xfer(card, [0xFF, 0xB0, 0x00, 0x04, 0x10]) == (
        b'SCRM' + bytes([0xDE, 0xAD, 0xBE, 0xEF]) + b'TAG-DATA', 0x9000)
    assert xfer(card, [0xFF, 0xD6, 0x00, 0x05, 0x03, 1, 2, 3]) == (b'', 0x6700)  # wrong Lc
    SCardDisconnect(card, SCARD_LEAVE_CARD)


# ---- ISO 14443-4 tags: APDUs go to the card -----------------------------------------------------

@pytest.mark.parametrize('profile', ['iso4a', 'iso4b'])
def test_iso14443_4_apdu(ctx, profile):
    enter(ctx, profile)
    card = connect(ctx)
    assert xfer(card, [0x00, 0xA4, 0x04, 0x00, len(AID)] + AID) == (b'', 0x9000)
    assert xfer(card, [0x80, 0xEC, 0x00, 0x00, 0x04, 1, 2, 3, 4]) == (bytes([1, 2, 3, 4]), 0x9000)
    data, sw = xfer(card, [0x00, 0x84, 0x00, 0x00, 0x08])
    assert sw == 0x9000 and len(data) == 8
    assert xfer(card, [0x00, 0x77, 0x00, 0x00])[1] == 0x6D00
    SCardDisconnect(card, SCARD_LEAVE_CARD)


def test_t0_only_is_refused(ctx):
    enter(ctx, 'iso4a')
    hr, _card, _p = SCardConnect(ctx, R0, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0)
    assert hr == SCARD_E_PROTO_MISMATCH


def test_atr_attribute_matches_state(ctx):
    enter(ctx, 'felica')
    card = connect(ctx)
    hr, atr = SCardGetAttrib(card, SCARD_ATTR_ATR_STRING)
    assert hr == SCARD_S_SUCCESS and list(atr) == TAG_ATRS['felica']
    SCardDisconnect(card, SCARD_LEAVE_CARD)


# ---- pcsc_scan ---------------------------------------------------------------------------------

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


def test_pcsc_scan_shows_each_tag_atr(ctx):
    if not shutil.which('pcsc_scan'):
        pytest.skip('pcsc_scan not installed')
    p = subprocess.Popen(['pcsc_scan', '-n'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        start = [rf'Reader 0: {R0}\s+Event number: \d+\s+Card state: Card removed',
                 rf'Reader 1: {R1}\s+Event number: \d+\s+Card state: Card inserted',
                 re.escape(hexs(ATR_ISO4B))]
        text = read_until(p, start, 15)
        for pat in start:
            assert re.search(pat, text), f'{pat!r} not in pcsc_scan output:\n{text}'
        for profile, atr in TAG_ATRS.items():
            enter(ctx, profile)
            pats = [rf'Reader 0: {R0}\s+Event number: \d+\s+Card state: Card inserted[^\n]*\n'
                    rf'\s+ATR: {re.escape(hexs(atr))}']
            text = read_until(p, pats, 15)
            assert re.search(pats[0], text), f'{profile}: {hexs(atr)} not shown:\n{text}'
            leave(ctx)
            pats = [rf'Reader 0: {R0}\s+Event number: \d+\s+Card state: Card removed']
            text = read_until(p, pats, 15)
            assert re.search(pats[0], text), f'{profile}: removal not shown:\n{text}'
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
