#!/bin/sh
# The IFD-bridge figures (`make bench`, or `make bench-ifd` alone): the same driver binary and the
# same card behind both daemons, one after the other in one run:
#   scrm:  scrmd (BUILDDIR) + the ifd: bridge + Debian's libifdvpcd.so + the C card of ifd_compare
#   pcscd: Debian's pcscd + libifdvpcd.so (a private reader.conf directory) + the same card
# Everything runs in a private mount and network namespace (vpcd listens on 0.0.0.0 on fixed ports;
# a tmpfs covers /run/pcscd), so the machine's pcscd and network are not touched. Root only.
#
#   bench/ifd/ifd_compare.sh [BUILDDIR]      (default build/release)
# Environment: BENCH_SECONDS per APDU row (default 3), BENCH_TRIALS insertions/removals (default 30),
# IFD_OPTS appended to scrm's ifd: device string (e.g. ",watchdog=0"), IFD_COMPARE_SCRMD another
# scrmd binary (an older build, for before/after figures), IFD_COMPARE_CLIENTS=N only the APDU row
# of N clients (1, 2 or 8).
# Besides rates and latencies it prints, per APDU, the voluntary context switches (a thread blocked)
# and CPU time of each daemon
# (all its threads) and of the client process (clients + card): counts that do not depend on the
# machine's load, unlike the rates.
set -eu
B=$(cd "${1:-build/release}" && pwd)
if [ "$(id -u)" != 0 ]; then
    echo "ifd_compare: needs root (private namespaces); skipped"
    exit 0
fi
if [ -z "${IFD_COMPARE_NS:-}" ]; then
    exec env IFD_COMPARE_NS=1 unshare -m -n --propagation private "$0" "$B"
fi
VPCD=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
PCSCD=$(command -v pcscd || echo /usr/sbin/pcscd)
[ -f "$VPCD" ] && [ -x "$PCSCD" ] || { echo "ifd_compare: needs pcscd and vsmartcard-vpcd"; exit 0; }
ip link set lo up
D=$(mktemp -d)
mkdir -p /run/pcscd "$D/conf"
mount -t tmpfs tmpfs /run/pcscd
PORT=35963
SEC=${BENCH_SECONDS:-3}
TRIALS=${BENCH_TRIALS:-30}
CLIENT=$B/bench/ifd/ifd_compare
R0="Virtual PCD 00 00"
R1="Virtual PCD 00 01"

wait_socket() { # path, pid: bounded wait for a daemon's socket
    i=0
    while [ ! -S "$1" ]; do
        kill -0 "$2" 2>/dev/null || { echo "ifd_compare: daemon died"; cat "$D"/*.log; exit 1; }
        i=$((i + 1)); [ $i -lt 400 ] || { echo "ifd_compare: no socket $1"; exit 1; }
        sleep 0.05
    done
}

cat >"$D/scrmd.conf" <<CONF
socket = $D/scrm.sock
discover = false
reader = ifd:vpcd:lib=$VPCD,device=/dev/null:$PORT,name=Virtual%20PCD${IFD_OPTS:-}
CONF
"${IFD_COMPARE_SCRMD:-$B/src/daemon/scrmd}" -f --config "$D/scrmd.conf" >"$D/scrmd.log" 2>&1 &
S=$!
wait_socket "$D/scrm.sock" $S
IFD_COMPARE_PID=$S SCRM_SOCKET=$D/scrm.sock LD_LIBRARY_PATH=$B/src/client "$CLIENT" $PORT "$R0" "$R1" "$SEC" "$TRIALS" >"$D/scrm.txt"
kill $S; wait $S || true

printf 'FRIENDLYNAME "Virtual PCD"\nDEVICENAME /dev/null:%d\nLIBPATH %s\n' $PORT "$VPCD" >"$D/conf/vpcd"
"$PCSCD" -f -c "$D/conf" >"$D/pcscd.log" 2>&1 &
P=$!
wait_socket /run/pcscd/pcscd.comm $P
IFD_COMPARE_PID=$P PCSCLITE_CSOCK_NAME=/run/pcscd/pcscd.comm "$CLIENT" $PORT "$R0" "$R1" "$SEC" "$TRIALS" >"$D/pcscd.txt"
kill -TERM $P; wait $P || true  # (SIGINT is ignored by a background job of sh)

/usr/bin/python3 - "$D/scrm.txt" "$D/pcscd.txt" <<'PY'
import sys
def load(p):
    rows = {}
    for line in open(p):
        w = line.split()
        kv = dict(x.split('=', 1) for x in w[1:])
        rows[(w[0], kv.get('clients', ''))] = kv
    return rows
s, p = load(sys.argv[1]), load(sys.argv[2])
print('IFD bridge: scrmd + ifd: + libifdvpcd.so  vs  pcscd 1.9.9 + libifdvpcd.so (same C card)')
print(f'| {"figure":34} | {"scrm":>10} | {"pcscd":>10} | {"scrm/pcscd":>10} |')
print('|' + '-' * 36 + '|' + '-' * 12 + '|' + '-' * 12 + '|' + '-' * 12 + '|')
def row(name, a, b, better_high):
    a, b = float(a), float(b)
    r = (a / b if better_high else b / a) if a and b else 0
    print(f'| {name:34} | {a:10.2f} | {b:10.2f} | {r:9.2f}x |')
for n in ('1', '2', '8'):
    k = ('apdu', n)
    if k not in s or k not in p:
        continue  # IFD_COMPARE_CLIENTS chose another row
    row(f'APDU/s, {n} client(s)', s[k]['rate'], p[k]['rate'], True)
    row(f'APDU p50 us, {n} client(s)', s[k]['p50_us'], p[k]['p50_us'], False)
    row(f'APDU p99 us, {n} client(s)', s[k]['p99_us'], p[k]['p99_us'], False)
    if 'd_csw' in s[k] and 'd_csw' in p[k]:
        row(f'  daemon blocking waits/APDU, {n}', s[k]['d_csw'], p[k]['d_csw'], False)
        row(f'  daemon CPU us/APDU, {n}', s[k]['d_cpu_us'], p[k]['d_cpu_us'], False)
        row(f'  client blocking waits/APDU, {n}', s[k]['c_csw'], p[k]['c_csw'], False)
        row(f'  client CPU us/APDU, {n}', s[k]['c_cpu_us'], p[k]['c_cpu_us'], False)
for ev in ('insert', 'remove'):
    for q in ('p50_ms', 'p99_ms'):
        row(f'{ev} -> GetStatusChange {q}', s[(ev, '')][q], p[(ev, '')][q], False)
print(f'(insert/remove trials: scrm {s[("insert", "")]["trials"]}, pcscd {p[("insert", "")]["trials"]}; '
      'ratio > 1: scrm better)')
PY
rm -rf "$D"
