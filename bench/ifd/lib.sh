# shellcheck shell=sh
# Shared by the IFD-bridge benchmarks (ifd_compare.sh, ab.sh); sourced, not run. Each benchmark
# runs scrmd and Debian's pcscd with vsmartcard's libifdvpcd.so in a private mount and network
# namespace (vpcd listens on 0.0.0.0 on fixed ports; a tmpfs covers /run/pcscd), so the
# machine's pcscd and network are not touched.

# name, script, arguments: as root, run the script again in private namespaces (once), then set
# VPCD and PCSCD, bring up the namespace's loopback and cover /run/pcscd; not as root, or
# without pcscd or vsmartcard-vpcd, say so and exit 0. Sets D, a fresh directory with conf/.
ifd_bench_setup() {
    name=$1
    shift
    if [ "$(id -u)" != 0 ]; then
        echo "$name: needs root (private namespaces); skipped"
        exit 0
    fi
    if [ -z "${IFD_BENCH_NS:-}" ]; then
        exec env IFD_BENCH_NS=1 unshare -m -n --propagation private "$@"
    fi
    VPCD=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
    PCSCD=$(command -v pcscd || echo /usr/sbin/pcscd)
    [ -f "$VPCD" ] && [ -x "$PCSCD" ] || { echo "$name: needs pcscd and vsmartcard-vpcd"; exit 0; }
    ip link set lo up
    D=$(mktemp -d)
    mkdir -p /run/pcscd "$D/conf"
    mount -t tmpfs tmpfs /run/pcscd
}

# file, socket, first vpcd port[, device-string options]: an scrmd.conf with one ifd: reader on
# libifdvpcd.so (two slots: that port and the next)
ifd_scrmd_conf() {
    cat >"$1" <<CONF
socket = $2
discover = false
reader = ifd:vpcd:lib=$VPCD,device=/dev/null:$3,name=Virtual%20PCD${4:-}
CONF
}

# first vpcd port: pcscd's reader.conf entry for the same reader, in $D/conf
ifd_pcscd_conf() {
    printf 'FRIENDLYNAME "Virtual PCD"\nDEVICENAME /dev/null:%d\nLIBPATH %s\n' "$1" "$VPCD" \
        >"$D/conf/vpcd"
}

# name, path, pid: bounded wait (20 s) for a daemon's socket; the logs in $D if it died or none
# came
ifd_wait_socket() {
    i=0
    while [ ! -S "$2" ]; do
        kill -0 "$3" 2>/dev/null || { echo "$1: daemon died"; cat "$D"/*.log; exit 1; }
        i=$((i + 1))
        [ $i -lt 400 ] || { echo "$1: no socket $2"; cat "$D"/*.log; exit 1; }
        sleep 0.05
    done
}
