#!/bin/sh
# `make demo`: build the release configuration and run the main job.
#
# What exists so far: libsmc (the driver library with the ISO 7816-3 engine) and the simulated reader
# with byte-level cards. The resource manager daemon is not there yet, so the demo drives a simulated
# reader through libsmc directly: it measures GET_STATE and TRANSMIT with T=0 and T=1 cards.
set -eu
cd "$(dirname "$0")/.."
[ -f build/release/build.ninja ] || meson setup build/release -Dbuildtype=release >/dev/null
ninja -C build/release >/dev/null
echo "scrm demo: libsmc and the simulated reader (the daemon does not exist yet)."
exec build/release/bench/smc_bench 20000
