#!/usr/bin/env bash
# Runs every fuzzer in DIR for SECONDS on a scratch copy of its seed corpus
# (so the committed seeds stay small), and fails on the first crash.
# usage: smoke.sh DIR SECONDS
set -euo pipefail
dir=$(cd "$1" && pwd)
secs=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
total=0
for fz in "$dir"/fuzz_*; do
	[ -x "$fz" ] || continue
	name=$(basename "$fz")
	name=${name#fuzz_}
	mkdir -p "$work/$name"
	args=("$work/$name")
	[ -d "$here/corpus/$name" ] && args+=("$here/corpus/$name")
	[ -f "$here/$name.dict" ] && args+=("-dict=$here/$name.dict")
	log="$work/$name.log"
	if ! (cd "$work" && "$fz" -max_total_time="$secs" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 "${args[@]}" >"$log" 2>&1); then
		tail -50 "$log"
		echo "fuzz: $name FAILED"
		exit 1
	fi
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	echo "fuzz: $name ok, ${execs:-?} executions in ${secs}s"
	total=$((total + 1))
done
echo "fuzz: $total passed, 0 failed"
