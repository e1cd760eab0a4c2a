#!/usr/bin/python3
"""Benchmark: the same PC/SC client binary against three daemons, in one run, one table.

    compare.py BUILDDIR [SECONDS]        (make bench-pcsclite: BUILDDIR = build/release)

Columns
  pcscd          the distribution's libpcsclite.so.1 -> Debian's pcscd, in a private mount and
                 network namespace (tmpfs on /run/pcscd, own loopback for vpcd's TCP ports; a
                 pcscd already running on the machine is not touched), with vsmartcard's vpcd
                 driver and bench/pcsclite/vpcd_card, a C card that answers at once (vpcd has 2
                 readers: with 8 clients, 4 share each reader)
  scrmd/pcsclite the distribution's libpcsclite.so.1 -> scrmd's pcsc-lite listener
                 (PCSCLITE_CSOCK_NAME), 8 simulated readers with a zero-latency T=1 card
  scrmd/scrm     scrm's libpcsclite.so.1 (LD_LIBRARY_PATH) -> scrmd's own protocol, same daemon
The ratio column is scrmd/pcsclite over scrmd/scrm (the front end's cost; target >= 0.90).
Figures vary with the machine and its load; this is not a test.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def run_client(client, env, args, timeout=300):
    out = subprocess.run([client] + args, env=env, capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f'{client} {args}: {out.returncode}\n{out.stdout}{out.stderr}')
    return out.stdout


def parse(text):
    """{'apdu 1': n, 'control list_readers': n, ...} from pcsc_client's lines."""
    res = {}
    for line in text.splitlines():
        f = line.split()
        if not f:
            continue
        if f[0] == 'apdu':
            threads = f[1].split('=')[1]
            res[f'APDU/s, {threads} client(s)'] = float(f[3].split('=')[1])
        elif f[0] == 'control':
            res[f'{f[1]} /s'] = float(f[2].split('=')[1])
    return res


def client_runs(client, env, seconds):
    text = ''
    for threads in (1, 2, 8):
        text += run_client(client, env, ['apdu', str(threads), str(seconds)])
    text += run_client(client, env, ['control', str(seconds * 3)])
    return parse(text)


def wait_socket(path, proc, what):
    end = time.monotonic() + 20
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f'{what} exited with {proc.returncode}')
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return
        except OSError:
            time.sleep(0.05)
        finally:
            s.close()
    raise RuntimeError(f'{what} did not listen on {path}')


def scrmd_runs(build, client, tmp, seconds):
    conf = os.path.join(tmp, 'scrmd.conf')
    scrm_sock = os.path.join(tmp, 'scrm.sock')
    pcl_sock = os.path.join(tmp, 'pcscd.comm')
    with open(conf, 'w', encoding='utf-8') as f:
        f.write(f'socket = {scrm_sock}\npcsclite_socket = {pcl_sock}\ndiscover = false\n')
        for i in range(8):
            f.write(f'reader = sim:{i}:card=t1\n')
    env = dict(os.environ, SCRM_LOG='core:warn,ipc:warn,rm:warn')
    d = subprocess.Popen([os.path.join(build, 'src', 'daemon', 'scrmd'), '-f', '-c', conf],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_socket(pcl_sock, d, 'scrmd')
        e = dict(os.environ)
        e.pop('LD_LIBRARY_PATH', None)
        e['PCSCLITE_CSOCK_NAME'] = pcl_sock
        pcl = client_runs(client, e, seconds)
        e = dict(os.environ)
        e['LD_LIBRARY_PATH'] = os.path.join(build, 'src', 'client')
        e['SCRM_SOCKET'] = scrm_sock
        own = client_runs(client, e, seconds)
    finally:
        d.terminate()
        d.wait(timeout=30)
    return pcl, own


PCSCD_SCRIPT = r'''
set -e
mount -t tmpfs none /run/pcscd
ip link set lo up
pcscd -f >/dev/null 2>&1 &
pcscd_pid=$!
"$CARD" 35963 & c1=$!
"$CARD" 35964 & c2=$!
# until both readers have their card (pcscd polls vpcd every 400 ms)
ok=
for i in $(seq 200); do
    if "$CLIENT" apdu 2 0.01 >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.1
done
[ -n "$ok" ] || { echo "pcscd did not come up" >&2; kill $pcscd_pid; exit 1; }
for t in 1 2 8; do "$CLIENT" apdu $t "$SECONDS_PER_RUN"; done
"$CLIENT" control "$CONTROL_SECONDS"
kill $c1 $c2 $pcscd_pid
wait $pcscd_pid 2>/dev/null || true
'''


def pcscd_runs(client, card, seconds):
    if not shutil.which('pcscd') or not os.path.exists('/etc/reader.conf.d/vpcd'):
        return None, 'pcscd or vsmartcard-vpcd not installed'
    if os.geteuid() != 0:
        return None, 'needs root (a private mount namespace)'
    env = dict(os.environ, CLIENT=client, CARD=card, SECONDS_PER_RUN=str(seconds),
               CONTROL_SECONDS=str(seconds * 3), PCSCLITE_CSOCK_NAME='/run/pcscd/pcscd.comm')
    env.pop('LD_LIBRARY_PATH', None)
    out = subprocess.run(['unshare', '--mount', '--net', '--fork', '--propagation', 'private',
                          'sh', '-c', PCSCD_SCRIPT], env=env, capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        return None, f'pcscd run failed: {out.stderr.strip()[-300:]}'
    return parse(out.stdout), None


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    build = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    client = os.path.abspath(os.path.join(build, 'bench', 'pcsclite', 'pcsc_client'))
    card = os.path.abspath(os.path.join(build, 'bench', 'pcsclite', 'vpcd_card'))
    if not os.path.exists(client):
        print('bench/pcsclite needs libpcsclite-dev (the distribution\'s library) at build time')
        return 1
    tmp = tempfile.mkdtemp(prefix='scrm-bench-pcsclite-')
    try:
        pcl, own = scrmd_runs(build, client, tmp, seconds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ref, why = pcscd_runs(client, card, seconds)
    print(f'pcsc-lite protocol front end vs scrm\'s own protocol vs pcscd ({seconds:g} s per row)')
    if why:
        print(f'(pcscd column empty: {why})')
    print(f'{"":28} {"pcscd":>10} {"scrmd/pcsclite":>15} {"scrmd/scrm":>11} {"ratio":>6}')
    worst = None
    for key in own:
        p = pcl.get(key, 0.0)
        ratio = p / own[key] if own[key] else 0.0
        worst = ratio if worst is None else min(worst, ratio)
        r = f'{ref[key]:10.0f}' if ref and key in ref else f'{"-":>10}'
        print(f'{key:28} {r} {p:15.0f} {own[key]:11.0f} {ratio:6.2f}')
    print(f'lowest ratio scrmd/pcsclite : scrmd/scrm = {worst:.2f} (target >= 0.90)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
