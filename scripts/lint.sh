#!/bin/sh
# Lint checks run by `make check` (each is a meson test in suite 'lint').
#
#   scripts/lint.sh format     [builddir]   clang-format --dry-run -Werror on every C file
#   scripts/lint.sh banned     [builddir]   no strcpy/strcat/sprintf/gets/atoi/... in our code
#   scripts/lint.sh cppcheck   [builddir]   cppcheck over src/ and include/
#   scripts/lint.sh clang-tidy builddir     clang-tidy with .clang-tidy over src/ (needs compile db)
#   scripts/lint.sh types      [builddir]   a driver status returned as a PC/SC result fails to
#                                           compile (gcc and clang), the correct form compiles
set -eu
cd "$(dirname "$0")/.."
check=${1:?usage: lint.sh format|banned|cppcheck|clang-tidy|types [builddir]}
builddir=${2:-build/debug}

c_files() {
    git ls-files -co --exclude-standard '*.c' '*.h' 2>/dev/null | while read -r f; do
        [ -f "$f" ] && echo "$f"
    done
}

case "$check" in
format)
    c_files | xargs -r clang-format --dry-run -Werror
    ;;
banned)
    # Unbounded or error-blind libc calls; use snprintf, memcpy with checked lengths, strtol.
    pattern='\<(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|atoll|atof|strtok|tmpnam|mktemp)[[:space:]]*\('
    if c_files | xargs -r grep -nE "$pattern"; then
        echo "lint: banned function used (see lines above)" >&2
        exit 1
    fi
    ;;
cppcheck)
    # cppcheck reads no system header; <sys/queue.h>'s list macros shape declarations, so it gets
    # that one (wherever the C library keeps it)
    queue_h=$(printf '#include <sys/queue.h>\n' | ${CC:-cc} -M -x c - | grep -o '/[^ ]*sys/queue\.h')
    cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,performance,portability \
        --inline-suppr --suppress=missingIncludeSystem -D__GNUC__ -D_GNU_SOURCE \
        --include="$queue_h" -I include -I src src include
    ;;
clang-tidy)
    db="$builddir/compile_commands.json"
    [ -f "$db" ] || { echo "lint: $db missing; configure the build first" >&2; exit 1; }
    files=$(c_files | grep -E '^src/.*\.c$' || true)
    [ -n "$files" ] || exit 0
    # The sanitizer flags in the database are GCC's; clang-tidy ignores what it does not know.
    echo "$files" | xargs -r -P "$(nproc)" -n 8 clang-tidy -p "$builddir" --quiet \
        --extra-arg=-Wno-unknown-warning-option --extra-arg=-Wno-unused-command-line-argument
    ;;
types)
    for cc in gcc clang; do
        command -v "$cc" >/dev/null || continue
        flags="-std=c11 -Wall -Wextra -Werror -fsyntax-only -I include -I src"
        # shellcheck disable=SC2086
        if ! "$cc" $flags -DSCRM_NO_MIXUP tests/lint/status_mixup.c; then
            echo "lint: $cc does not compile the correct form of tests/lint/status_mixup.c" >&2
            exit 1
        fi
        # shellcheck disable=SC2086
        if "$cc" $flags tests/lint/status_mixup.c 2>/dev/null; then
            echo "lint: $cc accepts an smc_status returned as a scard_rc" >&2
            exit 1
        fi
        echo "$cc: smc_status -> scard_rc mix-up rejected"
    done
    ;;
*)
    echo "lint.sh: unknown check '$check'" >&2
    exit 2
    ;;
esac
