#!/bin/sh
# `make demo`: build the release configuration and run the main job.
#
# What exists so far: the foundation (logging, hex, buffers) and the constant tables of libsmc.
# The daemon and the simulated reader do not exist yet, so the demo prints the IOCTL and status
# tables from the library and runs the constant-table unit test.
set -eu
cd "$(dirname "$0")/.."
[ -f build/release/build.ninja ] || meson setup build/release -Dbuildtype=release >/dev/null
ninja -C build/release >/dev/null
echo "scrm demo: only the foundation exists yet (no daemon, no reader)."
exec build/release/tests/unit/test_defs
