#!/bin/bash
# `make systemd-test`: the shipped systemd units (etc/scrmd.service, etc/scrmd.socket,
# etc/scrmd-pcscd.socket) and the README's "Replacing pcscd" steps under a real systemd as PID 1.
#
# 1. Installs debootstrap and systemd-container if missing (apt), builds a minimal Debian 12 root
#    filesystem with systemd, dbus, pcscd, libccid, pcsc-tools, opensc and python3-pyscard from the
#    mirror of the host's apt sources, and keeps it in /var/cache/scrm-systemd (later runs copy it).
# 2. Builds scrm (build/systemd-test, prefix /usr/local), installs it into a copy of that root
#    filesystem with `meson install` (DESTDIR) and writes an /etc/scrmd.conf with one simulated
#    reader holding a card (sim:0:card=t1).
# 3. Boots the copy with `systemd-nspawn -b` (own network namespace: nothing reaches the host's
#    network or services) and waits until its systemd reports the boot finished.
# 4. Inside: pcscd answers first (stock Debian); then the README's two command blocks run as they
#    are written there (read from README.md, not copied here), with these checks: socket activation
#    (scrmd.service inactive until the first client), Debian's pcsc_scan, opensc-tool and pyscard
#    through Debian's own libpcsclite.so.1 reach scrmd on /run/pcscd/pcscd.comm (as root and as an
#    unprivileged user), scrmd got both sockets (fds named scrm and pcsclite), `scrm list` works
#    through scrmd.socket; after "Back to pcscd", a client reaches pcscd again and not scrmd.
#
# Prints PASS/FAIL per step, exits 1 on any failure, and 0 with "skipped: <reason>" when not root
# or when the tools cannot be installed. The container is powered off and its copy removed on exit.
# Environment: SCRM_SYSTEMD_CACHE (default /var/cache/scrm-systemd), SCRM_DEBIAN_MIRROR (default:
# the host's apt source for bookworm), SCRM_SYSTEMD_BUILD (default build/systemd-test),
# SCRM_SYSTEMD_KEEP=1 keeps the booted container's copy for inspection (the container still stops).
# shellcheck disable=SC2317 # functions called through check, wait_until and the trap
set -u -o pipefail
cd "$(dirname "$0")/.." || exit 1

SUITE=bookworm
CACHE=${SCRM_SYSTEMD_CACHE:-/var/cache/scrm-systemd}
BUILD=${SCRM_SYSTEMD_BUILD:-build/systemd-test}
MACHINE=scrmtest
# The packages of the root filesystem (debootstrap --variant=minbase adds the essential ones).
# scrmd itself links libc, libexpat1 and libudev1; the scrm tool links scrm's own client library.
PACKAGES="systemd systemd-sysv dbus pcscd libpcsclite1 pcsc-tools opensc python3-pyscard libccid
libudev1 libexpat1"
BASE=$CACHE/$SUITE-base
PATH_IN=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

START=$(date +%s)
FAILS=0
WORK=
NSPAWN_PID=
INIT_PID=

skip() {
    echo "skipped: $*"
    exit 0
}
pass() { echo "PASS: $*"; }
fail() {
    echo "FAIL: $*"
    FAILS=$((FAILS + 1))
}
# check NAME CMD...: PASS or FAIL by the command's status
check() {
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}
elapsed() { echo "$(($(date +%s) - START))s"; }

# wait_until SECONDS CMD...: polls CMD (every 0.2 s) until it succeeds; fails after SECONDS
wait_until() {
    local deadline=$(($(date +%s) + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# in CMD...: runs CMD inside the booted container (all its namespaces, its root), with a clean
# environment (no LD_LIBRARY_PATH or anything else of the caller's) and a 60 s bound
in_ct() {
    timeout 60 nsenter -t "$INIT_PID" -a env -i PATH="$PATH_IN" HOME=/root LANG=C.UTF-8 \
        SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}
# as_user CMD...: the same as the unprivileged user scrmuser
as_user() { in_ct runuser -u scrmuser -- "$@"; }

cleanup() {
    local rc=$?
    if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        # SIGTERM makes systemd-nspawn ask the container's systemd to power off
        kill -TERM "$NSPAWN_PID" 2>/dev/null
        if ! wait_until 30 sh -c "! kill -0 $NSPAWN_PID"; then
            echo "container did not power off in 30 s: killing it"
            [ -n "$INIT_PID" ] && kill -KILL "$INIT_PID" 2>/dev/null
            kill -KILL "$NSPAWN_PID" 2>/dev/null
        fi
        wait "$NSPAWN_PID" 2>/dev/null
    fi
    if [ -n "$WORK" ]; then
        if [ "${SCRM_SYSTEMD_KEEP:-0}" = 1 ]; then
            echo "kept: $WORK"
        else
            rm -rf --one-file-system "$WORK"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The URI of the host's apt source for $SUITE (deb822 .sources or one-line .list files).
mirror() {
    if [ -n "${SCRM_DEBIAN_MIRROR:-}" ]; then
        echo "$SCRM_DEBIAN_MIRROR"
        return
    fi
    local m
    m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v s="$SUITE" '
        /^[[:space:]]*$/ { if (u != "" && ok) { print u; exit } u = ""; ok = 0; next }
        $1 == "URIs:" { u = $2 }
        $1 == "Suites:" { for (i = 2; i <= NF; i++) if ($i == s) ok = 1 }
        END { if (u != "" && ok) print u }' | head -n 1)
    if [ -z "$m" ]; then
        m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            sed -e 's/\[[^]]*\]//' | awk -v s="$SUITE" '$1 == "deb" && $3 == s { print $2; exit }')
    fi
    echo "${m:-http://deb.debian.org/debian}"
}

# ---- 0. Preconditions ----------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, systemd-nspawn)"
command -v apt-get >/dev/null || skip "no apt-get: a Debian host is needed"
missing=
command -v debootstrap >/dev/null || missing="$missing debootstrap"
command -v systemd-nspawn >/dev/null || missing="$missing systemd-container"
command -v nsenter >/dev/null || missing="$missing util-linux"
command -v meson >/dev/null || missing="$missing meson"
command -v ninja >/dev/null || missing="$missing ninja-build"
if [ -n "$missing" ]; then
    echo "installing:$missing"
    # shellcheck disable=SC2086 # a list of package names
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null 2>&1; then
        apt-get update -q >/dev/null 2>&1
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null 2>&1 ||
            skip "cannot install$missing with apt-get"
    fi
fi
if ! scripts/install-deps.sh demo >/dev/null 2>&1; then
    skip "cannot install scrm's build dependencies (scripts/install-deps.sh demo)"
fi
pass "tools: debootstrap, systemd-nspawn, meson ($(elapsed))"

# ---- 1. Root filesystem (cached) -----------------------------------------------------------------
stamp="$SUITE $(echo "$PACKAGES" | tr '\n' ' ')"
if [ -f "$BASE/.scrm-systemd-stamp" ] && [ "$(cat "$BASE/.scrm-systemd-stamp")" = "$stamp" ]; then
    pass "rootfs: cached $BASE ($(elapsed))"
else
    MIRROR=$(mirror)
    echo "building the $SUITE root filesystem from $MIRROR (debootstrap, about a minute)"
    mkdir -p "$CACHE"
    rm -rf --one-file-system "$BASE.new"
    if debootstrap --variant=minbase --include="$(echo "$PACKAGES" | tr ' \n' ',,')" \
        "$SUITE" "$BASE.new" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1; then
        chroot "$BASE.new" useradd -m -s /bin/bash scrmuser
        chroot "$BASE.new" apt-get clean
        echo "$stamp" >"$BASE.new/.scrm-systemd-stamp"
        rm -rf --one-file-system "$BASE"
        mv "$BASE.new" "$BASE"
        pass "rootfs: debootstrap $SUITE from $MIRROR into $BASE ($(elapsed))"
    else
        tail -n 20 "$CACHE/debootstrap.log"
        fail "rootfs: debootstrap failed (log: $CACHE/debootstrap.log)"
        exit 1
    fi
fi

# ---- 2. scrm built and installed into a copy -----------------------------------------------------
WORK=$(mktemp -d /var/tmp/scrm-systemd-test.XXXXXX)
ROOT=$WORK/root
cp -a "$BASE" "$ROOT" || {
    fail "copy of the root filesystem"
    exit 1
}
if { [ -f "$BUILD/build.ninja" ] ||
    meson setup "$BUILD" --prefix=/usr/local -Dbuildtype=release >"$WORK/meson.log" 2>&1; } &&
    ninja -C "$BUILD" >"$WORK/ninja.log" 2>&1 &&
    DESTDIR=$ROOT meson install -C "$BUILD" --no-rebuild --quiet >"$WORK/install.log" 2>&1; then
    printf '%s\n' "# written by scripts/systemd-test.sh: one simulated reader with a T=1 card" \
        "reader = sim:0:card=t1" >"$ROOT/etc/scrmd.conf"
    chroot "$ROOT" ldconfig
    units=$ROOT/usr/local/lib/systemd/system
    if [ -f "$units/scrmd.service" ] && [ -f "$units/scrmd.socket" ] &&
        [ -f "$units/scrmd-pcscd.socket" ] && grep -q '^ExecStart=/usr/local/sbin/scrmd ' \
        "$units/scrmd.service" && [ -x "$ROOT/usr/local/sbin/scrmd" ]; then
        pass "install: meson install into the root filesystem," \
            "units in /usr/local/lib/systemd/system ($(elapsed))"
    else
        fail "install: units or scrmd missing after meson install"
        exit 1
    fi
else
    cat "$WORK"/*.log | tail -n 20
    fail "install: build or meson install failed"
    exit 1
fi

# ---- 3. Boot with systemd as PID 1 --------------------------------------------------------------
nspawn_opts=(-D "$ROOT" -b -M "$MACHINE" --register=no --private-network --console=pipe)
# Without systemd on the host there is no manager to create a scope for the container in: it
# stays in the caller's cgroup.
[ -d /run/systemd/system ] || nspawn_opts+=(--keep-unit)
# The container's init: the child of systemd-nspawn that runs systemd (nspawn's first child may
# still be the intermediate one that forks it).
find_init() {
    local p
    for p in $(ps -o pid= --ppid "$NSPAWN_PID"); do
        if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = systemd ]; then
            INIT_PID=$p
            return 0
        fi
    done
    return 1
}
booted() {
    local s
    find_init || return 1
    s=$(in_ct systemctl is-system-running 2>/dev/null)
    [ "$s" = running ] || [ "$s" = degraded ]
}
# start_ct WHAT: boots the root filesystem, waits (120 s at most) until its systemd has finished
# starting up, and says PASS or FAIL
start_ct() {
    local comm state
    echo "=== boot ($1)" >>"$WORK/console.log"
    systemd-nspawn "${nspawn_opts[@]}" </dev/null >>"$WORK/console.log" 2>&1 &
    NSPAWN_PID=$!
    INIT_PID=
    if ! wait_until 120 booted; then
        tail -n 30 "$WORK/console.log"
        fail "$1: the container did not reach a running system in 120 s (nspawn pid $NSPAWN_PID)"
        return 1
    fi
    comm=$(in_ct cat /proc/1/comm)
    state=$(in_ct systemctl is-system-running)
    [ "$state" = running ] || in_ct systemctl --failed --no-legend
    if [ "$comm" != systemd ]; then
        fail "$1: PID 1 of the container is '$comm', not systemd"
        return 1
    fi
    pass "$1: systemd-nspawn -b, PID 1 is $(in_ct readlink /proc/1/exe), system $state ($(elapsed))"
}
start_ct boot || exit 1

# ---- 4a. Stock Debian: pcscd answers ----------------------------------------------------------
active() { [ "$(in_ct systemctl is-active "$1")" = active ]; }
inactive() { [ "$(in_ct systemctl is-active "$1")" != active ]; }
out=$(in_ct opensc-tool -l 2>&1)
check "before: a client reaches pcscd (pcscd.service active, opensc-tool: '${out//$'\n'/ }')" \
    active pcscd.service

# ---- 4b. README "Replacing pcscd", verbatim ------------------------------------------------------
# readme_block N: the Nth ``` block of the README section "Replacing pcscd"
readme_block() {
    awk -v want="$1" '
        /^## / { in_sec = ($0 == "## Replacing pcscd") }
        in_sec && /^```/ { if (code) code = 0; else { code = 1; n++ } next }
        in_sec && code && n == want' README.md
}
# run_block N: runs block N line by line inside the container; a line that is not a systemctl
# command is a client (pcsc_scan loops: it runs for 5 s and its output is kept in $WORK/client.N)
run_block() {
    local line rc i=0 ok=0
    while IFS= read -r line; do
        [ -n "$line" ] || continue
        i=$((i + 1))
        case $line in
        systemctl\ *)
            echo "  # $line"
            in_ct sh -c "$line" >"$WORK/block$1.$i" 2>&1
            rc=$?
            sed 's/^/    /' "$WORK/block$1.$i"
            [ "$rc" -eq 0 ] || {
                fail "README block $1: '$line' exited $rc"
                ok=1
            }
            ;;
        *)
            # the first client: socket activation means scrmd has not run yet
            check "socket activation: scrmd.service inactive before the first client" \
                inactive scrmd.service
            echo "  # $line   (stopped after 5 s)"
            in_ct timeout 5 sh -c "$line" >"$WORK/client.$1" 2>&1
            sed 's/^/    /' "$WORK/client.$1" | head -n 11
            ;;
        esac
    done < <(readme_block "$1")
    [ "$i" -gt 0 ] || {
        fail "README block $1 not found"
        ok=1
    }
    return "$ok"
}
echo "README.md, Replacing pcscd, first block:"
check "README: Replacing pcscd steps ran" run_block 1

replaced() {
    active scrmd.socket && active scrmd-pcscd.socket && inactive pcscd.socket &&
        inactive pcscd.service && [ "$(in_ct systemctl is-enabled pcscd.socket)" = masked ] &&
        [ "$(in_ct systemctl is-enabled scrmd.socket)" = enabled ] &&
        in_ct test -S /run/pcscd/pcscd.comm && in_ct test -S /run/scrm/scrm.sock
}
check "scrmd.socket and scrmd-pcscd.socket listening, pcscd's units inactive and masked" replaced
# has TEXT PATTERN: TEXT matches the shell pattern PATTERN
# shellcheck disable=SC2053 # the pattern is meant to match as a pattern
has() { [[ $1 == $2 ]]; }
scan=$(cat "$WORK/client.1" 2>/dev/null)
check "pcsc_scan -n (Debian's) lists the simulated reader and its card through scrmd" \
    has "$scan" "*SimReader 0*Card inserted*"
check "scrmd.service active after the first client" active scrmd.service

# The fds scrmd holds that are the listening sockets of both paths, by inode (/proc/net/unix).
fds=$(in_ct python3 -c '
import os, sys
pid = sys.argv[1]
listening = {}
with open("/proc/net/unix") as f:
    next(f)
    for l in f:
        p = l.split()
        if len(p) >= 8 and int(p[3], 16) & 0x10000:
            listening[p[6]] = p[7]
for fd in sorted(os.listdir("/proc/%s/fd" % pid), key=int):
    t = os.readlink("/proc/%s/fd/%s" % (pid, fd))
    if t.startswith("socket:[") and t[8:-1] in listening:
        print("fd %s=%s" % (fd, listening[t[8:-1]]))
' "$(in_ct systemctl show -P MainPID scrmd.service)" 2>&1 | tr '\n' ' ')
trig=$(in_ct systemctl show -P TriggeredBy scrmd.service)
echo "  scrmd listens on: $fds; TriggeredBy: $trig"
both_sockets() {
    has "$fds" "*=/run/scrm/scrm.sock*" && has "$fds" "*=/run/pcscd/pcscd.comm*" &&
        has "$trig" "*scrmd.socket*" && has "$trig" "*scrmd-pcscd.socket*"
}
check "scrmd.service got both sockets from systemd (scrm.sock and pcscd.comm)" both_sockets
in_ct journalctl -b -u scrmd.service --no-pager -o cat >"$WORK/journal.scrmd" 2>&1
grep 'starting:' "$WORK/journal.scrmd" | sed 's/^/    /'
check "journal: scrmd says it serves both inherited sockets" \
    grep -Eq "starting: socket fd [0-9]+ from systemd, pcsc-lite socket fd [0-9]+ from systemd" \
    "$WORK/journal.scrmd"
# Real-time priority (realtime = yes, the default): on as root, unless the kernel gives the
# service's cgroup no real-time budget (CONFIG_RT_GROUP_SCHED), when scrmd says it is not
# permitted and runs at normal priority. Either way it must say which.
rt=$(grep -m1 'real-time priority' "$WORK/journal.scrmd")
rt_said() { has "$rt" "*real-time priority on*" || has "$rt" "*real-time priority not permitted*"; }
check "journal: scrmd says whether it runs at real-time priority (${rt:-nothing})" rt_said

out=$(in_ct opensc-tool -l 2>&1)
echo "${out//$'\n'/$'\n'    }" | sed '1s/^/    /'
check "opensc-tool -l lists the reader with a card" has "$out" "*Yes*SimReader 0*"
out=$(in_ct opensc-tool -r 0 -a 2>&1)
check "opensc-tool -r 0 -a prints the card's ATR (${out//$'\n'/ })" has "$out" "3b:*"
out=$(as_user opensc-tool -l 2>&1)
check "opensc-tool -l as the unprivileged user scrmuser" has "$out" "*SimReader 0*"
pyscard='
from smartcard.System import readers
r = readers()
c = r[0].createConnection()
c.connect()
data, sw1, sw2 = c.transmit([0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00])
lib = {l.split()[-1] for l in open("/proc/self/maps") if "libpcsclite" in l}
print(r, "SW %02X %02X" % (sw1, sw2), "library", " ".join(sorted(lib)))
'
out=$(in_ct /usr/bin/python3 -c "$pyscard" 2>&1)
echo "    $out"
check "pyscard (Debian's libpcsclite.so.1): SELECT 3F00 answers 90 00" \
    has "$out" "*SW 90 00 library /usr/lib/x86_64-linux-gnu/libpcsclite.so.1*"
out=$(in_ct /usr/local/bin/scrm list 2>&1)
echo "${out//$'\n'/$'\n'    }" | sed '1s/^/    /'
check "scrm list (scrm's own library, scrmd.socket) shows the card" \
    has "$out" "*SimReader 0*card present*"

# Stopping the service leaves both sockets with systemd (scrmd must not unlink inherited
# sockets): the next client starts it again.
in_ct systemctl stop scrmd.service
out=$(in_ct opensc-tool -l 2>&1)
reactivated() {
    active scrmd.socket && active scrmd-pcscd.socket && has "$out" "*Yes*SimReader 0*" &&
        active scrmd.service && in_ct test -S /run/pcscd/pcscd.comm &&
        in_ct test -S /run/scrm/scrm.sock
}
check "systemctl stop scrmd.service: sockets stay, the next client starts scrmd again" reactivated

# ---- 4c. The switch outlives a reboot -----------------------------------------------------------
# systemd-nspawn ends when the container reboots (exit status 133); the same tree boots again.
in_ct systemctl reboot
if wait_until 60 sh -c "! kill -0 $NSPAWN_PID" && start_ct "reboot"; then
    after_reboot() {
        active scrmd.socket && active scrmd-pcscd.socket && inactive pcscd.socket &&
            [ "$(in_ct systemctl is-enabled pcscd.socket)" = masked ] && inactive scrmd.service
    }
    check "after a reboot: both scrmd sockets listening, pcscd masked, scrmd.service not started" \
        after_reboot
    out=$(as_user opensc-tool -l 2>&1)
    reached() { has "$out" "*Yes*SimReader 0*" && active scrmd.service; }
    check "after a reboot: opensc-tool -l (scrmuser) reaches scrmd, which systemd then starts" \
        reached
else
    fail "reboot: the container did not come back"
    exit 1
fi

# ---- 4d. README "Back to pcscd", verbatim --------------------------------------------------------
echo "README.md, Replacing pcscd, second block (back to pcscd):"
check "README: Back to pcscd steps ran" run_block 2
restored() {
    inactive scrmd.service && inactive scrmd.socket && inactive scrmd-pcscd.socket &&
        active pcscd.socket && [ "$(in_ct systemctl is-enabled pcscd.socket)" = enabled ]
}
check "scrmd's units inactive, pcscd.socket listening" restored
out=$(in_ct opensc-tool -l 2>&1)
echo "    ${out//$'\n'/ }"
pcscd_again() {
    wait_until 10 active pcscd.service &&
        [ "$(in_ct cat "/proc/$(in_ct systemctl show -P MainPID pcscd.service)/comm")" = pcscd ] &&
        inactive scrmd.service && ! has "$out" "*SimReader*"
}
check "a client reaches pcscd again, not scrmd (pcscd.service active, scrmd.service inactive)" \
    pcscd_again

echo "total $(elapsed)"
if [ "$FAILS" -eq 0 ]; then
    echo "systemd-test: all steps passed"
    exit 0
fi
echo "systemd-test: $FAILS step(s) failed"
exit 1
