#!/bin/sh
# A/B of two scrmd builds against pcscd on the IFD bridge's APDU row: scrmd A, scrmd B and pcscd
# run side by side (each with Debian's libifdvpcd.so and ifd_compare's C card on its own ports),
# and every round measures the same row on all three, in an order that rotates from round to
# round. For a change to the daemon whose effect is smaller than the spread between runs of the
# same daemon (docs/ifd.md, "Method"): the ratios A/pcscd, B/pcscd and A/B are per round, so the
# machine's load, which moves all three, mostly cancels. Root only; private namespaces as in
# ifd_compare.sh.
#
#   bench/ifd/ab.sh [BUILDDIR]        (default build/release; its ifd_compare and client library)
#
# Environment: AB_A and AB_B the two scrmd binaries (default BUILDDIR's), AB_ENV_A and AB_ENV_B
# extra environment for each (e.g. AB_ENV_B="SCRM_LOG=ipc:debug"), AB_CLIENTS (default 2),
# AB_SECONDS per row (default 1), AB_ROUNDS (default 30).
set -eu
B=$(cd "${1:-build/release}" && pwd)
. "$(dirname "$0")/lib.sh"
ifd_bench_setup ab "$0" "$B"
CLIENT=$B/bench/ifd/ifd_compare
R0="Virtual PCD 00 00"
R1="Virtual PCD 00 01"

ifd_scrmd_conf "$D/a.conf" "$D/a.sock" 35963
ifd_scrmd_conf "$D/b.conf" "$D/b.sock" 35983
env ${AB_ENV_A:-} "${AB_A:-$B/src/daemon/scrmd}" -f --config "$D/a.conf" >"$D/a.log" 2>&1 &
A=$!
env ${AB_ENV_B:-} "${AB_B:-$B/src/daemon/scrmd}" -f --config "$D/b.conf" >"$D/b.log" 2>&1 &
BB=$!
ifd_pcscd_conf 35973
"$PCSCD" -f -c "$D/conf" >"$D/p.log" 2>&1 &
P=$!
trap 'kill $A $BB $P 2>/dev/null || true' EXIT
ifd_wait_socket ab "$D/a.sock" $A
ifd_wait_socket ab "$D/b.sock" $BB
ifd_wait_socket ab /run/pcscd/pcscd.comm $P

rate() { # side: one row, its APDU/s
    case $1 in
    a) env IFD_COMPARE_PID=$A SCRM_SOCKET="$D/a.sock" LD_LIBRARY_PATH="$B/src/client" \
           IFD_COMPARE_CLIENTS="${AB_CLIENTS:-2}" "$CLIENT" 35963 "$R0" "$R1" "${AB_SECONDS:-1}" 0 ;;
    b) env IFD_COMPARE_PID=$BB SCRM_SOCKET="$D/b.sock" LD_LIBRARY_PATH="$B/src/client" \
           IFD_COMPARE_CLIENTS="${AB_CLIENTS:-2}" "$CLIENT" 35983 "$R0" "$R1" "${AB_SECONDS:-1}" 0 ;;
    p) env IFD_COMPARE_PID=$P PCSCLITE_CSOCK_NAME=/run/pcscd/pcscd.comm \
           IFD_COMPARE_CLIENTS="${AB_CLIENTS:-2}" "$CLIENT" 35973 "$R0" "$R1" "${AB_SECONDS:-1}" 0 ;;
    esac | sed -n 's/.*rate=\([0-9]*\).*/\1/p'
}

r=1
while [ $r -le "${AB_ROUNDS:-30}" ]; do
    case $((r % 3)) in
    0) order="a b p" ;;
    1) order="b p a" ;;
    *) order="p a b" ;;
    esac
    for side in $order; do
        v=$(rate $side)
        case $side in
        a) r_a=$v ;;
        b) r_b=$v ;;
        *) r_p=$v ;;
        esac
    done
    echo "round $r a=$r_a b=$r_b p=$r_p" | tee -a "$D/rounds"
    r=$((r + 1))
done

/usr/bin/python3 - "$D/rounds" <<'PY'
import re
import statistics
import sys

rows = [dict((k, int(v)) for k, v in re.findall(r'(\w)=(\d+)', line)) for line in open(sys.argv[1])]
rows = [r for r in rows if len(r) == 3]  # a row that failed printed no rate
print('APDU/s medians: ' + ', '.join(f'{k} {statistics.median(r[k] for r in rows):.0f}'
                                      for k in 'abp'))
for x, y in (('a', 'p'), ('b', 'p'), ('a', 'b')):
    ratios = [r[x] / r[y] for r in rows if r[y]]
    print(f'{x}/{y}: median of the per-round ratios {statistics.median(ratios):.2f}, '
          f'{x} ahead in {sum(v >= 1 for v in ratios)} of {len(ratios)}')
PY
