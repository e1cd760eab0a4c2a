# Thin wrapper around Meson. The two commands of the README:
#   make demo    install what is missing, build, run the daemon with simulated readers and a demo
#   make check   install what is missing, build, run every test (lint included) and print a summary
.PHONY: demo check build release bench fuzz format clean

demo:
	@scripts/install-deps.sh demo
	@scripts/demo.sh

check:
	@scripts/check.sh

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

# libFuzzer targets (tests/fuzz), built with clang in build/fuzz; each runs FUZZ_TIME seconds from
# its seed corpus, new inputs kept in build/fuzz/corpus-<name>. Crashes land in build/fuzz/.
FUZZ_TIME ?= 60
fuzz:
	@scripts/install-deps.sh check
	@[ -f build/fuzz/build.ninja ] || CC=clang meson setup build/fuzz -Dbuildtype=debug \
		-Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
	ninja -C build/fuzz tests/fuzz/fuzz_atr tests/fuzz/fuzz_t0 tests/fuzz/fuzz_t1 tests/fuzz/fuzz_readerconf
	@for t in atr t0 t1 readerconf; do \
		mkdir -p build/fuzz/corpus-$$t; \
		echo "== fuzz_$$t ($(FUZZ_TIME) s)"; \
		build/fuzz/tests/fuzz/fuzz_$$t -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
			-artifact_prefix=build/fuzz/ build/fuzz/corpus-$$t tests/fuzz/corpus/$$t || exit 1; \
	done

format:
	git ls-files -co --exclude-standard '*.c' '*.h' | xargs -r clang-format -i

clean:
	rm -rf build
