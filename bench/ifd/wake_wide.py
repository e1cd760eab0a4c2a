#!/usr/bin/python3
"""Which wake-ups of a benchmark row Linux treated as "wide", from a perf scheduler trace.

When a thread wakes another, Linux (kernel/sched/fair.c) counts for the waker how often it
woke a different thread than the time before ("wakee flips", halved at most once a second) and
calls the wake-up wide when the smaller of the two threads' counts is at least the number of
CPUs sharing the last-level cache and the larger at least that many times the smaller. A wide
wake-up puts the woken thread back on the CPU it last ran on unless another CPU is idle; only a
wake-up that is not wide may move it next to its waker (wake-affine). This script replays that
rule over the `sched_waking` events of a trace, which fire in the waker's own context (unlike
`sched_wakeup`, which fires on the woken thread's CPU and names whatever ran there).

Record (root):

    perf record -e sched:sched_waking,sched:sched_wakeup,sched:sched_switch -a -o trace.data \\
        -- bench/ifd/ab.sh        (or ifd_compare.sh with IFD_COMPARE_CLIENTS=2 ...)

then

    bench/ifd/wake_wide.py trace.data [SECONDS_PER_LINE] [LLC_CPUS]

prints one line per time slice (default 0.25 s; LLC_CPUS default 2): how many wake-ups between
daemon and benchmark threads (comm starting with scrm, pcscd or ifd_compare) there were, how
many of them were not wide, the share that crossed CPUs, and the range of the wakee-flip count
of each client or card thread woken more than 20 times in the slice. docs/ifd-figures.md (3
December, 06:35) says what it showed.
"""
import collections
import re
import subprocess
import sys

OURS = ('scrm', 'pcscd', 'ifd_compare')
DAEMON = ('scrm', 'pcscd')
LINE = re.compile(r'\s*(\S.*?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+sched:(\w+):\s*(.*)')
SWITCH = re.compile(r'prev_comm=(.*?) prev_pid=(\d+) prev_prio=\S+ prev_state=(\S+) ==> '
                    r'next_comm=(.*?) next_pid=(\d+)')
WAKE = re.compile(r'comm=(.*?) pid=(\d+) prio=(-?\d+) target_cpu=(\d+)')


class Flips:
    """record_wakee() and wake_wide() of kernel/sched/fair.c, per thread id."""

    def __init__(self, llc):
        self.llc = llc
        self.count = collections.Counter()
        self.decayed = {}
        self.last = {}

    def wake(self, waker, wakee, t):
        if waker not in self.decayed or t > self.decayed[waker] + 1.0:
            if waker in self.decayed:
                self.count[waker] >>= 1
            self.decayed[waker] = t
        if self.last.get(waker) != wakee:
            self.last[waker] = wakee
            self.count[waker] += 1
        hi = max(self.count[waker], self.count[wakee])
        lo = min(self.count[waker], self.count[wakee])
        return not (lo < self.llc or hi < lo * self.llc)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    step = float(sys.argv[2]) if len(sys.argv) > 2 else 0.25
    flips = Flips(int(sys.argv[3]) if len(sys.argv) > 3 else 2)
    out = subprocess.run(['perf', 'script', '-i', sys.argv[1],
                          '-F', 'comm,tid,cpu,time,event,trace'],
                         capture_output=True, text=True, check=True).stdout
    names, sleeping = {}, set()
    pending = {}  # wakee -> (waker, waker's cpu) of a waking that went through the fair class
    stats = collections.defaultdict(collections.Counter)
    seen = collections.defaultdict(lambda: collections.defaultdict(list))
    t0 = None

    def ours(tid):
        return names.get(tid, '').startswith(OURS)

    for line in out.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        comm, tid, cpu, t, event, rest = m.groups()
        tid, cpu, t = int(tid), int(cpu), float(t)
        t0 = t if t0 is None else t0
        s = int((t - t0) / step)
        names[tid] = comm
        if event == 'sched_switch':
            sm = SWITCH.search(rest)
            if sm:
                names[int(sm.group(2))] = sm.group(1)
                names[int(sm.group(5))] = sm.group(4)
                if not sm.group(3).startswith('R'):
                    sleeping.add(int(sm.group(2)))
            continue
        wm = WAKE.search(rest)
        if not wm:
            continue
        wakee = int(wm.group(2))
        names[wakee] = wm.group(1)
        if event == 'sched_waking':
            # a thread still queued is not placed again, and a real-time one is placed by
            # another rule: neither goes through record_wakee()
            if wakee not in sleeping or int(wm.group(3)) < 100:
                continue
            wide = flips.wake(tid, wakee, t)
            if ours(tid) and ours(wakee):
                stats[s]['n'] += 1
                stats[s]['wide'] += wide
                pending[wakee] = cpu
                seen[s][wakee].append(flips.count[wakee])
        elif event == 'sched_wakeup':
            sleeping.discard(wakee)
            waker_cpu = pending.pop(wakee, None)
            if waker_cpu is not None:
                stats[s]['cross'] += int(wm.group(4)) != waker_cpu
    print(f'slice ({step} s)  wake-ups  not wide  crossed  |  client/card thread:tid flips min-max')
    for s in sorted(stats):
        c = stats[s]
        threads = ' '.join(f'{names[w][:11]}:{w} {min(v)}-{max(v)}'
                           for w, v in sorted(seen[s].items())
                           if not names[w].startswith(DAEMON) and len(v) > 20)
        print(f'{s * step:7.2f}  {c["n"]:8d}  {c["n"] - c["wide"]:8d}  '
              f'{c["cross"] / c["n"]:7.2f}  |  {threads}')


if __name__ == '__main__':
    main()
