"""Helpers for tests that use vsmartcard's vicc (Debian vsmartcard-vpicc) as a card.

Debian 12's vicc needs two workarounds (docs/vpcd.md, "vicc on Debian 12"): its library is
installed where Python does not look (PYTHONPATH must name it), and it imports `Crypto` while
Debian ships pycryptodome as `Cryptodome` (a directory with a `Crypto` symlink on PYTHONPATH fixes
that). Only the `iso7816`
card type works.

    card = Vicc(port)          # connects to a vpcd reader listening on 127.0.0.1:port
    card.stop()                # SIGTERM (the card leaves), card.kill(), card.pause() / resume()
"""
import os
import shutil
import signal
import subprocess
import tempfile
import time

VICC = shutil.which('vicc') or '/usr/bin/vicc'
ATR = [0x3B, 0x95, 0x13, 0x81, 0x01, 0x80, 0x73, 0xFF, 0x01, 0x00, 0x0B]  # iso7816 card
SELECT_MF = [0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00]  # answered 90 00 (no FCI)


def library_dir():
    """Where python3-virtualsmartcard put the `virtualsmartcard` package, or None."""
    try:
        out = subprocess.run(['dpkg', '-L', 'python3-virtualsmartcard'], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if line.endswith('/virtualsmartcard/VirtualSmartcard.py'):
            return os.path.dirname(os.path.dirname(line))
    return None


def cryptodome_dir():
    for d in ('/usr/lib/python3/dist-packages/Cryptodome',):
        if os.path.isdir(d):
            return d
    return None


def missing():
    """Why vicc cannot run here, or None."""
    if not os.path.exists(VICC):
        return 'vicc not installed (vsmartcard-vpicc)'
    if not library_dir():
        return 'python3-virtualsmartcard not installed'
    if not cryptodome_dir():
        return 'python3-pycryptodome not installed'
    return None


class Vicc:
    """One vicc process acting as an iso7816 card, connected to 127.0.0.1:port."""

    def __init__(self, port, card_type='iso7816'):
        self.dir = tempfile.mkdtemp(prefix='scrm-vicc-')
        os.symlink(cryptodome_dir(), os.path.join(self.dir, 'Crypto'))
        env = dict(os.environ)
        for k in ('LD_PRELOAD', 'LD_LIBRARY_PATH', 'ASAN_OPTIONS', 'TSAN_OPTIONS'):
            env.pop(k, None)
        env['PYTHONPATH'] = library_dir() + ':' + self.dir
        self.log = os.path.join(self.dir, 'vicc.log')
        with open(self.log, 'wb') as logf:
            self.proc = subprocess.Popen(
                ['/usr/bin/python3', VICC, '-t', card_type, '-H', '127.0.0.1', '-P', str(port)],
                stdout=logf, stderr=subprocess.STDOUT, env=env)

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            if sig != signal.SIGKILL:
                self.resume()
            self.proc.wait(timeout=20)

    def kill(self):
        self.stop(signal.SIGKILL)

    def log_text(self):
        with open(self.log, encoding='utf-8', errors='replace') as f:
            return f.read()

    def close(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def socket_has_unread(local_port_of_reader, timeout=10.0):
    """Wait until some TCP connection to 127.0.0.1:<reader port> (the card's side) holds bytes
    its process has not read yet: a request is in flight to a stopped card. Reads /proc/net/tcp
    (cheap, bounded wait)."""
    want = f'{local_port_of_reader:04X}'
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with open('/proc/net/tcp', encoding='ascii') as f:
            next(f)
            for line in f:
                fields = line.split()
                rem_port = fields[2].split(':')[1]
                rx_queue = int(fields[4].split(':')[1], 16)
                if rem_port == want and rx_queue > 0:
                    return True
        time.sleep(0.005)
    return False
