#!/usr/bin/env bash
# Runs every fuzzer in DIR for SECONDS each (JOBS at a time, default 1),
# starting from its committed seed corpus, then merges into that corpus
# only the new inputs that reach coverage it did not have, so the tree
# keeps a small corpus that grows with what long runs discover. Prints a
# markdown table: executions, coverage (edges and features) and corpus
# size per harness. Exit 1 on the first crash, leak or timeout; the
# reproducer is kept in the work directory it names.
# usage: long.sh DIR SECONDS [JOBS]        e.g. long.sh build/fuzz/tests/fuzz 600 2
set -euo pipefail
dir=$(cd "$1" && pwd)
secs=$2
jobs=${3:-1}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/acme-edge-fuzz.XXXXXX)

run_one() {
	local fz=$1 name=$2
	local args=("$work/$name")
	mkdir -p "$work/$name" "$here/corpus/$name"
	args+=("$here/corpus/$name")
	[ -f "$here/$name.dict" ] && args+=("-dict=$here/$name.dict")
	(cd "$work" && "$fz" -max_total_time="$secs" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$work/$name-" "${args[@]}" \
		>"$work/$name.log" 2>&1)
}

names=()
pids=()
for fz in "$dir"/fuzz_*; do
	[ -x "$fz" ] || continue
	name=$(basename "$fz")
	name=${name#fuzz_}
	names+=("$name")
	run_one "$fz" "$name" &
	pids+=($!)
	if [ "${#pids[@]}" -ge "$jobs" ]; then
		wait "${pids[0]}" || { echo "fuzz: ${names[${#names[@]}-${#pids[@]}]} FAILED, see $work"; exit 1; }
		pids=("${pids[@]:1}")
	fi
done
for p in "${pids[@]}"; do
	wait "$p" || { echo "fuzz: a harness FAILED, see $work"; exit 1; }
done

echo "| harness | seconds | executions | exec/s | edges (cov) | features (ft) | corpus before → after |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for name in "${names[@]}"; do
	log="$work/$name.log"
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
	before=$(find "$here/corpus/$name" -type f | wc -l)
	# Keep only what adds coverage to the committed corpus.
	"$dir/fuzz_$name" -merge=1 "$here/corpus/$name" "$work/$name" \
		>"$work/$name.merge.log" 2>&1
	after=$(find "$here/corpus/$name" -type f | wc -l)
	echo "| $name | $secs | ${execs:-?} | $(( ${execs:-0} / secs )) | ${cov:-?} | ${ft:-?} | $before → $after |"
done
rm -rf "$work"
