#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, then builds
# and runs every test twice (a Release build, and a Debug build under
# AddressSanitizer and UBSan), then gives each fuzzer a bounded run.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
"$top/deploy/install-deps.sh" --test
jobs=$(nproc)

for preset in release debug-asan; do
	echo "== $preset: build"
	cmake --preset "$preset" >/dev/null
	cmake --build --preset "$preset" -j"$jobs"
	echo "== $preset: test"
	ctest --preset "$preset" -j"$jobs"
done

if command -v clang >/dev/null; then
	echo "== fuzz: build"
	cmake --preset fuzz >/dev/null
	cmake --build --preset fuzz -j"$jobs"
	echo "== fuzz: smoke"
	"$top/tests/fuzz/smoke.sh" "$top/build/fuzz/tests/fuzz" "${FUZZ_SECONDS:-20}"
fi
"$top/bench/run" --quick  # the benchmark keeps working: a smoke run, no timing asserted
