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


CPU = {}  # (column, row) -> CPU microseconds per call: (client, daemon or None)


def parse(text, column=None):
    """{'APDU/s, 1 client(s)': n, 'list_readers /s': n, ...} from pcsc_client's lines; the CPU
    time per call of each row goes to CPU[(column, row)]."""
    res = {}
    for line in text.splitlines():
        f = line.split()
        if not f or f[0] not in ('apdu', 'control'):
            continue
        kv = dict(x.split('=', 1) for x in f if '=' in x)
        if f[0] == 'apdu':
            key = f'APDU/s, {kv["threads"]} client(s)'
            res[key] = float(kv['apdu_per_s'])
        else:
            key = f'{f[1]} /s'
            res[key] = float(kv['calls_per_s'])
        if column and 'cpu_client_us' in kv:
            d = kv.get('cpu_daemon_us')
            CPU[(column, key)] = (float(kv['cpu_client_us']), float(d) if d else None)
    return res


def client_runs(client, env, seconds, column):
    text = ''
    for threads in (1, 2, 8):
        text += run_client(client, env, ['apdu', str(threads), str(seconds)])
    text += run_client(client, env, ['control', str(seconds * 3)])
    return parse(text, column)


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
        e['SCRM_BENCH_DAEMON_PID'] = str(d.pid)
        pcl = client_runs(client, e, seconds, 'scrmd/pcsclite')
        e = dict(os.environ)
        e['LD_LIBRARY_PATH'] = os.path.join(build, 'src', 'client')
        e['SCRM_SOCKET'] = scrm_sock
        e['SCRM_BENCH_DAEMON_PID'] = str(d.pid)
        own = client_runs(client, e, seconds, 'scrmd/scrm')
        raw = parse_raw(run_client(os.path.join(build, 'bench', 'pcsclite', 'raw_client'),
                                   dict(os.environ, SCRM_BENCH_DAEMON_PID=str(d.pid)),
                                   [pcl_sock, scrm_sock, 'SimVendor SimReader 0',
                                    str(seconds * 4)]))
    finally:
        d.terminate()
        d.wait(timeout=30)
    return pcl, own, raw


def parse_raw(text):
    """[(row, {'pcsclite': n, 'pcsclite_split': n, 'scrm': n}), ...] from raw_client."""
    rows = []
    for line in text.splitlines():
        f = line.split()
        if f and f[0] == 'raw':
            rows.append((f[1], {k: float(v) for k, v in (x.split('=') for x in f[2:])}))
    return rows


# Round trips per call of the library rows: Debian 12's libpcsclite.so.1 (1.9.9, counted with
# strace) and scrm's libpcsclite.so.1. The pcsc-lite library fetches the reader table before
# SCardStatus and SCardGetStatusChange, ends SCardGetStatusChange's registration with a STOP, and
# opens a socket per context with VERSION + ESTABLISH and RELEASE (scrm: HELLO; release is local).
ROUND_TRIPS = {
    'establish+release /s': (3, 1),
    'list_readers /s': (1, 1),
    'connect+disconnect /s': (2, 2),
    'status /s': (2, 1),
    'begin+end_transaction /s': (2, 2),
    'get_status_change_0 /s': (2, 1),
}


PCSCD_SCRIPT = r'''
set -e
mount -t tmpfs none /run/pcscd
ip link set lo up
pcscd -f >/dev/null 2>&1 &
pcscd_pid=$!
SCRM_BENCH_DAEMON_PID=$pcscd_pid
export SCRM_BENCH_DAEMON_PID
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
    return parse(out.stdout, 'pcscd'), None


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
        pcl, own, raw = scrmd_runs(build, client, tmp, seconds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ref, why = pcscd_runs(client, card, seconds)
    print(f'pcsc-lite protocol front end vs scrm\'s own protocol vs pcscd ({seconds:g} s per row)')
    if why:
        print(f'(pcscd column empty: {why})')
    print(f'{"":28} {"pcscd":>10} {"scrmd/pcsclite":>15} {"scrmd/scrm":>11} {"ratio":>6} '
          f'{"round trips":>12}')
    worst = None
    for key in own:
        p = pcl.get(key, 0.0)
        ratio = p / own[key] if own[key] else 0.0
        worst = ratio if worst is None else min(worst, ratio)
        r = f'{ref[key]:10.0f}' if ref and key in ref else f'{"-":>10}'
        trips = ROUND_TRIPS.get(key, (1, 1))
        print(f'{key:28} {r} {p:15.0f} {own[key]:11.0f} {ratio:6.2f} '
              f'{trips[0]:>7} : {trips[1]}')
    print(f'lowest ratio scrmd/pcsclite : scrmd/scrm = {worst:.2f} (target >= 0.90)')
    print('round trips: per call, Debian\'s libpcsclite 1.9.9 : scrm\'s library (the library\'s own'
          ' choice; a row with more round trips cannot reach 0.90 in the daemon)')
    print()
    print('CPU time per call in microseconds, client + daemon (summed over all threads; from '
          'the clock of the process and /proc, so nearly independent of the machine\'s load)')
    print(f'{"":28} {"pcscd":>13} {"scrmd/pcsclite":>15} {"scrmd/scrm":>13} {"ratio":>6}')
    for key in own:
        cells, tot = [], {}
        for col in ('pcscd', 'scrmd/pcsclite', 'scrmd/scrm'):
            c = CPU.get((col, key))
            if c and c[1] is not None:
                tot[col] = c[0] + c[1]
                cells.append(f'{c[0]:.0f} + {c[1]:.0f}')
            else:
                cells.append('-')
        ratio = (tot['scrmd/scrm'] / tot['scrmd/pcsclite']
                 if tot.get('scrmd/pcsclite') and tot.get('scrmd/scrm') else 0.0)
        print(f'{key:28} {cells[0]:>13} {cells[1]:>15} {cells[2]:>13} {ratio:6.2f}')
    print('ratio: CPU per call of scrmd/scrm over scrmd/pcsclite (>= 1: the pcsc-lite path is '
          'as cheap); the client\'s share is the library\'s own cost')
    print()
    print('The daemon alone: the same scrmd, one connection per protocol on a raw socket, one '
          'request per round trip (bench/pcsclite/raw_client)')
    print(f'{"calls/s; daemon CPU us/call":28} {"pcsc-lite":>16} {"pcsc-lite*":>16} '
          f'{"scrm":>16} {"ratio":>6} {"cpu ratio":>9}')
    for row, v in raw:
        k = next((x for x in v if not x.startswith('cpu_') and x not in ('pcsclite', 'scrm')),
                 None)

        def cell(rate, cpu):
            return f'{rate:8.0f}; {cpu:5.1f}' if cpu is not None else f'{rate:8.0f}; {"-":>5}'
        b = cell(v[k], v.get(f'cpu_{k}')) if k else f'{"-":>16}'
        ratio = v['pcsclite'] / v['scrm'] if v['scrm'] else 0.0
        cpu_ratio = (v['cpu_scrm'] / v['cpu_pcsclite']
                     if v.get('cpu_pcsclite') and v.get('cpu_scrm') else 0.0)
        print(f'{row:28} {cell(v["pcsclite"], v.get("cpu_pcsclite")):>16} {b:>16} '
              f'{cell(v["scrm"], v.get("cpu_scrm")):>16} {ratio:6.2f} {cpu_ratio:9.2f}')
    print('pcsc-lite*: transmit written in three pieces as libpcsclite 1.9.9 writes it; '
          'new_connection with ESTABLISH (two round trips); cpu ratio: scrm over pcsc-lite')
    return 0


if __name__ == '__main__':
    sys.exit(main())
