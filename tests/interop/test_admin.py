"""Privileged commands: the simulators' vendor controls (insert, remove, faults; NFC tag and radio)
are for root, scrmd's own user and the admin group only (admin_group in scrmd.conf).

Unprivileged clients are real processes under another uid, started with setpriv (util-linux):
    setpriv --reuid=nobody --regid=nogroup --clear-groups  -> refused (SCARD_W_SECURITY_VIOLATION)
    ... --groups=ADMIN_GID  / --regid=ADMIN_GID            -> allowed (supplementary / primary)
The admin group is given by number, so no group has to be created on the test machine.
"""
import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

import scrm_env as env

ADMIN_GID = 64199  # a gid no account uses; admin_group takes a number
SECURITY_VIOLATION = 0x8010006A
R_CARD = 'SimVendor SimReader 0'
R_EMPTY = 'SimVendor SimReader 1'
R_NFC = 'SCRM IFD 0'
SIM_INFO = 0x42000000 + 2048 + 4
NFC_RADIO = 0x42000000 + 2304 + 1
NFC_INFO = 0x42000000 + 2304 + 5

# The client run under setpriv: one SCardControl per argument "reader,code,hexdata", printing
# the results as JSON.
CLIENT = r'''
import ctypes, json, sys
l = ctypes.CDLL('libpcsclite.so.1')
L, D = ctypes.c_long, ctypes.c_ulong
ctx = L()
rc = l.SCardEstablishContext(D(2), None, None, ctypes.byref(ctx))
out = []
for arg in sys.argv[1:]:
    reader, code, data = arg.split(',')
    h, proto = L(), D()
    l.SCardConnect.argtypes = [L, ctypes.c_char_p, D, D, ctypes.c_void_p, ctypes.c_void_p]
    rc = l.SCardConnect(ctx, reader.encode(), D(3), D(0), ctypes.byref(h), ctypes.byref(proto))
    if rc:
        out.append(rc & 0xFFFFFFFF)
        continue
    buf = bytes.fromhex(data)
    rbuf = ctypes.create_string_buffer(64)
    n = D()
    l.SCardControl.argtypes = [L, D, ctypes.c_char_p, D, ctypes.c_void_p, D, ctypes.c_void_p]
    rc = l.SCardControl(h, D(int(code, 0)), buf, D(len(buf)), rbuf, D(64), ctypes.byref(n))
    out.append(rc & 0xFFFFFFFF)
    l.SCardDisconnect(h, D(0))
print(json.dumps(out))
'''


@pytest.fixture(scope='module')
def daemon():
    if not shutil.which('setpriv'):
        pytest.skip('setpriv (util-linux) not installed')
    if os.geteuid() != 0:
        pytest.skip('needs root to run clients under other users')
    d = env.Daemon(readers=['sim:0:card=t1', 'sim:1', 'nfc:0'],
                   extra=f'admin_group = {ADMIN_GID}\n')
    os.chmod(d.dir, 0o755)  # other users reach the socket (mode 0666)
    yield d
    d.close()


def as_user(args, *controls):
    """Run the client under setpriv with the given setpriv arguments; its results."""
    cmd = ['setpriv'] + args + [sys.executable, '-c', CLIENT] + list(controls)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def ctl(reader, code, data=b''):
    return f'{reader},{code:#x},{data.hex()}'


NOBODY = ['--reuid=nobody', '--regid=nogroup', '--clear-groups']


def test_unprivileged_refused(daemon):
    rcs = as_user(NOBODY, ctl(R_CARD, env.SIM_REMOVE), ctl(R_EMPTY, env.SIM_INSERT, b't1'),
                  ctl(R_CARD, env.SIM_FAULT, bytes(8)), ctl(R_NFC, NFC_RADIO, bytes(4)))
    assert rcs == [SECURITY_VIOLATION] * 4
    log = daemon.log_text()
    assert 'refused: needs root or the admin group' in log
    # nothing happened: the card is still in reader 0 and reader 1 is still empty
    l = env.lib()
    ctx = env.LONG()
    assert l.SCardEstablishContext(2, None, None, ctypes.byref(ctx)) == 0
    states = (env.READERSTATE * 2)()
    states[0].szReader = R_CARD.encode()
    states[1].szReader = R_EMPTY.encode()
    assert l.SCardGetStatusChange(ctx, 0, states, 2) == 0
    assert states[0].dwEventState & 0x20  # SCARD_STATE_PRESENT
    assert states[1].dwEventState & 0x10  # SCARD_STATE_EMPTY
    l.SCardReleaseContext(ctx)


def test_unprivileged_may_read_info(daemon):
    """The read-only INFO controls stay open to everyone."""
    assert as_user(NOBODY, ctl(R_CARD, SIM_INFO), ctl(R_NFC, NFC_INFO)) == [0, 0]


def test_admin_group_supplementary(daemon):
    args = ['--reuid=nobody', '--regid=nogroup', f'--groups={ADMIN_GID}']
    assert as_user(args, ctl(R_EMPTY, env.SIM_INSERT, b't1'),
                   ctl(R_EMPTY, env.SIM_REMOVE)) == [0, 0]


def test_admin_group_primary(daemon):
    args = ['--reuid=nobody', f'--regid={ADMIN_GID}', '--clear-groups']
    assert as_user(args, ctl(R_EMPTY, env.SIM_INSERT, b't0'),
                   ctl(R_EMPTY, env.SIM_REMOVE)) == [0, 0]


def test_root_allowed(daemon):
    assert as_user([], ctl(R_EMPTY, env.SIM_INSERT, b't1'), ctl(R_EMPTY, env.SIM_REMOVE),
                   ctl(R_NFC, NFC_RADIO, (1).to_bytes(4, 'little'))) == [0, 0, 0]


def test_daemon_user_allowed():
    """A scrmd started by an ordinary user lets that same user drive its simulators."""
    if not shutil.which('setpriv') or os.geteuid() != 0:
        pytest.skip('needs setpriv and root')
    top = tempfile.mkdtemp(prefix='scrm-admin-')
    os.chmod(top, 0o755)
    d = os.path.join(top, 'own')
    os.mkdir(d)
    shutil.chown(d, 'nobody')
    sock = os.path.join(d, 's.sock')
    penv = dict(os.environ)
    penv.pop('LD_PRELOAD', None)
    penv['SCRM_SOCKET'] = sock
    proc = subprocess.Popen(['setpriv'] + NOBODY + [env.DAEMON, '-f', '--no-discover', '-r',
                                                    'sim:0:card=t1', '-s', sock],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=penv)
    try:
        env.wait_for(lambda: os.path.exists(sock) or proc.poll() is not None, 10, 'scrmd')
        assert proc.poll() is None, proc.stdout.read()
        saved = os.environ.get('SCRM_SOCKET')
        os.environ['SCRM_SOCKET'] = sock
        try:
            assert as_user(NOBODY, ctl(R_CARD, env.SIM_REMOVE)) == [0]
        finally:
            if saved is None:
                os.environ.pop('SCRM_SOCKET')
            else:
                os.environ['SCRM_SOCKET'] = saved
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0].decode(errors='replace')
        shutil.rmtree(top, ignore_errors=True)
    assert proc.returncode == 0, out
    assert 'Sanitizer' not in out, out


def test_config_admin_group(tmp_path):
    """admin_group names a group (name or number); an unknown name is an error with file:line."""
    conf = tmp_path / 'c.conf'
    conf.write_text('discover = false\nadmin_group = no-such-group-scrm\n')
    p = subprocess.run([env.DAEMON, '-f', '--no-socket', '-c', str(conf)], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1
    assert f'{conf}:2: bad value' in p.stderr
