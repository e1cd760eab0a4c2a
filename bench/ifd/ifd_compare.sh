#!/bin/sh
# The IFD-bridge figures (`make bench`, or `make bench-ifd` alone): the same driver binary and the
# same card behind both daemons, both running at once in one run:
#   scrm:  scrmd (BUILDDIR) + the ifd: bridge + Debian's libifdvpcd.so + the C card of ifd_compare
#   pcscd: Debian's pcscd + libifdvpcd.so (a private reader.conf directory) + the same card
# Everything runs in a private mount and network namespace (vpcd listens on 0.0.0.0 on fixed ports;
# a tmpfs covers /run/pcscd), so the machine's pcscd and network are not touched. Root only.
#
#   bench/ifd/ifd_compare.sh [BUILDDIR]      (default build/release)
#
# The APDU rows run in rounds: each round measures every row on both daemons back to back, the
# order of the two alternating from round to round, and the table gives each figure's median over
# the rounds, with the range of the per-round ratios and the rounds scrm was ahead in. A second
# pass pins both daemons and the clients to one CPU: no wake-up then crosses CPUs, so its rates
# do not depend on where the scheduler happens to place each client's chain of threads (the main
# source of the spread between rounds on a small machine).
# Environment: BENCH_SECONDS per APDU row (default 2), BENCH_ROUNDS (default 7),
# BENCH_ONE_CPU_ROUNDS (default 5, 0: no one-CPU pass), BENCH_TRIALS insertions/removals (default
# 30), IFD_OPTS appended to scrm's ifd: device string (e.g. ",watchdog=0"), IFD_COMPARE_SCRMD
# another scrmd binary (an older build, for before/after figures), IFD_COMPARE_CLIENTS=N only the
# APDU row of N clients (1, 2 or 8), IFD_COMPARE_KEEP=DIR a directory to copy the raw figures and
# the daemons' logs to, IFD_COMPARE_SLICES=1 each APDU row's rate per quarter second in the raw
# figures ("apdu_slices" lines: whether a rate held through the row or moved between levels),
# BENCH_CONTROL=0 no control runs (below: pcscd measured twice per round on both CPUs).
# Besides rates and latencies it prints, per APDU, the voluntary context switches (a thread blocked)
# and CPU time of each daemon (all its threads) and of the client process (clients + card): counts
# that do not depend on the machine's load, unlike the rates.
set -eu
B=$(cd "${1:-build/release}" && pwd)
. "$(dirname "$0")/lib.sh"
ifd_bench_setup ifd_compare "$0" "$B"
SPORT=35963 # scrm's vpcd slots: this port and the next
PPORT=35973 # pcscd's
SEC=${BENCH_SECONDS:-2}
ROUNDS=${BENCH_ROUNDS:-7}
ONE_ROUNDS=${BENCH_ONE_CPU_ROUNDS:-5}
TRIALS=${BENCH_TRIALS:-30}
ROWS=${IFD_COMPARE_CLIENTS:-1 2 8}
CLIENT=$B/bench/ifd/ifd_compare
R0="Virtual PCD 00 00"
R1="Virtual PCD 00 01"
NCPU=$(nproc)

ifd_scrmd_conf "$D/scrmd.conf" "$D/scrm.sock" $SPORT "${IFD_OPTS:-}"
"${IFD_COMPARE_SCRMD:-$B/src/daemon/scrmd}" -f --config "$D/scrmd.conf" >"$D/scrmd.log" 2>&1 &
S=$!
ifd_pcscd_conf $PPORT
"$PCSCD" -f -c "$D/conf" >"$D/pcscd.log" 2>&1 &
P=$!
trap 'kill $S $P 2>/dev/null || true' EXIT
ifd_wait_socket ifd_compare "$D/scrm.sock" $S
ifd_wait_socket ifd_compare /run/pcscd/pcscd.comm $P

# side, clients (0: none), trials, tag: one run of the client binary against one daemon, its lines
# tagged and appended to that daemon's file
run() {
    if [ "$1" = scrm ]; then
        IFD_COMPARE_CLIENTS=$2 IFD_COMPARE_PID=$S SCRM_SOCKET=$D/scrm.sock \
            LD_LIBRARY_PATH=$B/src/client $PIN "$CLIENT" $SPORT "$R0" "$R1" "$SEC" "$3" >"$D/out" ||
            { echo "ifd_compare: the run against scrmd failed"; cat "$D/out" "$D/scrmd.log"; exit 1; }
    else
        IFD_COMPARE_CLIENTS=$2 IFD_COMPARE_PID=$P PCSCLITE_CSOCK_NAME=/run/pcscd/pcscd.comm \
            $PIN "$CLIENT" $PPORT "$R0" "$R1" "$SEC" "$3" >"$D/out" ||
            { echo "ifd_compare: the run against pcscd failed"; cat "$D/out" "$D/pcscd.log"; exit 1; }
    fi
    sed "s/^/$4 /" "$D/out" >>"$D/$1.txt"
}

# With control 1, pcscd is measured a second time next to its first run in every round (tagged
# "again"): the spread of pcscd's ratio to itself is what two identical daemons differ by on this
# machine, the yardstick for the scrm/pcscd ratio of the same rows.
rounds() { # pass name, number of rounds, control (0 or 1)
    r=1
    while [ "$r" -le "$2" ]; do
        for n in $ROWS; do
            if [ $((r % 2)) = 1 ]; then
                run scrm "$n" 0 "$1"; run pcscd "$n" 0 "$1"
                [ "$3" = 0 ] || run pcscd "$n" 0 again
            else
                [ "$3" = 0 ] || run pcscd "$n" 0 again
                run pcscd "$n" 0 "$1"; run scrm "$n" 0 "$1"
            fi
        done
        r=$((r + 1))
    done
}

PIN=
rounds all "$ROUNDS" "${BENCH_CONTROL:-1}"
if [ "$ONE_ROUNDS" -gt 0 ]; then
    taskset -a -p -c 0 $S >/dev/null
    taskset -a -p -c 0 $P >/dev/null
    PIN="taskset -c 0"
    rounds one "$ONE_ROUNDS" 0
    PIN=
    taskset -a -p -c "0-$((NCPU - 1))" $S >/dev/null
    taskset -a -p -c "0-$((NCPU - 1))" $P >/dev/null
fi
if [ "$TRIALS" -gt 0 ]; then
    run scrm 0 "$TRIALS" ev
    run pcscd 0 "$TRIALS" ev
fi
kill -TERM $S $P # (SIGINT is ignored by a background job of sh)
wait $S || true
wait $P || true
trap - EXIT

/usr/bin/python3 - "$D/scrm.txt" "$D/pcscd.txt" "$ROUNDS" "$ONE_ROUNDS" "$NCPU" <<'PY'
import statistics
import sys


def load(p):
    rows = {}  # (pass, kind, clients) -> list of key=value dicts, one per round
    for line in open(p):
        w = line.split()
        kv = dict(x.split('=', 1) for x in w[2:])
        rows.setdefault((w[0], w[1], kv.get('clients', '')), []).append(kv)
    return rows


s, p = load(sys.argv[1]), load(sys.argv[2])
med = statistics.median
print('IFD bridge: scrmd + ifd: + libifdvpcd.so  vs  pcscd 1.9.9 + libifdvpcd.so (same C card)')


def header(title):
    print()
    print(title)
    print(f'| {"figure":34} | {"scrm":>10} | {"pcscd":>10} | {"scrm/pcscd":>10} | rounds: ratios, scrm ahead |')
    print('|' + '-' * 36 + '|' + '-' * 12 + '|' + '-' * 12 + '|' + '-' * 12 + '|' + '-' * 28 + '|')


def row(name, a, b, better_high, per_round=None):
    a, b = float(a), float(b)
    r = (a / b if better_high else b / a) if a and b else 0
    extra = ''
    if per_round:  # the ratio is then the median of the rounds' own ratios
        r = med(per_round)
        extra = (f'{min(per_round):.2f}-{max(per_round):.2f}, '
                 f'{sum(x >= 1 for x in per_round)}/{len(per_round)}')
    print(f'| {name:34} | {a:10.2f} | {b:10.2f} | {r:9.2f}x | {extra:26} |')


def rate_ratios(a, b):
    """Round by round, the rate of a's run against b's."""
    return [float(x['rate']) / float(y['rate']) for x, y in zip(a, b) if float(y['rate'])]


def apdu_table(pas, title):
    if not any(k[0] == pas for k in s):
        return
    header(title)
    for n in ('1', '2', '8'):
        k = (pas, 'apdu', n)
        if k not in s or k not in p:
            continue  # IFD_COMPARE_CLIENTS chose another row
        a, b = s[k], p[k]

        def m(rows, key):
            return med(float(x[key]) for x in rows)
        row(f'APDU/s, {n} client(s)', m(a, 'rate'), m(b, 'rate'), True, rate_ratios(a, b))
        c = p.get(('again', 'apdu', n)) if pas == 'all' else None
        if c:  # pcscd against itself, in the same rounds: the machine's own spread
            row(f'  control: pcscd again, {n}', m(c, 'rate'), m(b, 'rate'), True,
                rate_ratios(c, b))
        row(f'APDU p50 us, {n} client(s)', m(a, 'p50_us'), m(b, 'p50_us'), False)
        row(f'APDU p99 us, {n} client(s)', m(a, 'p99_us'), m(b, 'p99_us'), False)
        if all('d_csw' in x for x in a + b):
            row(f'  daemon blocking waits/APDU, {n}', m(a, 'd_csw'), m(b, 'd_csw'), False)
            row(f'  daemon CPU us/APDU, {n}', m(a, 'd_cpu_us'), m(b, 'd_cpu_us'), False)
            row(f'  client blocking waits/APDU, {n}', m(a, 'c_csw'), m(b, 'c_csw'), False)
            row(f'  client CPU us/APDU, {n}', m(a, 'c_cpu_us'), m(b, 'c_cpu_us'), False)


apdu_table('all', f'APDU rows: medians of {sys.argv[3]} rounds, all {sys.argv[5]} CPUs')
apdu_table('one', f'APDU rows pinned to one CPU: medians of {sys.argv[4]} rounds')
if ('ev', 'insert', '') in s and ('ev', 'insert', '') in p:
    header('Card events')
    for ev in ('insert', 'remove'):
        for q in ('p50_ms', 'p99_ms'):
            row(f'{ev} -> GetStatusChange {q}', s[('ev', ev, '')][0][q], p[('ev', ev, '')][0][q],
                False)
    print(f'(insert/remove trials: scrm {s[("ev", "insert", "")][0]["trials"]}, '
          f'pcscd {p[("ev", "insert", "")][0]["trials"]})')
print('ratio > 1: scrm better; an APDU/s ratio is the median of the per-round ratios (each round '
      'measures both daemons back to back); "scrm ahead": rounds in which scrm had at least '
      'pcscd\'s rate; a control row is pcscd\'s second run of the round against its first (in its '
      '"scrm" column): what the same daemon differs by from run to run here')
PY
if [ -n "${IFD_COMPARE_KEEP:-}" ]; then
    cp "$D/scrm.txt" "$D/pcscd.txt" "$D/scrmd.log" "$D/pcscd.log" "$IFD_COMPARE_KEEP"/
fi
rm -rf "$D"
