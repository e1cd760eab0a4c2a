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

# pcsc-lite >= 2.3's client library (protocol 4:5) for the interop test that runs it against
# scrmd's pcsc-lite listener. Debian 12 has 1.9.9 only, so the check profile takes libpcsclite1
# from Debian 13 (trixie)'s archive with a private apt state (the system's sources and lists are
# not touched) and unpacks it, without installing it, into $SCRM_PCSCLITE_NEW. Without network the
# test skips and says why.
fetch_new_pcsclite() {
    dir=${SCRM_PCSCLITE_NEW:-/var/cache/scrm/libpcsclite-trixie}
    [ -s "$dir/VERSION" ] && return 0
    [ "$(id -u)" -eq 0 ] || return 0
    tmp=$(mktemp -d)
    mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
        "http://deb.debian.org/debian trixie main" >"$tmp/sources.list"
    set -- -q -o "Dir::Etc::SourceList=$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null \
        -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o APT::Sandbox::User=root
    if apt-get "$@" update >/dev/null 2>&1 &&
        (cd "$tmp" && apt-get "$@" download libpcsclite1/trixie >/dev/null 2>&1); then
        mkdir -p "$dir"
        dpkg -x "$tmp"/libpcsclite1_*.deb "$dir"
        dpkg-deb -f "$tmp"/libpcsclite1_*.deb Version >"$dir/VERSION"
        echo "install-deps.sh: libpcsclite1 $(cat "$dir/VERSION") (trixie) unpacked in $dir"
    else
        echo "install-deps.sh: cannot fetch trixie's libpcsclite1 (no network?);" \
            "the pcsc-lite 2.3 interop test will skip" >&2
    fi
    rm -rf "$tmp"
}
[ "$profile" = check ] && fetch_new_pcsclite

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
