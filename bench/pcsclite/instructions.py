#!/usr/bin/python3
"""The daemon's instructions per round trip of each front end, under callgrind (valgrind), which
does not depend on the machine's load as times do.

    instructions.py BUILDDIR [N]      (make bench-pcsclite-instr: BUILDDIR = build/release)

One scrmd runs under callgrind with both listeners; bench/pcsclite/raw_client does N calls of one
row in one protocol, then the daemon's counters are dumped (callgrind_control -d) and divided by
the number of round trips. The same connection setup precedes every row (a few messages, small
against N). Rows: see raw_client.c. Not a test.
"""
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROWS = [  # (row.variant, label, round trips per call)
    ('transmit.a', 'TRANSMIT, pcsc-lite, one write', 1),
    ('transmit.b', 'TRANSMIT, pcsc-lite, 3 writes (libpcsclite 1.9.9)', 1),
    ('transmit.c', 'TRANSMIT, scrm', 1),
    ('status.a', 'STATUS, pcsc-lite', 1),
    ('status.c', 'STATUS, scrm', 1),
    ('reader_table.a', 'GET_READERS_STATE (16 entries), pcsc-lite', 1),
    ('reader_table.c', 'LIST_READERS, scrm', 1),
    ('begin+end.a', 'BEGIN + END, pcsc-lite', 2),
    ('begin+end.c', 'BEGIN + END, scrm', 2),
    ('connect+disconnect.a', 'CONNECT + DISCONNECT, pcsc-lite', 2),
    ('connect+disconnect.c', 'CONNECT + DISCONNECT, scrm', 2),
    ('new_connection.a', 'connect + VERSION + close, pcsc-lite', 1),
    ('new_connection.b', 'connect + VERSION + ESTABLISH + close, pcsc-lite', 2),
    ('new_connection.c', 'connect + HELLO + close, scrm', 1),
]


def wait_socket(path, proc):
    end = time.monotonic() + 120
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f'scrmd exited with {proc.returncode}')
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return
        except OSError:
            time.sleep(0.1)
        finally:
            s.close()
    raise RuntimeError('scrmd did not listen')


def dump(pid, tmp, seen):
    """Dump the counters since the last dump; their total instruction count."""
    subprocess.run(['callgrind_control', '-d', str(pid)], check=True, capture_output=True,
                   timeout=300)
    end = time.monotonic() + 60
    while time.monotonic() < end:
        files = set(glob.glob(os.path.join(tmp, 'cg.out.*'))) - seen
        for f in files:
            with open(f, encoding='utf-8', errors='replace') as fh:
                text = fh.read()
            m = re.search(r'^(?:summary|totals): (\d+)', text, re.M)
            if m:
                seen.add(f)
                return int(m.group(1))
        time.sleep(0.1)
    raise RuntimeError('no callgrind dump')


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    if not shutil.which('valgrind') or not shutil.which('callgrind_control'):
        print('needs valgrind (callgrind)')
        return 1
    build = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    client = os.path.join(build, 'bench', 'pcsclite', 'raw_client')
    tmp = tempfile.mkdtemp(prefix='scrm-bench-instr-')
    scrm_sock, pcl_sock = os.path.join(tmp, 'scrm.sock'), os.path.join(tmp, 'pcscd.comm')
    conf = os.path.join(tmp, 'scrmd.conf')
    with open(conf, 'w', encoding='utf-8') as f:
        f.write(f'socket = {scrm_sock}\npcsclite_socket = {pcl_sock}\ndiscover = false\n')
        for i in range(8):
            f.write(f'reader = sim:{i}:card=t1\n')
    env = dict(os.environ, SCRM_LOG='core:warn,ipc:warn,rm:warn')
    d = subprocess.Popen(['valgrind', '--tool=callgrind', '--collect-atstart=yes',
                          f'--callgrind-out-file={tmp}/cg.out',
                          os.path.join(build, 'src', 'daemon', 'scrmd'), '-f', '-c', conf],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = set()
    try:
        wait_socket(pcl_sock, d)
        dump(d.pid, tmp, seen)  # start-up
        base = None
        results = []
        for key, label, trips in ROWS:
            subprocess.run([client, pcl_sock, scrm_sock, 'SimVendor SimReader 0', '0', key,
                            str(n)], check=True, timeout=600)
            ir = dump(d.pid, tmp, seen)
            if base is None:  # the setup alone, measured once with N = 0
                subprocess.run([client, pcl_sock, scrm_sock, 'SimVendor SimReader 0', '0', key,
                                '0'], check=True, timeout=600)
                base = dump(d.pid, tmp, seen)
            results.append((label, (ir - base) / (n * trips)))
        print(f'scrmd instructions per round trip (callgrind, N = {n} calls per row)')
        for label, per in results:
            print(f'{label:52} {per:10.0f}')
    finally:
        d.terminate()
        d.wait(timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
