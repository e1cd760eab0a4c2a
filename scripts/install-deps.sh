#!/bin/sh
# Install the Debian 12 packages scrm needs, and only those that are missing.
#
#   scripts/install-deps.sh demo    what `make demo` needs (compiler, meson, ninja)
#   scripts/install-deps.sh check   what `make check` needs (adds cmocka, lint tools, interop programs)
#
# Idempotent: it asks dpkg which packages are installed and runs `apt-get install` only for the rest.
# It installs only when run as root; otherwise it prints the exact command to run and fails.
set -eu

profile=${1:-check}

demo_pkgs="gcc make pkg-config meson ninja-build libexpat1-dev libudev-dev"
check_pkgs="$demo_pkgs libcmocka-dev clang clang-format clang-tidy cppcheck libclang-rt-14-dev
python3 python3-pytest python3-pyscard pcsc-tools opensc libpcsclite-dev libccid
vsmartcard-vpcd vsmartcard-vpicc python3-virtualsmartcard python3-pycryptodome iproute2 pcscd
tshark"

case "$profile" in
demo) want=$demo_pkgs ;;
check) want=$check_pkgs ;;
*)
    echo "install-deps.sh: unknown profile '$profile' (use demo or check)" >&2
    exit 2
    ;;
esac

# Newer pcsc-lite client libraries for the interop tests that run them against scrmd's pcsc-lite
# listener: Debian 12 has 1.9.9 (protocol 4:4) only, so the check profile takes libpcsclite1 from
# Debian 13 "trixie" (2.3, protocol 4:5) and from "sid" (2.5+, protocol 4:6; with sid's libc6,
# whose loader runs it, since it needs a newer glibc) with a private apt state (the system's
# sources and lists are not touched) and unpacks them, without installing anything, into
# /var/cache/scrm/libpcsclite-SUITE. Without network the tests skip and say why.
fetch_pcsclite() { # SUITE PACKAGES...
    suite=$1
    shift
    dir=/var/cache/scrm/libpcsclite-$suite
    [ -s "$dir/VERSION" ] && return 0
    [ "$(id -u)" -eq 0 ] || return 0
    tmp=$(mktemp -d)
    mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
        "http://deb.debian.org/debian $suite main" >"$tmp/sources.list"
    opts="-q -o Dir::Etc::SourceList=$tmp/sources.list -o Dir::Etc::SourceParts=/dev/null"
    opts="$opts -o Dir::State::Lists=$tmp/lists -o Dir::Cache=$tmp/cache -o APT::Sandbox::User=root"
    ok=
    if apt-get $opts update >/dev/null 2>&1; then
        ok=1
        for p in "$@"; do
            (cd "$tmp" && apt-get $opts download "$p/$suite" >/dev/null 2>&1) || ok=
        done
    fi
    if [ -n "$ok" ]; then
        mkdir -p "$dir"
        for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$dir"; done
        dpkg-deb -f "$tmp"/libpcsclite1_*.deb Version >"$dir/VERSION"
        echo "install-deps.sh: libpcsclite1 $(cat "$dir/VERSION") ($suite) unpacked in $dir"
    else
        echo "install-deps.sh: cannot fetch $suite's libpcsclite1 (no network?);" \
            "its interop test will skip" >&2
    fi
    rm -rf "$tmp"
}
if [ "$profile" = check ]; then
    fetch_pcsclite trixie libpcsclite1
    fetch_pcsclite sid libpcsclite1 libc6
fi

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "scrm needs these Debian packages:$missing" >&2
    echo "run as root:  apt-get install -y$missing" >&2
    exit 1
fi

echo "install-deps.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends $missing; then
    apt-get update -q
    apt-get install -y -q --no-install-recommends $missing
fi
