#!/bin/bash
# `make demo`: build the release configuration and run the main job.
#
# Part 1 runs scrm-demo: the resource manager core in-process (no socket, no client library) with a
# swallowing simulated reader (sim:0:swallows=1) and one without a swallow mechanism (sim:1). It
# inserts cards, connects, exchanges APDUs, disconnects, waits for the power-down timeout and
# removes the cards, printing each IOCTL the resource manager sends, step by step.
#
# Part 2 does the same through the real stack: scrmd with the same two readers on a temporary
# socket, with its IOCTL trace on, driven by the scrm tool through the PC/SC client library
# (libpcsclite.so.1). After each step it prints the IOCTL lines scrmd logged for it. Every wait
# reads scrmd's log through a pipe with a bounded `read -t`; nothing sleeps and hopes.
#
# Part 3 shows the contactless reader (nfc:0, the NFC driver over its simulated RF field) the same
# way: a MIFARE Classic tag enters the field (`scrm nfc enter`, SCardControl with the driver's
# vendor code), the resource manager reads its synthesized ATR without any reset, `scrm send`
# reads the UID and a block through the PC/SC pseudo-APDUs, the power-down timeout switches the
# tag's "virtual" power off, and the tag leaves.
set -eu
cd "$(dirname "$0")/.."
[ -f build/release/build.ninja ] || meson setup build/release -Dbuildtype=release >/dev/null
ninja -C build/release >/dev/null

B=build/release
echo "################ Part 1: the resource manager core in-process (scrm-demo)"
"$B/src/tools/scrm-demo" --power-down-ms 400

if [ ! -x "$B/src/daemon/scrmd" ] || [ ! -x "$B/src/tools/scrm" ]; then
    echo "Part 2 skipped: scrmd or the scrm tool is not built."
    exit 0
fi

echo
echo "################ Part 2: scrmd + libpcsclite.so.1 + the scrm tool over a Unix socket"
tmp=$(mktemp -d /tmp/scrm-demo.XXXXXX)
export SCRM_SOCKET="$tmp/scrm.sock"
mkfifo "$tmp/log"
"$B/src/daemon/scrmd" -f --no-discover --trace-ioctl --power-down-ms 1000 -l ipc:info \
    -r sim:0:swallows=1 -r sim:1 2>"$tmp/log" &
daemon=$!
exec 3<"$tmp/log"
cleanup() {
    kill -TERM "$daemon" 2>/dev/null || true
    cat <&3 >/dev/null 2>&1 || true
    wait "$daemon" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# Print scrmd's IOCTL lines until one matches $1 (10 s at most per line).
upto() {
    local line
    while IFS= read -r -t 10 line <&3; do
        case "$line" in *"info: ioctl "*) echo "    ${line#*info: ioctl }" ;; esac
        case "$line" in *$1*) return 0 ;; esac
    done
    echo "demo: scrmd did not log '$1' in time" >&2
    return 1
}

step() { printf '\n== %s\n' "$*"; }
# Echo each command so that it can be pasted as shown (shell-quoted; SCRM_SOCKET exported first).
quote() { # one argument as the shell reads it back: as is, or in single quotes
    case "$1" in
    *[!A-Za-z0-9_./:=+,-]* | '') printf " '%s'" "${1//\'/\'\\\'\'}" ;;
    *) printf ' %s' "$1" ;;
    esac
}
scrm() {
    printf '$'
    for a in "$B/src/tools/scrm" "$@"; do quote "$a"; done
    printf '\n'
    "$B/src/tools/scrm" "$@" | sed 's/^/  /'
}
socket() { printf '$ export SCRM_SOCKET=%q\n' "$SCRM_SOCKET"; }

step "scrmd starts: reader start-up sequences, then the socket"
upto "listening on"
socket
scrm list

step "insert a T=1 card into the swallowing reader (SCardControl on a DIRECT handle)"
scrm sim insert "SimReader 0" t1
upto "SimReader 0 IOCTL_SMARTCARD_IS_ABSENT -> STATUS_PENDING"

step "connect, exchange APDUs, disconnect (SCARD_LEAVE_CARD)"
scrm send "SimReader 0" "00 A4 00 0C" "80 EC 00 00 03 0A 0B 0C 00" "00 84 00 00 08"
upto "SimReader 0 IOCTL_SMARTCARD_TRANSMIT"
upto "SimReader 0 IOCTL_SMARTCARD_TRANSMIT"
upto "SimReader 0 IOCTL_SMARTCARD_TRANSMIT"

step "the power-down timeout (1 s) fires"
upto "SimReader 0 IOCTL_SMARTCARD_POWER SCARD_POWER_DOWN"
upto "SimReader 0 IOCTL_SMARTCARD_GET_STATE"

step "insert a T=0 card into the reader without a swallow mechanism; nobody connects"
scrm sim insert "SimReader 1" t0
upto "SimReader 1 IOCTL_SMARTCARD_POWER SCARD_POWER_DOWN"
upto "SimReader 1 IOCTL_SMARTCARD_GET_STATE"

step "connect to the powered-down card, APDU, disconnect; power-down again"
scrm send "SimReader 1" "00 A4 00 0C"
upto "SimReader 1 IOCTL_SMARTCARD_POWER SCARD_POWER_DOWN"
upto "SimReader 1 IOCTL_SMARTCARD_GET_STATE"

step "remove both cards"
scrm sim remove "SimReader 0"
upto "SimReader 0 IOCTL_SMARTCARD_IS_PRESENT -> STATUS_PENDING"
scrm sim remove "SimReader 1"
upto "SimReader 1 IOCTL_SMARTCARD_IS_PRESENT -> STATUS_PENDING"
scrm list

step "stop scrmd (SIGTERM)"
kill -TERM "$daemon"
wait "$daemon" && echo "  scrmd exited with status 0"

echo
echo "################ Part 3: the contactless reader (nfc:0) through scrmd and PC/SC"
exec 3<&-
export SCRM_SOCKET="$tmp/nfc.sock"
mkfifo "$tmp/log3"
"$B/src/daemon/scrmd" -f --no-discover --trace-ioctl --power-down-ms 1000 -l ipc:info \
    -r nfc:0 2>"$tmp/log3" &
daemon=$!
exec 3<"$tmp/log3"

step "scrmd starts: the NFC reader's start-up sequence (no power reset: an NFC reader never
   reports SWALLOWED or POWERED for a new tag)"
upto "listening on"
socket
scrm list

step "a MIFARE Classic 1K tag (UID 01 02 03 04) enters the field (SCardControl on a DIRECT handle);
   the reader reports it SPECIFIC at once and the ATR is read as an attribute"
scrm nfc enter "SCRM IFD 0" classic1k:01020304
upto "SCRM IFD 0 IOCTL_SMARTCARD_IS_ABSENT -> STATUS_PENDING"
scrm list

step "read it: the UID (Get Data), then block 4 after Load Key and General Authenticate (key A)"
scrm send "SCRM IFD 0" "FF CA 00 00 00" "FF 82 00 00 06 FF FF FF FF FF FF" \
    "FF 86 00 00 05 01 00 04 60 00" "FF B0 00 04 10"
upto "SCRM IFD 0 IOCTL_SMARTCARD_TRANSMIT"
upto "SCRM IFD 0 IOCTL_SMARTCARD_TRANSMIT"
upto "SCRM IFD 0 IOCTL_SMARTCARD_TRANSMIT"
upto "SCRM IFD 0 IOCTL_SMARTCARD_TRANSMIT"

step "the power-down timeout (1 s) fires: the tag's virtual power goes off (SWALLOWED)"
upto "SCRM IFD 0 IOCTL_SMARTCARD_POWER SCARD_POWER_DOWN"
upto "SCRM IFD 0 IOCTL_SMARTCARD_GET_STATE"
scrm list

step "the tag leaves the field"
scrm nfc leave "SCRM IFD 0"
upto "SCRM IFD 0 IOCTL_SMARTCARD_IS_PRESENT -> STATUS_PENDING"
scrm list

step "stop scrmd (SIGTERM)"
kill -TERM "$daemon"
wait "$daemon" && echo "  scrmd exited with status 0"
echo
echo "scrm demo: done."
