#!/usr/bin/python3
"""Where the threads of a benchmark row ran, from a perf scheduler trace.

Record a row (root; the tracepoints need tracefs mounted on /sys/kernel/tracing):

    perf record -e sched:sched_wakeup,sched:sched_switch -a -o trace.data -- sleep 2

while, for example, `IFD_COMPARE_CLIENTS=2 BENCH_ROUNDS=1 BENCH_ONE_CPU_ROUNDS=0 BENCH_TRIALS=0
BENCH_CONTROL=0 bench/ifd/ifd_compare.sh` runs, then

    bench/ifd/sched_trace.py trace.data [SECONDS_PER_LINE]

prints one line per time slice (default 0.25 s): each CPU's idle time in ms, then for each thread
of the daemons and of the benchmark client (comm starting with scrm, pcscd or ifd_compare) that
ran at least 1 ms in it: name:tid, its ms on each CPU, and how many of its wake-ups came from
another CPU than the one it was woken onto, out of all. A chain of threads (client, daemon
thread, card) all on one CPU shows no such cross-CPU wake-ups and no idle time; a chain split
over the CPUs shows both (docs/ifd-figures.md, 3 December).
"""
import collections
import re
import subprocess
import sys

OURS = ('scrm', 'pcscd', 'ifd_compare')
LINE = re.compile(r'\s*(\S.*?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+sched:(\w+):\s*(.*)')
SWITCH = re.compile(r'prev_comm=(.*?) prev_pid=(\d+) .*==> next_comm=(.*?) next_pid=(\d+)')
WAKEUP = re.compile(r'comm=(.*?) pid=(\d+) prio=-?\d+ target_cpu=(\d+)')


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    step = float(sys.argv[2]) if len(sys.argv) > 2 else 0.25
    out = subprocess.run(['perf', 'script', '-i', sys.argv[1],
                          '-F', 'comm,tid,cpu,time,event,trace'],
                         capture_output=True, text=True, check=True).stdout
    names = {}
    on_cpu = {}  # cpu -> (tid, since)
    # tid -> slice -> cpu -> s
    ran = collections.defaultdict(lambda: collections.defaultdict(collections.Counter))
    idle = collections.defaultdict(collections.Counter)  # slice -> cpu -> s
    woken = collections.defaultdict(collections.Counter)  # tid -> slice -> wake-ups
    crossed = collections.defaultdict(collections.Counter)
    cpus = set()
    t0 = None
    for line in out.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        _comm, _tid, cpu, t, event, rest = m.groups()
        cpu, t = int(cpu), float(t)
        cpus.add(cpu)
        t0 = t if t0 is None else t0
        s = int((t - t0) / step)
        if event == 'sched_switch':
            sm = SWITCH.search(rest)
            if not sm:
                continue
            prev, nxt = int(sm.group(2)), int(sm.group(4))
            names[prev], names[nxt] = sm.group(1), sm.group(3)
            if cpu in on_cpu:
                tid, since = on_cpu[cpu]
                if tid == 0:
                    idle[s][cpu] += t - since
                else:
                    ran[tid][s][cpu] += t - since
            on_cpu[cpu] = (nxt, t)
        elif event == 'sched_wakeup':
            wm = WAKEUP.search(rest)
            if not wm:
                continue
            tid = int(wm.group(2))
            names[tid] = wm.group(1)
            woken[tid][s] += 1
            if int(wm.group(3)) != cpu:
                crossed[tid][s] += 1
    if t0 is None:
        sys.exit('no scheduler events in ' + sys.argv[1])
    cpus = sorted(cpus)
    ours = sorted(t for t in ran if names.get(t, '').startswith(OURS))
    last = max(idle) if idle else 0
    print(f'slice ({step} s)  idle ms per CPU {cpus}  |  '
          'name:tid ms per CPU, cross-CPU/all wake-ups')
    for s in range(last + 1):
        cols = [f'{s:4}  ' + ' '.join(f'{idle[s][c] * 1e3:5.0f}' for c in cpus) + '  |']
        for tid in ours:
            per = ran[tid][s]
            if sum(per.values()) < 0.001:
                continue
            ms = '/'.join(f'{per[c] * 1e3:.0f}' for c in cpus)
            cols.append(f'{names[tid][:6]}:{tid} {ms},{crossed[tid][s]}/{woken[tid][s]}')
        print(' '.join(cols))


if __name__ == '__main__':
    main()
