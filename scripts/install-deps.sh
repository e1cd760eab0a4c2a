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
