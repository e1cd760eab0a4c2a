# Thin wrapper around Meson. The two commands of the README:
#   make demo    install what is missing, build, run the daemon with simulated readers and a demo
#   make check   install what is missing, build, run every test (lint included) and print a summary
.PHONY: demo check build release fuzz bench format clean

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
	@[ -f build/release/build.ninja ] || meson setup build/release -Dbuildtype=release -Dtests=disabled
	ninja -C build/release

format:
	git ls-files -co --exclude-standard '*.c' '*.h' | xargs -r clang-format -i

clean:
	rm -rf build
