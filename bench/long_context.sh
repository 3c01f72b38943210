#!/usr/bin/env bash
# Long-context benchmark: one training step of a small-width model (L2, C64, 4 heads, GPT-2
# vocabulary, 32768 positions) on one sequence of T tokens, with the sequence on one rank
# (--cp 1) or split over four (--cp 4, ring attention, 1 thread per rank). Prints each run's
# step time and peak resident memory per rank. At T = 32768 every rank also runs under a
# memory budget (address-space limit) that the --cp 4 ranks fit in and the single rank does not.
# Usage: bash bench/long_context.sh   (after scripts/setup.sh; builds build/ if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[ -x build/wafer ] || bash scripts/build.sh build
source bench/quiet.sh
work=$(mktemp -d /tmp/wafer-longctx-XXXX)
trap 'rm -rf "$work"' EXIT
build/wafer prepare --input /usr/share/games/fortunes --tokenizer third_party/gpt2-tokenizer --out "$work/data" > /dev/null
model="--preset 111M --n-layer 2 --n-embd 64 --n-head 4 --n-positions 32768"
budget_gb=${BUDGET_GB:-6}
wait_for_quiet
printf "%-7s %-6s %-14s %10s %10s   %s\n" T cp "memory budget" "step s" "tok/s" "peak MB per rank"
run() {  # T cp budget_kb(or -)
  local T=$1 cp=$2 budget=$3 out="$work/run-$1-$2-$3" limit=""
  [ "$budget" = - ] || limit="prlimit --as=$((budget * 1024 * 1024 * 1024)) --"
  local args="train $model --batch 1 --seq $T --steps 1 --warmup 1 --eval-every 0 --checkpoint-every 0 --quiet"
  local rc=0 err="$work/err-$1-$2-$3"
  # shellcheck disable=SC2086
  if [ "$cp" = 1 ]; then
    OMP_NUM_THREADS=1 $limit build/wafer $args --data "$work/data" --out "$out" > /dev/null 2> "$err" || rc=$?
  else
    OMP_NUM_THREADS=1 mpirun -np "$cp" --oversubscribe $limit build/wafer $args --cp "$cp" --data "$work/data" \
      --out "$out" > /dev/null 2> "$err" || rc=$?
  fi
  local label="none"
  [ "$budget" = - ] || label="${budget} GB/rank"
  if [ $rc -ne 0 ]; then
    printf "%-7s %-6s %-14s %10s %10s   %s\n" "$T" "$cp" "$label" - - "did not fit: $(grep -m1 -o 'wafer: error: .*' "$err" | cut -c1-70)"
    return
  fi
  /usr/bin/python3 - "$out/metrics.jsonl" "$T" "$cp" "$label" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l][-1]
rss = r["peak_rss_mb"] if isinstance(r["peak_rss_mb"], list) else [r["peak_rss_mb"]]
T = int(sys.argv[2])
print(f"{sys.argv[2]:<7} {sys.argv[3]:<6} {sys.argv[4]:<14} {T / r['tokens_per_s']:>10.2f} {r['tokens_per_s']:>10.0f}   "
      + " ".join(f"{m:.0f}" for m in rss))
PY
}
run 16384 1 -
run 16384 4 -
run 32768 4 -
run 32768 1 "$budget_gb"
run 32768 4 "$budget_gb"
