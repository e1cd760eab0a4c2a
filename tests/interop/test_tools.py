"""Real PC/SC programs against scrmd through our libpcsclite.so.1: pcsc_scan (pcsc-tools) and
opensc-tool (opensc). Both are run with bounded timeouts; pcsc_scan runs until killed, so its
output is read until the expected lines appear (or a deadline passes), then it is stopped.
"""
import os
import re
import selectors
import shutil
import signal
import subprocess
import time

import pytest
from smartcard.scard import (SCARD_LEAVE_CARD, SCARD_S_SUCCESS, SCARD_SCOPE_USER,
                             SCARD_SHARE_DIRECT, SCardConnect, SCardControl, SCardDisconnect,
                             SCardEstablishContext, SCardReleaseContext)

import scrm_env as env

ATR_T1 = '3B 87 81 31 FE 45 53 43 52 4D 2D 54 31 CB'


@pytest.fixture(scope='module')
def daemon():
    d = env.Daemon(readers=['sim:0:card=t1', 'sim:1'])
    yield d
    d.close()


def need(prog):
    if not shutil.which(prog):
        pytest.skip(f'{prog} not installed')


def read_until(proc, patterns, timeout):
    """Collect proc's stdout until every regex in patterns matched; returns the text."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    text, end = '', time.monotonic() + timeout
    while time.monotonic() < end:
        if all(re.search(p, text) for p in patterns):
            break
        for _key, _ev in sel.select(max(0.0, end - time.monotonic())):
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                return text
            text += chunk.decode(errors='replace')
    return text


def stop(proc):
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def sim(reader, code, data=b''):
    hr, c = SCardEstablishContext(SCARD_SCOPE_USER)
    hr, card, _p = SCardConnect(c, reader, SCARD_SHARE_DIRECT, 0)
    assert hr == SCARD_S_SUCCESS
    hr, _r = SCardControl(card, code, list(data))
    SCardDisconnect(card, SCARD_LEAVE_CARD)
    SCardReleaseContext(c)
    return hr


def test_pcsc_scan_lists_readers_and_events(daemon):
    need('pcsc_scan')
    p = subprocess.Popen(['pcsc_scan', '-n'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        first = [r'0: SimVendor SimReader 0', r'1: SimVendor SimReader 1',
                 r'Reader 0: SimVendor SimReader 0\s+Event number: \d+\s+Card state: Card inserted',
                 r'Reader 1: SimVendor SimReader 1\s+Event number: \d+\s+Card state: Card removed',
                 ATR_T1]
        text = read_until(p, first, 15)
        for pat in first:
            assert re.search(pat, text), f'{pat!r} not in pcsc_scan output:\n{text}'
        # a card event while it watches
        assert sim(env.R_T1.replace('0', '1'), env.SIM_INSERT, b't1') == SCARD_S_SUCCESS
        more = read_until(p, [r'Reader 1: SimVendor SimReader 1\s+Event number: \d+\s+'
                              r'Card state: Card inserted'], 15)
        assert re.search(r'Reader 1: SimVendor SimReader 1\s+Event number: \d+\s+Card state: '
                         r'Card inserted', more), more
        assert sim('SimVendor SimReader 1', env.SIM_REMOVE) == SCARD_S_SUCCESS
    finally:
        stop(p)


def test_opensc_tool_list_readers(daemon):
    need('opensc-tool')
    out = subprocess.run(['opensc-tool', '-l'], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert re.search(r'0\s+Yes\s+.*SimVendor SimReader 0', out.stdout), out.stdout
    assert re.search(r'1\s+No\s+.*SimVendor SimReader 1', out.stdout), out.stdout


def test_opensc_tool_atr(daemon):
    need('opensc-tool')
    out = subprocess.run(['opensc-tool', '-r', '0', '-a'], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    assert ATR_T1.replace(' ', ':').lower() in out.stdout.lower(), out.stdout


def test_opensc_tool_send_apdu(daemon):
    need('opensc-tool')
    out = subprocess.run(['opensc-tool', '-r', '0', '-s', '80:EC:00:00:03:0A:0B:0C:00'],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert 'Received (SW1=0x90, SW2=0x00)' in out.stdout, out.stdout
    assert '0A 0B 0C' in out.stdout, out.stdout
