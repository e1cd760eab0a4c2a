#!/bin/sh
# `make coverage`: build build/coverage (debug, gcc --coverage, no sanitizers), run the test
# suites in $COVERAGE_SUITES there (default: unit and integration, which include the fuzz corpus
# replays; add interop for the client library, the daemon's front ends and the tools, at several
# minutes more), then print line and branch coverage per source directory (gcovr's JSON summary,
# added up by scripts/coverage-table.py) and write build/coverage/coverage.html.
set -u
cd "$(dirname "$0")/.."

scripts/install-deps.sh check || exit 1
if [ ! -f build/coverage/build.ninja ]; then
    meson setup build/coverage -Dbuildtype=debug -Db_coverage=true >/dev/null || exit 1
fi
ninja -C build/coverage >/dev/null || { ninja -C build/coverage; exit 1; }
find build/coverage -name '*.gcda' -delete
suites=""
for s in ${COVERAGE_SUITES:-unit integration}; do suites="$suites --suite $s"; done
# shellcheck disable=SC2086
meson test -C build/coverage --no-rebuild $suites --num-processes 2 \
    >/dev/null || echo "coverage: some tests failed (the figures below count what ran)" >&2

gcovr -r . --object-directory build/coverage --filter 'src/' --filter 'include/' \
    --exclude-unreachable-branches --exclude-throw-branches \
    --json-summary build/coverage/coverage-summary.json \
    --html-details build/coverage/coverage.html >/dev/null || exit 1
exec /usr/bin/python3 scripts/coverage-table.py build/coverage/coverage-summary.json
