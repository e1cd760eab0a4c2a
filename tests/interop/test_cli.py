"""The scrm command-line tool as a new user meets it: error texts with the SCARD_E_* name, code and
the specific situation, `scrm list` columns, `scrm doctor`, `scrm --version`, the explanation when
the daemon cannot be reached, `scrm watch` across a daemon restart, and `scrm atr` against the
ATR corpus of pcsc-tools' smartcard_list.txt (the one test_atr_list.py uses).
"""
import os
import re
import selectors
import signal
import subprocess
import time

import pytest

import scrm_env as env

CLI = os.environ.get('SCRM_TEST_CLI', '')
LIST = '/usr/share/pcsc/smartcard_list.txt'
R0 = 'SimVendor SimReader 0'
R1 = 'SimVendor SimReader 1'
NFC = 'SCRM IFD 0'


def scrm(*args, env_extra=None, stdin=None):
    e = dict(os.environ)
    e.update(env_extra or {})
    return subprocess.run([CLI] + list(args), capture_output=True, text=True, timeout=120, env=e,
                          input=stdin)


@pytest.fixture(scope='module')
def daemon():
    d = env.Daemon(readers=['sim:0:card=t1', 'sim:1', 'nfc:0'])
    yield d
    d.close()


def test_version():
    r = scrm('--version')
    assert r.returncode == 0 and re.match(r'^scrm \d+\.\d+', r.stdout)


def test_list_columns(daemon):
    r = scrm('list')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ['#', 'READER', 'STATE', 'ATR', 'CARD']
    assert all(l == l.rstrip() for l in lines), 'trailing blanks'
    assert lines[1].startswith('0  ' + R0 + '  card present  3B 87 81 31 FE')
    assert lines[2] == '1  ' + R1 + '  empty'
    # the state column starts at the same offset on every line (sized to the longest name)
    col = lines[1].index('card present')
    assert lines[0].index('STATE') == col and lines[2].index('empty') == col


def test_errors_name_code_and_situation(daemon):
    r = scrm('sim', 'remove', '1')
    assert r.returncode == 1
    assert 'SCARD_W_REMOVED_CARD (0x80100069)' in r.stderr
    assert R1 + ' is empty: there is no card to remove' in r.stderr
    r = scrm('sim', 'insert', '0')
    assert 'SCARD_E_NOT_READY (0x80100010)' in r.stderr
    assert R0 + ' already holds a card' in r.stderr
    r = scrm('sim', 'insert', '1', 'bogus')
    assert "unknown card profile 'bogus'; profiles: t1, t0," in r.stderr
    r = scrm('sim', 'insert', NFC)
    assert 'SCARD_E_UNSUPPORTED_FEATURE' in r.stderr and 'is not a simulated contact' in r.stderr
    r = scrm('nfc', 'enter', NFC, 'bogus')
    assert "unknown tag profile 'bogus'; profiles: iso4a," in r.stderr
    r = scrm('nfc', 'leave', NFC)
    assert NFC + ' is empty' in r.stderr
    r = scrm('sim', 'remove', 'SimReader')
    assert "'SimReader' matches 2 readers" in r.stderr
    assert '  0  ' + R0 in r.stderr and '  1  ' + R1 in r.stderr
    r = scrm('sim', 'remove', 'nosuch')
    assert "no reader matches 'nosuch'" in r.stderr and '  2  ' + NFC in r.stderr


def test_unreachable_daemon_explained(tmp_path):
    missing = str(tmp_path / 'none.sock')
    r = scrm('list', env_extra={'SCRM_SOCKET': missing})
    assert r.returncode == 1
    assert 'SCARD_E_NO_SERVICE (0x8010001D)' in r.stderr
    assert missing + ' (from $SCRM_SOCKET)' in r.stderr and 'does not exist' in r.stderr
    # a file that is not a socket, and a socket nobody listens on (stale)
    plain = tmp_path / 'plain'
    plain.write_text('x')
    r = scrm('list', env_extra={'SCRM_SOCKET': str(plain)})
    assert 'is not a socket' in r.stderr
    import socket
    stale = str(tmp_path / 'stale.sock')
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(stale)
    s.close()
    r = scrm('list', env_extra={'SCRM_SOCKET': stale})
    assert 'nobody listens' in r.stderr
    # the library itself says why at client:info, and nothing by default
    r = scrm('list', env_extra={'SCRM_SOCKET': missing, 'SCRM_LOG': 'client:info'})
    assert 'cannot connect to scrmd at ' + missing in r.stderr
    r = scrm('list', env_extra={'SCRM_SOCKET': missing})
    assert 'scrm[client]' not in r.stderr


def test_not_a_scrm_daemon(tmp_path):
    """A socket that answers something else (as pcscd would) is named as such."""
    import socket
    import threading
    path = str(tmp_path / 'other.sock')
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)

    def answer():
        for _ in range(2):
            c, _ = srv.accept()
            c.recv(64)
            c.sendall(b'\x00' * 64)
            c.close()
    t = threading.Thread(target=answer, daemon=True)
    t.start()
    r = scrm('doctor', env_extra={'SCRM_SOCKET': path})
    assert r.returncode == 1 and 'answers, but not as scrmd' in r.stdout, r.stdout
    srv.close()


def test_doctor(daemon):
    r = scrm('doctor')
    out = r.stdout
    problems = [l for l in out.splitlines() if l.startswith('PROBLEM')]
    # another pcscd on the test machine is the only problem the check may find
    assert all(l.startswith('PROBLEM  pcscd    pcscd runs too') for l in problems), out
    assert r.returncode == (1 if problems else 0)
    assert 'ok       socket   ' + daemon.sock + ' (from $SCRM_SOCKET)' in out
    assert 'ok       daemon   scrmd pid ' in out
    assert 'ok       readers  3' in out
    assert 'libpcsclite.so.1' in out
    assert out.rstrip().endswith('see PROBLEM above' if problems else 'all checks passed')


def read_until(proc, text, timeout=20):
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    out, end = '', time.monotonic() + timeout
    while text not in out and time.monotonic() < end:
        for _k, _e in sel.select(max(0.0, end - time.monotonic())):
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                return out
            out += chunk.decode(errors='replace')
    sel.close()
    return out


def test_watch_survives_restart():
    d = env.Daemon(readers=['sim:0:card=t1'])
    try:
        w = subprocess.Popen([CLI, 'watch'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = read_until(w, R0 + ': card present')
        assert R0 + ': card present' in out, out
        d.stop()
        out += read_until(w, 'waiting for it to come back')
        assert 'scrmd went away (SCARD_E_NO_SERVICE); waiting for it to come back' in out, out
        d.start()
        out += read_until(w, 'scrmd is back')
        out += read_until(w, R0 + ': card present', 10)
        assert 'scrmd is back' in out and out.count(R0 + ': card present') == 2, out
        w.send_signal(signal.SIGINT)
        assert w.wait(20) == 0
    finally:
        d.close()


# ---- scrm atr -----------------------------------------------------------------------------------

def test_atr_decodes_fields():
    r = scrm('atr', '3B 87 81 31 FE 45 53 43 52 4D 2D 54 31 CB')
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for want in ['TS   3B  direct convention', 'T0   87  Y1=8: TD1 follow; K=7 historical bytes',
                 'TD1  81  protocol T=1', 'TD2  31  protocol T=1', 'TA3  FE  T=1 IFSC 254',
                 'TB3  45  T=1 BWI 4, CWI 5', 'historical bytes (7): 53 43 52 4D 2D 54 31',
                 '"SCRM-T1"', 'TCK  CB  correct', 'protocols: T=1', 'T=1: IFSC 254, BWI 4, CWI 5']:
        assert want in out, (want, out)
    r = scrm('atr', '3B 87 81 31 FE 45 53 43 52 4D 2D 54 31 CC')
    assert r.returncode == 1 and 'TCK  CC  WRONG' in r.stdout
    # TA1 and compact-TLV historical bytes with a status indicator
    r = scrm('atr', '3B DB 96 00 80 B1 FE 45 1F 83 00 31 C0 64 C3 08 01 00 0F 90 00 9B')
    assert 'TA1  96  Fi=9 (F=512, fmax 5000 kHz), Di=6 (D=32)' in r.stdout, r.stdout
    assert 'category 00: compact-TLV' in r.stdout
    assert 'tag 3, 1 byte(s): C0  card service data' in r.stdout
    assert 'status indicator: life cycle 0F, status word 9000' in r.stdout


def load_corpus():
    atrs = []
    with open(LIST, encoding='utf-8', errors='replace') as f:
        for line in f:
            s = line.strip().upper()
            if line[0] not in '#\t \n' and re.match(r'^[0-9A-F]{2}( [0-9A-F]{2})*$', s):
                atrs.append(s)
    return list(dict.fromkeys(atrs))


def test_atr_corpus_matches_libsmc_and_list():
    """Every concrete ATR of smartcard_list.txt: scrm atr agrees with libsmc's parser as
    atr_dump (the helper of test_atr_list.py) reports it, and finds a description for it (its own
    entry at least), as pcsc-tools' ATR_analysis would."""
    if not os.path.exists(LIST):
        pytest.skip('pcsc-tools smartcard_list.txt not installed')
    atrs = load_corpus()
    r = scrm('atr', '--brief', stdin='\n'.join(atrs) + '\n')
    assert r.returncode == 0, r.stderr
    rows = {l.split('|', 1)[0]: l.split('|') for l in r.stdout.splitlines()}
    assert len(rows) == len(atrs)
    unnamed = [a for a in atrs if not rows[a][6]]
    assert not unnamed, unnamed[:5]
    dump = os.environ.get('SCRM_TEST_ATR_DUMP')
    if dump:
        out = subprocess.run([dump], input='\n'.join(atrs) + '\n', capture_output=True,
                             text=True, timeout=120, check=True).stdout
        compared = 0
        for line in out.splitlines():
            atr, status, _protos, _ta1, hist, tck, _why = line.split('|', 6)
            mine = rows[atr]
            if status == 'OK':
                want = ('ok', hist, tck)
                assert (mine[1], mine[4].replace(' ', ''), mine[5]) == want, (atr, mine, line)
            else:
                assert mine[1] == 'error', (atr, mine, line)
            compared += 1
        assert compared == len(atrs)


# ---- scrm spy -----------------------------------------------------------------------------------

def spy_start(*args):
    p = subprocess.Popen([CLI, 'spy'] + list(args), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    assert 'Ctrl-C to stop' in read_until(p, 'Ctrl-C to stop')
    return p


def test_spy_sees_apdus_and_redacts_pins(daemon):
    plain = spy_start()
    pins = spy_start('--pins')
    r = scrm('send', '0', '00 A4 04 00 07 F0 53 43 52 4D 00 01', '00 20 00 81 04 31 32 33 34')
    assert r.returncode == 0, r.stderr
    out = read_until(plain, '< 6A 88')
    out_pins = read_until(pins, '< 6A 88')
    for p in (plain, pins):
        p.send_signal(signal.SIGINT)
        assert p.wait(20) == 0
    assert re.search(r'client \d+ ' + R0 + r' > 00 A4 04 00 07 F0 53 43 52 4D 00 01', out), out
    assert re.search(R0 + r' < 90 00  success \(\d+ us\)', out), out
    assert 'IOCTL_SMARTCARD_TRANSMIT -> STATUS_SUCCESS' in out
    assert '> 00 20 00 81 04 ** ** ** **  (PIN redacted)' in out and '31 32 33 34' not in out
    assert '> 00 20 00 81 04 31 32 33 34' in out_pins


def test_spy_capture_file_read_by_tshark(daemon, tmp_path):
    """--pcap writes the exchanges as GSMTAP SIM packets that Wireshark's dissector decodes."""
    cap = str(tmp_path / 'spy.pcap')
    spy = spy_start('--pcap', cap)
    r = scrm('send', '0', '00 A4 04 00 07 F0 53 43 52 4D 00 01', '00 84 00 00 08',
             '00 20 00 81 04 31 32 33 34')
    assert r.returncode == 0, r.stderr
    read_until(spy, '< 6A 88')
    spy.send_signal(signal.SIGINT)
    assert spy.wait(20) == 0
    tail = spy.stdout.read().decode()
    assert '3 APDU exchange(s) written to ' + cap in tail, tail
    t = subprocess.run(['tshark', '-r', cap, '-T', 'fields', '-e', 'gsm_sim.apdu.ins',
                        '-e', 'gsm_sim.apdu.sw'], capture_output=True, text=True, timeout=120)
    assert t.returncode == 0, t.stderr
    rows = [l.split('\t') for l in t.stdout.splitlines()]
    assert [r[0] for r in rows] == ['0xa4', '0x84', '0x20'], t.stdout
    assert [r[1] for r in rows] == ['0x9000', '0x9000', '0x6a88'], t.stdout
    raw = open(cap, 'rb').read()
    assert b'1234' not in raw and b'\x20\x00\x81\x04****' in raw, 'PIN redacted in the file'


def test_spy_refused_for_others(daemon):
    os.chmod(daemon.dir, 0o755)
    r = subprocess.run(['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', CLI,
                        'spy'], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert 'SCARD_W_SECURITY_VIOLATION (0x8010006A)' in r.stderr
    assert 'admin_group' in r.stderr
    assert 'spy refused: needs root or the admin group' in daemon.log_text()
