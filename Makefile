# Thin wrapper around Meson. The two commands of the README:
#   make demo    install what is missing, build, run the daemon with simulated readers and a demo
#   make check   install what is missing, build, run every test (lint included) and print a summary
.PHONY: demo check systemd-test coverage build release bench bench-ifd bench-compare bench-pcsclite bench-pcsclite-instr fuzz soak format clean

demo:
	@scripts/install-deps.sh demo
	@scripts/demo.sh

check:
	@scripts/check.sh

# The systemd units and the README's "Replacing pcscd" steps under systemd as PID 1: a Debian 12
# root filesystem (debootstrap, cached in /var/cache/scrm-systemd) booted with systemd-nspawn.
# Root; downloads packages, so not part of `make check`. Prints "skipped: ..." where it cannot run.
systemd-test:
	@scripts/systemd-test.sh

# Line and branch coverage of the unit and integration tests (COVERAGE_SUITES="unit integration
# interop" adds the interop suite), per source directory; HTML in build/coverage/coverage.html.
coverage:
	@scripts/coverage.sh

build:
	@scripts/install-deps.sh check
	@[ -f build/debug/build.ninja ] || meson setup build/debug -Dbuildtype=debug \
		-Db_sanitize=address,undefined -Db_lundef=false
	ninja -C build/debug

release:
	@scripts/install-deps.sh demo
	@[ -f build/release/build.ninja ] || meson setup build/release -Dbuildtype=release
	ninja -C build/release

# Every program in bench/ runs once against the release build and prints its table.
bench: release
	@for b in $$(find build/release/bench -maxdepth 1 -type f -executable | sort); do \
		echo "== $$b"; $$b || exit 1; echo; done
	@$(MAKE) --no-print-directory bench-ifd

# The IFD bridge against pcscd, same driver (libifdvpcd.so) and card (docs/ifd.md#figures); root.
bench-ifd: release
	@echo "== bench/ifd/ifd_compare.sh"; bench/ifd/ifd_compare.sh build/release

# pcscd (Debian's, with vsmartcard's libifdvpcd) and scrmd side by side behind vpcd readers, stock
# vicc and a fast C card behind each, one client binary for both; prints one table of ratios.
# Needs root: pcscd runs in a private mount and network namespace (bench/compare/compare.py).
bench-compare: release
	@scripts/install-deps.sh check
	@/usr/bin/python3 bench/compare/compare.py

# The same PC/SC client binary against pcscd (private namespace), scrmd's pcsc-lite listener and
# scrmd's own protocol, in one run (bench/pcsclite/compare.py; BENCH_SECONDS per row).
BENCH_SECONDS ?= 3
bench-pcsclite: release
	@/usr/bin/python3 bench/pcsclite/compare.py build/release $(BENCH_SECONDS)

# scrmd's instructions per round trip of each front end under callgrind (independent of the load)
bench-pcsclite-instr: release
	@/usr/bin/python3 bench/pcsclite/instructions.py build/release

# libFuzzer targets: every tests/fuzz/fuzz_<name>.c built in build/fuzz (clang, -Dfuzz=true) is
# run, found by name, so a new target joins without editing this file. Each runs FUZZ_TIME seconds
# (or FUZZ_RUNS executions when set) from its seed corpus tests/fuzz/corpus/<name>; new inputs are
# kept in build/fuzz/corpus-<name>, crashes land in build/fuzz/. FUZZ_TARGETS="a b" runs only
# those. libFuzzer's final statistics (execs, execs/s, cov) end each target's output.
FUZZ_TIME ?= 60
FUZZ_RUNS ?=
FUZZ_TARGETS ?=
fuzz:
	@scripts/install-deps.sh check
	@[ -f build/fuzz/build.ninja ] || CC=clang meson setup build/fuzz -Dbuildtype=debug \
		-Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
	ninja -C build/fuzz
	@targets="$(FUZZ_TARGETS)"; [ -n "$$targets" ] || targets=$$(find build/fuzz/tests/fuzz \
		-maxdepth 1 -type f -executable -name 'fuzz_*' | sed 's,.*/fuzz_,,' | sort); \
	limit="-max_total_time=$(FUZZ_TIME)"; [ -z "$(FUZZ_RUNS)" ] || limit="-runs=$(FUZZ_RUNS)"; \
	for t in $$targets; do \
		mkdir -p build/fuzz/corpus-$$t; seeds=; \
		[ -d tests/fuzz/corpus/$$t ] && seeds=tests/fuzz/corpus/$$t; \
		echo "== fuzz_$$t ($$limit)"; \
		build/fuzz/tests/fuzz/fuzz_$$t $$limit -print_final_stats=1 -timeout=120 \
			-artifact_prefix=build/fuzz/$$t- build/fuzz/corpus-$$t $$seeds || exit 1; \
	done

# A long run of scrmd (release build) under 64 clients with random APDUs, transactions, card
# insertions/removals and reader faults, sampling its memory, descriptors and threads every second;
# fails on an unexpected result code, a call over its bound or growth after warm-up.
DURATION ?= 60
soak: release
	/usr/bin/python3 scripts/soak.py --duration $(DURATION) --build build/release

format:
	git ls-files -co --exclude-standard '*.c' '*.h' | xargs -r clang-format -i

clean:
	rm -rf build
