#!/usr/bin/python3
"""`make bench-compare`: pcscd and scrmd side by side, the same cards behind each, the same client.

Runs as root. The script re-executes itself in a private mount and network namespace
(`unshare -m -n`, loopback brought up), so nothing here touches the machine's pcscd, /run/pcscd,
or its ports: a tmpfs covers /run/pcscd, and every TCP port is inside the private namespace.

  * pcscd: Debian's, with vsmartcard's libifdvpcd.so loaded from a private reader.conf directory
    (`pcscd -f -c DIR`), entries of 2 slots each on ports BASE, BASE+1, ...;
  * scrmd: build/release, readers `vpcd:127.0.0.1:PORT` on the same ports;
  * cards: stock `vicc -t iso7816`; the fast C card bench/compare/vpcd_card (answers at once, like
    any card program); the same with TCP_QUICKACK, which spares pcsc-lite's vpcd the delayed-ACK
    wait its two writes per message cause;
  * client: bench/compare/pcsc_compare, linked against the system's libpcsclite.so.1; for scrm
    the same binary runs with LD_LIBRARY_PATH pointing at scrm's library.

Idle memory and threads are measured with 16 readers. Everything else runs with 2 readers, the most
libifdvpcd can serve in one pcscd: it keeps its state per slot number in globals, so of several
reader.conf entries only the last one's two slots work. APDU rows: a card in each reader, 1, 2
or 8 client threads spread over the two (each its own context and SCardConnect, shared mode); the
best of 3 rounds. Control rows: both daemons up at once, 3 rounds alternating between them, each
call on its own (5 slices, the best counts). Everything runs at nice -15, the same for both.

One daemon runs at a time. Prints one table of figures and ratios (> 1 means scrm is better) and
writes it as Markdown to build/release/bench-compare.md.

Environment: BENCH_SECONDS (per APDU and control row, default 3), BENCH_TRIALS (insertions and
removals, default 50).
"""
import datetime
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, 'build', 'release')
SCRMD = os.path.join(BUILD, 'src', 'daemon', 'scrmd')
LIBDIR = os.path.join(BUILD, 'src', 'client')
CLIENT = os.path.join(BUILD, 'bench', 'compare', 'pcsc_compare')
CARD = os.path.join(BUILD, 'bench', 'compare', 'vpcd_card')
VPCD_SO = '/usr/lib/pcsc/drivers/serial/libifdvpcd.so'
PCSCD = shutil.which('pcscd') or '/usr/sbin/pcscd'
READERS = 16
BASE = 35963  # inside the private network namespace nothing else listens
SECONDS = float(os.environ.get('BENCH_SECONDS', '3'))
TRIALS = int(os.environ.get('BENCH_TRIALS', '50'))
CLIENTS = (1, 2, 8)

sys.path.insert(0, os.path.join(ROOT, 'tests', 'interop'))
import vicc  # noqa: E402  (the test helpers start vicc with Debian's workarounds)


def log(msg):
    print(f'-- {msg}', file=sys.stderr, flush=True)


def kv(text):
    """The key=value pairs of the client's last output line."""
    line = text.strip().splitlines()[-1]
    return dict(p.split('=', 1) for p in line.split())


class Side:
    """One daemon with its 16 readers: how to start it and how the client reaches it."""

    def __init__(self, name, tmp, readers):
        self.name = name
        self.count = readers
        self.tmp = tempfile.mkdtemp(prefix=name + '-', dir=tmp)
        self.proc = None
        self.env = dict(os.environ)
        self.ports = {}  # reader name -> port

    def client(self, *args, timeout=600):
        out = subprocess.run([CLIENT] + [str(a) for a in args], env=self.env, capture_output=True,
                             text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f'{self.name}: pcsc_compare {" ".join(map(str, args))}: '
                               f'{out.stderr.strip()}\n{self.log_tail()}')
        return out.stdout

    def log_tail(self):
        try:
            with open(os.path.join(self.tmp, 'daemon.log'), errors='replace') as f:
                return ''.join(f.readlines()[-20:])
        except OSError:
            return ''

    def wait_socket(self, path):
        end = time.monotonic() + 30
        while not os.path.exists(path):
            if self.proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f'{self.name} did not start:\n{self.log_tail()}')
            time.sleep(0.02)

    def start_readers(self):
        out = self.client('wait', self.count)
        names = re.findall(r'^reader=(.*)$', out, re.M)
        for n in names:
            self.ports[n] = self.port_of(n)
        self.readers = sorted(names, key=lambda n: self.ports[n])
        assert len(self.readers) == self.count, names

    def idle(self):
        status = open(f'/proc/{self.proc.pid}/status').read()
        rss = int(re.search(r'VmRSS:\s+(\d+)', status).group(1))
        threads = int(re.search(r'Threads:\s+(\d+)', status).group(1))
        return rss, threads

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Pcscd(Side):
    def __init__(self, tmp, readers, base=BASE):
        super().__init__('pcscd', tmp, readers)
        conf = os.path.join(self.tmp, 'reader.conf.d')
        os.makedirs(conf)
        for i in range(readers // 2):  # libifdvpcd: 2 slots per entry, on port and port + 1
            port = base + 2 * i
            with open(os.path.join(conf, f'vpcd{i:02d}'), 'w') as f:
                f.write(f'FRIENDLYNAME "vpcd {port}"\nDEVICENAME /dev/null:{port}\n'
                        f'LIBPATH {VPCD_SO}\nCHANNELID {port}\n')
        self.env['PCSCLITE_CSOCK_NAME'] = '/run/pcscd/pcscd.comm'
        with open(os.path.join(self.tmp, 'daemon.log'), 'wb') as logf:
            self.proc = subprocess.Popen([PCSCD, '-f', '-c', conf], stdout=logf,
                                         stderr=subprocess.STDOUT)
        self.wait_socket('/run/pcscd/pcscd.comm')
        self.start_readers()

    @staticmethod
    def port_of(name):  # "vpcd 35963 00 01": the entry's port + the slot
        m = re.fullmatch(r'vpcd (\d+) [0-9A-F]{2} ([0-9A-F]{2})', name)
        return int(m.group(1)) + int(m.group(2), 16)


class Scrm(Side):
    def __init__(self, tmp, readers, base=BASE):
        super().__init__('scrm', tmp, readers)
        sock = os.path.join(self.tmp, 'scrm.sock')
        conf = os.path.join(self.tmp, 'scrmd.conf')
        with open(conf, 'w') as f:
            f.write(f'socket = {sock}\ndiscover = false\n')
            for i in range(readers):
                f.write(f'reader = vpcd:127.0.0.1:{base + i}\n')
        self.env['SCRM_SOCKET'] = sock
        self.env['LD_LIBRARY_PATH'] = LIBDIR
        with open(os.path.join(self.tmp, 'daemon.log'), 'wb') as logf:
            self.proc = subprocess.Popen([SCRMD, '-f', '--config', conf], stdout=logf,
                                         stderr=subprocess.STDOUT)
        self.wait_socket(sock)
        self.start_readers()

    @staticmethod
    def port_of(name):  # "Virtual PCD 35963"
        return int(re.fullmatch(r'Virtual PCD (\d+)', name).group(1))


def wait_listening(port, timeout=30):
    want = f':{port:04X}'
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with open('/proc/net/tcp') as f:
            if any(l.split()[1].endswith(want) and l.split()[3] == '0A' for l in f.readlines()[1:]):
                return
        time.sleep(0.02)
    raise RuntimeError(f'nothing listens on port {port}')


def apdu_rows(side, start_card, label, res):
    """A card in each of the 2 readers, then 1, 2 and 8 clients spread over them (shared
    mode, one SCardConnect per client)."""
    readers = side.readers
    cards = []
    try:
        for r in readers:
            wait_listening(side.ports[r])
            cards.append(start_card(side.ports[r]))
        side.client('present', *readers)
        for n in CLIENTS:
            log(f'{side.name}: {label}, {n} client(s)')
            # The best of 3 rounds (a shared machine slows some rounds down).
            runs = [kv(side.client('apdu', SECONDS / 3,
                                   *[readers[i % len(readers)] for i in range(n)]))
                    for _ in range(3)]
            res[f'{label} {n}'] = max(runs, key=lambda r: float(r['rate']))
    finally:
        for c in cards:
            c.stop()
    side.client('absent', *readers)


class FastCard:
    quickack = False

    def __init__(self, port):
        self.proc = subprocess.Popen([CARD] + (['-q'] if self.quickack else []) + [str(port)])

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class QuickAckCard(FastCard):
    quickack = True


class ViccCard:
    def __init__(self, port):
        self.v = vicc.Vicc(port)

    def stop(self):
        self.v.close()


def measure(cls, tmp):
    """Idle figures with 16 readers, then everything else with 2 (pcsc-lite's vpcd keeps its
    state per slot number in globals: of several reader.conf entries only the last one's 2 slots
    work, so 2 readers is what pcscd can serve)."""
    res = {}
    side = cls(tmp, READERS)
    try:
        time.sleep(1)  # let start-up work settle before the idle figures
        res['idle'] = side.idle()
    finally:
        side.stop()
    side = cls(tmp, 2)
    try:
        apdu_rows(side, ViccCard, 'vicc', res)
        apdu_rows(side, FastCard, 'fast', res)
        apdu_rows(side, QuickAckCard, 'quickack', res)
        last = side.readers[-1]
        log(f'{side.name}: {TRIALS} insertions and removals')
        res['events'] = kv(side.client('events', last, side.ports[last], TRIALS))
    finally:
        side.stop()
    return res


def control_rows(tmp, p, s):
    """Both daemons up at once (2 readers each), control-path rounds alternating between them, so
    that both see the same load of the machine; the best round of each counts."""
    sides = [Pcscd(tmp, 2), Scrm(tmp, 2, BASE + 100)]
    try:
        for rnd in range(3):
            for side, res in zip(sides, (p, s)):
                log(f'{side.name}: control path, round {rnd + 1}')
                got = kv(side.client('control', SECONDS / 3))
                for k in ('establish', 'list', 'gsc0'):
                    old = res.setdefault('control', {}).get(k, '0')
                    res['control'][k] = str(max(float(old), float(got[k])))
    finally:
        for side in sides:
            side.stop()


def table(p, s):
    rows = []

    def add(label, a, b, unit, higher_better):
        ratio = (b / a if higher_better else a / b) if a and b else float('nan')
        rows.append((label, a, b, unit, ratio))

    for kind, what in (('vicc', 'stock vicc'), ('fast', 'fast C card'),
                       ('quickack', 'fast C card + TCP_QUICKACK')):
        for n in CLIENTS:
            k = f'{kind} {n}'
            add(f'APDU/s, {what}, {n} client{"s" if n > 1 else ""}', float(p[k]['rate']),
                float(s[k]['rate']), '/s', True)
            add('  round trip p50', float(p[k]['p50']) / 1000, float(s[k]['p50']) / 1000, 'ms',
                False)
    e1, e2 = p['events'], s['events']
    for key, label in (('insert_p50', 'insertion -> GetStatusChange p50'),
                       ('insert_p99', 'insertion -> GetStatusChange p99'),
                       ('remove_p50', 'removal -> GetStatusChange p50'),
                       ('remove_p99', 'removal -> GetStatusChange p99')):
        add(label, float(e1[key]), float(e2[key]), 'ms', False)
    c1, c2 = p['control'], s['control']
    add('SCardEstablishContext+Release', float(c1['establish']), float(c2['establish']), '/s',
        True)
    add('SCardListReaders', float(c1['list']), float(c2['list']), '/s', True)
    add('SCardGetStatusChange(0), 2 readers', float(c1['gsc0']), float(c2['gsc0']), '/s', True)
    add('daemon RSS, idle, 16 readers', p['idle'][0], s['idle'][0], 'KiB', False)
    add('daemon threads, idle, 16 readers', p['idle'][1], s['idle'][1], '', False)
    return rows


def fmt(v):
    if isinstance(v, int) or v >= 100:
        return f'{v:,.0f}'
    return f'{v:.3g}' if v < 1 else f'{v:.1f}'


def machine():
    cpu = ''
    try:
        cpu = re.search(r'model name\s*:\s*(.*)', open('/proc/cpuinfo').read()).group(1)
    except (OSError, AttributeError):
        pass
    return f'{cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}'


def main():
    if os.geteuid() != 0:
        sys.exit('bench-compare needs root (private mount and network namespaces for pcscd)')
    for f, what in ((SCRMD, 'scrmd (make release)'), (CLIENT, 'pcsc_compare (libpcsclite-dev)'),
                    (CARD, 'vpcd_card'), (VPCD_SO, 'vsmartcard-vpcd'), (PCSCD, 'pcscd')):
        if not os.path.exists(f):
            sys.exit(f'bench-compare: {f} missing: {what}')
    if vicc.missing():
        sys.exit(f'bench-compare: {vicc.missing()}')
    if os.environ.get('SCRM_COMPARE_NS') != '1':
        env = dict(os.environ, SCRM_COMPARE_NS='1')
        os.execvpe('unshare', ['unshare', '-m', '-n', '--propagation', 'private',
                               sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env)
    subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True)
    # The same higher priority for everything of both sides (daemons, cards, client): on a shared
    # machine the figures then measure the daemons rather than the other load.
    os.nice(-15)
    os.makedirs('/run/pcscd', exist_ok=True)
    subprocess.run(['mount', '-t', 'tmpfs', 'tmpfs', '/run/pcscd'], check=True)
    tmp = tempfile.mkdtemp(prefix='scrm-compare-')
    try:
        log('pcscd + libifdvpcd')
        p = measure(Pcscd, tmp)
        log('scrmd + vpcd driver')
        s = measure(Scrm, tmp)
        control_rows(tmp, p, s)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = table(p, s)
    when = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    head = (f'bench-compare, {when}; {machine()}; {SECONDS:g} s per APDU/control row, '
            f'{TRIALS} insertions/removals; ratio > 1: scrm better')
    w = max(len(r[0]) for r in rows)
    print(head)
    print(f'{"":{w}}  {"pcscd":>12}  {"scrm":>12}  {"unit":4}  {"ratio":>8}')
    for label, a, b, unit, ratio in rows:
        print(f'{label:{w}}  {fmt(a):>12}  {fmt(b):>12}  {unit:4}  {ratio:>7.2f}x')
    md = [head, '', '| | pcscd | scrm | unit | ratio |', '|---|---:|---:|---|---:|']
    md += [f'| {label.strip()} | {fmt(a)} | {fmt(b)} | {unit} | {ratio:.2f}× |'
           for label, a, b, unit, ratio in rows]
    with open(os.path.join(BUILD, 'bench-compare.md'), 'w') as f:
        f.write('\n'.join(md) + '\n')


if __name__ == '__main__':
    main()
