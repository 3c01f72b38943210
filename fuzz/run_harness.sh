#!/usr/bin/env bash
# One fuzz test (fuzz/CMakeLists.txt): replay the regression inputs, then fuzz from the seeds for
# WAFER_FUZZ_SECONDS (default 30), or for WAFER_FUZZ_RUNS inputs. With WAFER_FUZZ_SEED the run
# starts from the seed files alone with that random seed, so it tries the same inputs in the
# same order every time (the suite does this: what passed here passes in CI, on a machine of the
# same speed); without it, from a fresh seed and the grown corpus, to search further.
# Usage: run_harness.sh BINARY SEEDS REGRESSIONS WORK
# WORK (in the build folder) receives the grown corpus and any crash input; the source tree is
# only read. Prints libFuzzer's final line (executions, cov: edges, ft: features).
set -euo pipefail
bin=$1 seeds=$2 regressions=$3 work=$4
seconds=${WAFER_FUZZ_SECONDS:-30}
mkdir -p "$work/corpus" "$work/artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
opts=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -artifact_prefix="$work/artifacts/")
# fuzz/dicts/<harness>.dict: the format's keywords and edge numbers, which mutation rarely spells.
dict="$(dirname "$0")/dicts/$(basename "$seeds").dict"
[ -f "$dict" ] && opts+=(-dict="$dict")
shopt -s nullglob
regs=("$regressions"/*)
if ((${#regs[@]})); then
  echo "== replaying ${#regs[@]} regression inputs"
  "$bin" "${opts[@]}" -runs=1 "${regs[@]}" >"$work/replay.log" 2>&1 || {
    tail -n 60 "$work/replay.log"
    echo "fuzz: a regression input fails again (log: $work/replay.log)"
    exit 1
  }
fi
if [ -n "${WAFER_FUZZ_RUNS:-}" ]; then
  budget=(-runs="$WAFER_FUZZ_RUNS")
  echo "== fuzzing $WAFER_FUZZ_RUNS inputs"
else
  budget=(-max_total_time="$seconds")
  echo "== fuzzing for ${seconds}s"
fi
if [ -n "${WAFER_FUZZ_SEED:-}" ]; then
  # The same inputs in the same order every run: from the seeds alone, with a fixed random seed.
  budget+=(-seed="$WAFER_FUZZ_SEED")
  rm -rf "$work/corpus" && mkdir -p "$work/corpus"
  echo "   from random seed $WAFER_FUZZ_SEED and the seed files only"
fi
"$bin" "${opts[@]}" "${budget[@]}" -print_final_stats=1 "$work/corpus" "$seeds" >"$work/log" 2>&1 || {
  tail -n 60 "$work/log"
  echo "fuzz: crash input kept in $work/artifacts/ (fix it, then copy it to $regressions/)"
  exit 1
}
grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)" "$work/log" | tail -n 2 || true
grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$work/log" || true
