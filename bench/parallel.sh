#!/usr/bin/env bash
# Parallel benchmark: training step time of one fixed small model (L16, C256, 8 heads, the GPT-2
# vocabulary; 8 sequences x 128 tokens per step) on 1 rank and on 2 ranks for each kind of
# parallelism, with the share of time each rank spent in communication calls (waiting
# included), the bytes moved per step, and the pipeline bubble measured (idle over busy time,
# mean over stages) beside the ideal (p-1)/m. The LM head (50257 x 256) costs about as much as
# 15 blocks, so the balanced pipeline split is 15 blocks + 1 block and the head (--stage-layers
# 15,1); the even split 8,8 is shown too. Ranks run 1 thread each; the 1-rank rows show 1
# and 2 threads. Mean over steps 3..6 of each run.
# Usage: bash bench/parallel.sh   (after scripts/setup.sh; builds build/ if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[ -x build/wafer ] || bash scripts/build.sh build
source bench/quiet.sh
work=$(mktemp -d /tmp/wafer-parallel-XXXX)
trap 'rm -rf "$work"' EXIT
build/wafer prepare --input /usr/share/games/fortunes --tokenizer third_party/gpt2-tokenizer --out "$work/data" > /dev/null
model="--preset 111M --n-layer 16 --n-embd 256 --n-head 8 --n-positions 256"
shape="--batch 8 --seq 128 --steps 6 --lr 1e-3 --warmup 1 --eval-every 0 --checkpoint-every 0 --quiet"
wait_for_quiet
# name | ranks | threads per rank | flags
cases=(
  "1 rank|1|2|--micro-batches 4"
  "1 rank, 1 thread|1|1|--micro-batches 4"
  "tp2|2|1|--tp 2 --micro-batches 4"
  "tp2 + sp|2|1|--tp 2 --sp --micro-batches 4"
  "pp2 1f1b m=4 8+8|2|1|--pp 2 --micro-batches 4"
  "pp2 1f1b m=4|2|1|--pp 2 --micro-batches 4 --stage-layers 15,1"
  "pp2 gpipe m=4|2|1|--pp 2 --micro-batches 4 --stage-layers 15,1 --schedule gpipe"
  "pp2 1f1b m=8|2|1|--pp 2 --micro-batches 8 --stage-layers 15,1"
  "cp2|2|1|--cp 2 --micro-batches 4"
  "dp2|2|1|--dp 2 --micro-batches 4"
  "dp2 zero1|2|1|--dp 2 --zero 1 --micro-batches 4"
)
printf "%-20s %-9s %9s %8s %8s %9s %9s %10s %10s %10s %10s\n" layout "ranks" "step s" "tok/s" "vs 1" \
  "comm" "bubble" "(p-1)/m" "tp MB" "pp MB" "cp+dp MB"
base=""
for c in "${cases[@]}"; do
  IFS='|' read -r name ranks threads flags <<< "$c"
  run="$work/run-${name// /_}"
  # shellcheck disable=SC2086
  if [ "$ranks" = 1 ]; then
    OMP_NUM_THREADS=$threads build/wafer train $model $shape $flags --data "$work/data" --out "$run" > /dev/null
  else
    OMP_NUM_THREADS=$threads mpirun -np "$ranks" --oversubscribe build/wafer train $model $shape $flags \
      --data "$work/data" --out "$run" > /dev/null
  fi
  line=$(/usr/bin/python3 - "$run/metrics.jsonl" "$name" "$ranks x $threads" "$base" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l][2:]
tps = sum(r["tokens_per_s"] for r in rows) / len(rows)
step = 8 * 128 / tps
base = float(sys.argv[4]) if sys.argv[4] else tps
def mean(k, d=0.0): return sum(r.get(k, d) for r in rows) / len(rows)
b = lambda k: sum(r.get("bytes", {}).get(k, 0) for r in rows) / len(rows) / 1e6
print(f"{sys.argv[2]:<20} {sys.argv[3]:<9} {step:>9.3f} {tps:>8.0f} {tps / base:>7.2f}x {100 * mean('comm_share'):>8.0f}% "
      f"{100 * mean('bubble'):>8.0f}% {100 * mean('bubble_ideal'):>9.0f}% {b('tp'):>10.1f} {b('pp'):>10.1f} "
      f"{b('cp') + b('dp'):>10.1f}|{tps}")
PY
)
  echo "${line%|*}"
  [ -n "$base" ] || base="${line##*|}"
done
echo "comm: share of rank 0's step time inside communication calls (waiting for peers included);"
echo "bubble: pipeline idle over busy time, mean over stages; MB: bytes sent per step, all ranks together."
