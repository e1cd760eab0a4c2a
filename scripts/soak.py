#!/usr/bin/python3
"""`make soak DURATION=seconds`: a long run of scrmd under mixed load, with resource tracking.

A scrmd (from --build, the release build by default) with eight simulated readers holding cards
serves CLIENTS client threads (pyscard on this build's libpcsclite.so.1), each with its own
context, doing random work on random readers: connect, APDUs of every case, status, transactions
around a few APDUs, reconnect with reset, disconnect with a random disposition. A controller
thread meanwhile removes and inserts cards, mutes cards, makes readers stop answering and come
back (simulator vendor controls through SCardControl on DIRECT handles). Every second the
daemon's resident memory, open descriptors and threads are sampled.

The run fails (exit status 1) on: a result code a call may not give in the situation (the
allowed ones are listed per call below), a call that takes longer than BOUND_S, the daemon
dying, growth of memory or descriptors after the warm-up (the first third of the run): the
maximum of the last third against the maximum of the second third, with a small allowance, or a
thread count that does not come back, within 15 s of the load's end, to what it was before the
load (the worker pool follows the load within a second, so its peaks say nothing of leaks). The
figures are printed as a table at the end.
"""
import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

BOUND_S = 5.0  # no call may take longer
READERS = [f'sim:{i}:card={"t0" if i % 4 == 1 else "t1"}' for i in range(8)]
NAMES = [f'SimVendor SimReader {i}' for i in range(8)]

S_OK = 0
W_REMOVED, W_RESET, W_UNPOWERED, W_UNRESPONSIVE = 0x80100069, 0x80100068, 0x80100067, 0x80100066
W_UNSUPPORTED = 0x80100065
E_NO_SMARTCARD, E_UNAVAILABLE, E_NOT_READY = 0x8010000C, 0x80100017, 0x80100010
E_NOT_TRANSACTED, E_PROTO_MISMATCH, F_COMM, E_TIMEOUT = 0x80100016, 0x8010000F, 0x80100013, 0x8010000A
E_SHARING = 0x8010000B
# What the card, the reader or the controller's faults may legitimately cause.
CARD_TROUBLE = {W_REMOVED, W_RESET, W_UNPOWERED, W_UNRESPONSIVE, W_UNSUPPORTED, E_NO_SMARTCARD,
                E_UNAVAILABLE, E_NOT_READY, E_PROTO_MISMATCH, F_COMM, E_TIMEOUT}
ALLOWED = {
    'connect': {S_OK} | CARD_TROUBLE,
    'transmit': {S_OK} | CARD_TROUBLE,
    'status': {S_OK} | CARD_TROUBLE,
    'begin': {S_OK} | CARD_TROUBLE,
    'end': {S_OK, E_NOT_TRANSACTED} | CARD_TROUBLE,
    'reconnect': {S_OK} | CARD_TROUBLE,
    'disconnect': {S_OK} | CARD_TROUBLE,
}
APDUS = [
    [0x00, 0x84, 0x00, 0x00, 0x08],                      # case 2: GET CHALLENGE
    [0x80, 0xEC, 0x00, 0x00, 0x03, 1, 2, 3, 0x00],       # case 4: ECHO
    [0x80, 0xEC, 0x00, 0x00, 0x03, 1, 2, 3],             # case 3
    [0x00, 0xA4, 0x04, 0x00, 0x00],                      # SELECT without AID
    [0x80, 0xEC, 0x00, 0x00, 0xF0] + list(range(0xF0)) + [0x00],  # long case 4
]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls = {}    # op -> [count, latencies list (the first 200 000), max of all]
        self.codes = {}    # (op, code) -> count
        self.failures = []

    def record(self, op, code, dt):
        with self.lock:
            c = self.calls.setdefault(op, [0, [], 0.0])
            c[0] += 1
            if len(c[1]) < 200000:
                c[1].append(dt)
            c[2] = max(c[2], dt)
            self.codes[(op, code)] = self.codes.get((op, code), 0) + 1
            if code not in ALLOWED[op]:
                self.failures.append(f'{op} returned {code:#010x}')
            if dt > BOUND_S:
                # when it ended and the machine's load then: a stall of the whole machine shows
                # as many calls of every kind ending together under a high load
                load = os.getloadavg()[0]
                self.failures.append(f'{op} took {dt:.2f} s (bound {BOUND_S} s), ended '
                                     f'{time.strftime("%H:%M:%S")}, load average {load:.1f}')


def daemon_sample(pid):
    rss = threads = 0
    with open(f'/proc/{pid}/status', encoding='ascii') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                rss = int(line.split()[1])
            elif line.startswith('Threads:'):
                threads = int(line.split()[1])
    fds = len(os.listdir(f'/proc/{pid}/fd'))
    return rss, fds, threads


def client(sc, stats, stop, seed):
    rnd = random.Random(seed)
    hr, ctx = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
    if hr != S_OK:
        stats.failures.append(f'SCardEstablishContext: {hr:#x}')
        return

    def call(op, fn, *args):
        t0 = time.monotonic()
        res = fn(*args)
        dt = time.monotonic() - t0
        hr = res[0] if isinstance(res, (list, tuple)) else res
        stats.record(op, hr & 0xFFFFFFFF, dt)
        return res

    while not stop.is_set():
        reader = NAMES[rnd.randrange(len(NAMES))]
        res = call('connect', sc.SCardConnect, ctx, reader, sc.SCARD_SHARE_SHARED,
                   sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1)
        if res[0] != S_OK:
            continue
        _, card, proto = res
        for _ in range(rnd.randrange(1, 20)):
            if stop.is_set():
                break
            r = rnd.random()
            if r < 0.6:
                call('transmit', sc.SCardTransmit, card, proto, rnd.choice(APDUS))
            elif r < 0.7:
                call('status', sc.SCardStatus, card)
            elif r < 0.85:
                if call('begin', sc.SCardBeginTransaction, card) == S_OK:
                    for _ in range(rnd.randrange(1, 4)):
                        call('transmit', sc.SCardTransmit, card, proto, rnd.choice(APDUS))
                    call('end', sc.SCardEndTransaction, card, sc.SCARD_LEAVE_CARD)
            else:
                res = call('reconnect', sc.SCardReconnect, card, sc.SCARD_SHARE_SHARED,
                           sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1,
                           rnd.choice([sc.SCARD_LEAVE_CARD, sc.SCARD_RESET_CARD]))
                if res[0] == S_OK:
                    proto = res[1]
        call('disconnect', sc.SCardDisconnect, card,
             rnd.choice([sc.SCARD_LEAVE_CARD, sc.SCARD_LEAVE_CARD, sc.SCARD_RESET_CARD]))
    sc.SCardReleaseContext(ctx)


def controller(sc, stats, stop, seed, events):
    """Card insertions and removals, mute cards, readers lost and back."""
    rnd = random.Random(seed)
    hr, ctx = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
    handles = []
    for name in NAMES:
        hr, h, _ = sc.SCardConnect(ctx, name, sc.SCARD_SHARE_DIRECT, 0)
        if hr != S_OK:
            stats.failures.append(f'DIRECT connect to {name}: {hr:#x}')
            return
        handles.append(h)
    ins, rem, fault = 0x42000000 + 2049, 0x42000000 + 2050, 0x42000000 + 2051

    def ctl(h, code, data):
        hr, _ = sc.SCardControl(h, code, data)
        return hr

    def u32(v):
        return [v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF, (v >> 24) & 0xFF]

    while not stop.wait(rnd.uniform(0.05, 0.3)):
        i = rnd.randrange(len(handles))
        h = handles[i]
        r = rnd.random()
        if r < 0.4:  # pull the card, put it back a moment later
            ctl(h, rem, [])
            stop.wait(rnd.uniform(0.01, 0.2))
            ctl(h, ins, [])
            events['card'] += 1
        elif r < 0.6:  # the card goes mute for a while
            ctl(h, fault, u32(1) + u32(0))
            stop.wait(rnd.uniform(0.05, 0.3))
            ctl(h, fault, u32(0) + u32(0))
            events['mute'] += 1
        elif r < 0.7:  # the reader stops answering, then comes back
            ctl(h, fault, u32(3) + u32(0))
            stop.wait(rnd.uniform(0.05, 0.3))
            ctl(h, fault, u32(4) + u32(0))
            ctl(h, fault, u32(0) + u32(0))
            events['reader'] += 1
        else:  # the card is pulled in the middle of an exchange
            ctl(h, fault, u32(2) + u32(rnd.randrange(1, 200)))
            stop.wait(rnd.uniform(0.05, 0.3))
            ctl(h, fault, u32(0) + u32(0))
            ctl(h, ins, [])
            events['midway'] += 1
    for h in handles:
        sc.SCardDisconnect(h, sc.SCARD_LEAVE_CARD)
    sc.SCardReleaseContext(ctx)


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] if v else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--duration', type=float, default=60)
    ap.add_argument('--build', default=os.path.join(ROOT, 'build', 'release'))
    ap.add_argument('--clients', type=int, default=64)
    ap.add_argument('--seed', type=int, default=1)
    args = ap.parse_args()

    libdir = os.path.join(args.build, 'src', 'client')
    if os.environ.get('SCRM_SOAK_CHILD') != '1':  # pyscard must load this build's library
        env = dict(os.environ, SCRM_SOAK_CHILD='1',
                   LD_LIBRARY_PATH=libdir + ':' + os.environ.get('LD_LIBRARY_PATH', ''))
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    import smartcard.scard as sc  # noqa: E402 (after the library path is set)

    tmp = tempfile.mkdtemp(prefix='scrm-soak-')
    sock, conf, log = (os.path.join(tmp, n) for n in ('scrm.sock', 'scrmd.conf', 'scrmd.log'))
    with open(conf, 'w', encoding='ascii') as f:
        f.write(f'socket = {sock}\ndiscover = false\ndefect_threshold = 1000\nlog = rm:warn\n')
        for r in READERS:
            f.write(f'reader = {r}\n')
    os.environ['SCRM_SOCKET'] = sock
    with open(log, 'wb') as lf:
        proc = subprocess.Popen([os.path.join(args.build, 'src', 'daemon', 'scrmd'), '-f',
                                 '--config', conf], stdout=lf, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while not os.path.exists(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            print(open(log, encoding='utf-8', errors='replace').read())
            sys.exit('soak: scrmd did not start')
        time.sleep(0.05)  # start-up only

    base_threads = daemon_sample(proc.pid)[2]  # idle: one worker, the reserve
    stats, stop = Stats(), threading.Event()
    events = {'card': 0, 'mute': 0, 'reader': 0, 'midway': 0}
    threads = [threading.Thread(target=client, args=(sc, stats, stop, args.seed * 1000 + i))
               for i in range(args.clients)]
    threads.append(threading.Thread(target=controller, args=(sc, stats, stop, args.seed, events)))
    for t in threads:
        t.start()
    samples = []
    loads = []
    start = time.monotonic()
    died = False
    while time.monotonic() - start < args.duration:
        if stop.wait(1.0):
            break
        if proc.poll() is not None:
            died = True
            break
        samples.append((time.monotonic() - start,) + daemon_sample(proc.pid))
        loads.append(os.getloadavg()[0])
    stop.set()
    for t in threads:
        t.join(30)
    hung = [t for t in threads if t.is_alive()]
    # Idle workers leave after 1 s but the reserve: the daemon's thread count comes back to
    # what it was before the load (a leaked or stuck thread would not)
    threads_after = -1
    if proc.poll() is None:
        deadline = time.monotonic() + 15
        while (threads_after := daemon_sample(proc.pid)[2]) > base_threads and \
                time.monotonic() < deadline:
            time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = 'hung at stop'

    # ---- verdict ----
    failures = list(stats.failures)
    if died:
        failures.append(f'scrmd died (status {proc.returncode})')
    if hung:
        failures.append(f'{len(hung)} client thread(s) did not finish')
    if rc not in (0,) and not died:
        failures.append(f'scrmd stop: {rc}')
    n = len(samples)
    growth = []
    if n >= 6:
        mid = samples[n // 3: 2 * n // 3]
        last = samples[2 * n // 3:]
        # threads are shown, not judged by window: the pool follows the load within a second,
        # so its peak per window is no measure of a leak; the count after the load is (below)
        for k, name, allow in ((1, 'RSS KiB', lambda v: v * 0.10 + 2048), (2, 'fds', lambda v: 4),
                               (3, 'threads', None)):
            a, b = max(s[k] for s in mid), max(s[k] for s in last)
            growth.append((name, samples[0][k], a, b))
            if allow and b > a + allow(a):
                failures.append(f'{name} grew after warm-up: {a} -> {b}')

    if threads_after > base_threads:
        failures.append(f'threads did not come back after the load: {threads_after} '
                        f'(before it: {base_threads})')

    total = sum(c[0] for c in stats.calls.values())
    elapsed = samples[-1][0] if samples else 0.0
    print(f'soak: {args.duration:.0f} s asked, {elapsed:.0f} s run, {args.clients} clients, '
          f'8 readers, seed {args.seed}')
    if loads:
        print(f'machine load average during the run: {min(loads):.1f} to {max(loads):.1f}')
    print(f'{"call":<12}{"count":>10}{"p50 ms":>10}{"p99 ms":>10}{"max ms":>10}'
          '   (p50/p99 of the first 200 000 calls of each kind, max of all)')
    for op, (cnt, lat, worst) in sorted(stats.calls.items()):
        print(f'{op:<12}{cnt:>10}{pct(lat, 0.5) * 1e3:>10.2f}{pct(lat, 0.99) * 1e3:>10.2f}'
              f'{worst * 1e3:>10.2f}')
    print(f'{"all":<12}{total:>10}  ({total / elapsed if elapsed else 0:.0f} calls/s)')
    print('result codes: ' + ', '.join(f'{op} {code:#x}: {cnt}' for (op, code), cnt in
                                       sorted(stats.codes.items())))
    print('controller: ' + ', '.join(f'{k} {v}' for k, v in events.items()))
    print(f'{"daemon":<10}{"start":>10}{"2nd third":>12}{"last third":>12}   (max per window)')
    for name, s0, a, b in growth:
        print(f'{name:<10}{s0:>10}{a:>12}{b:>12}')
    print(f'threads before the load {base_threads}, a moment after it {threads_after}')
    if failures:
        uniq = sorted(set(failures))
        print(f'FAIL: {len(failures)} problem(s), {len(uniq)} kind(s):')
        for f in uniq[:30]:
            print('  ' + f)
        print(f'daemon log: {log}')
        sys.exit(1)
    print('PASS')


if __name__ == '__main__':
    main()
