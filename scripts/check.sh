#!/bin/sh
# `make check`: install what is missing, build the sanitizer configurations and the clang
# configuration (thread safety analysis), run every test (unit, integration, interop, lint) and
# end with the summary line "N passed, N failed[, N skipped]".
set -u
cd "$(dirname "$0")/.."

scripts/install-deps.sh check || exit 1

setup() { # dir, meson options...
    dir=$1
    shift
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >/dev/null || exit 1
    fi
}
setup build/debug -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false
setup build/tsan -Dbuildtype=debug -Db_sanitize=thread -Db_lundef=false
# clang's thread safety analysis (-Wthread-safety, an error with -Werror): compiled, not run
[ -f build/clang/build.ninja ] || CC=clang meson setup build/clang -Dbuildtype=debug >/dev/null || exit 1

ninja -C build/debug >/dev/null || { ninja -C build/debug; exit 1; }
ninja -C build/tsan >/dev/null || { ninja -C build/tsan; exit 1; }
ninja -C build/clang >/dev/null || { ninja -C build/clang; exit 1; }

rm -f build/debug/meson-logs/testlog.json build/tsan/meson-logs/tsanlog.json
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
meson test -C build/debug --no-rebuild --print-errorlogs --num-processes 2
TSAN_OPTIONS=$TSAN_OPTIONS meson test -C build/tsan --no-rebuild --print-errorlogs --suite tsan \
    --logbase tsanlog --num-processes 2

echo
exec /usr/bin/python3 scripts/test-summary.py build/debug/meson-logs/testlog.json \
    build/tsan/meson-logs/tsanlog.json
