"""Binary compatibility with pcsc-lite: the constants and layouts of our headers equal those of
Debian's libpcsclite-dev (abi_values built against each), and a program built and linked against
pcsc-lite runs correctly with our libpcsclite.so.1 (abi_app), which also exports exactly
pcsc-lite's 22 symbols with SONAME libpcsclite.so.1.
"""
import os
import subprocess

import pytest

import scrm_env as env

ABI_DIR = os.environ.get('SCRM_TEST_ABI_DIR', '')
SYMBOLS = sorted([
    'SCardEstablishContext', 'SCardReleaseContext', 'SCardIsValidContext', 'SCardConnect',
    'SCardReconnect', 'SCardDisconnect', 'SCardBeginTransaction', 'SCardEndTransaction',
    'SCardStatus', 'SCardGetStatusChange', 'SCardControl', 'SCardTransmit',
    'SCardListReaderGroups', 'SCardListReaders', 'SCardFreeMemory', 'SCardCancel',
    'SCardGetAttrib', 'SCardSetAttrib', 'pcsc_stringify_error', 'g_rgSCardT0Pci',
    'g_rgSCardT1Pci', 'g_rgSCardRawPci'])


def exe(name):
    path = os.path.join(ABI_DIR, name)
    if not ABI_DIR or not os.path.exists(path):
        pytest.skip(f'{name} not built (libpcsclite-dev missing?)')
    return path


def test_exported_symbols():
    lib = os.path.join(env.LIBDIR, 'libpcsclite.so.1')
    out = subprocess.run(['nm', '-D', '--defined-only', lib], capture_output=True, text=True,
                         check=True).stdout
    names = sorted(line.split()[-1] for line in out.splitlines() if line.strip())
    assert names == SYMBOLS
    dyn = subprocess.run(['readelf', '-d', '-V', lib], capture_output=True, text=True,
                         check=True).stdout
    assert 'Library soname: [libpcsclite.so.1]' in dyn
    assert 'Version definition section' not in dyn  # no symbol versioning, like pcsc-lite


def test_header_values_match_pcsc_lite():
    deb = subprocess.run([exe('abi_values_pcsclite')], capture_output=True, text=True,
                         check=True).stdout
    ours = subprocess.run([exe('abi_values_scrm')], capture_output=True, text=True,
                          check=True).stdout
    assert len(deb.splitlines()) > 200
    assert ours == deb


def test_pcsc_lite_application_runs_on_scrm():
    app = exe('abi_app')
    with env.Daemon(readers=['sim:0:card=t1', 'sim:1']):
        r = subprocess.run([app, env.R_T1, env.R_T0], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert '0 failure(s)' in r.stdout
