#!/usr/bin/env bash
# Scale benchmark: memory per rank that falls with the layout. Models written by `wafer init`
# (fp32 weights: 1.3B is 5.3 GB, 2.7B is 10.6 GB) are evaluated on one rank and under 4-rank
# tensor- and pipeline-parallel layouts; each rank loads only its slices of the weights
# (model/weight_files.h). For each run: the perplexity (it must equal one rank's), every rank's
# peak resident memory (/usr/bin/time's maximum RSS), the largest of them, and what a rank held
# before sharded loading (the whole model's fp32 weights, on every rank, before it cut its shard).
# Then 590M training under tp2 x pp2 with ZeRO-1 and --recompute full: each rank's peak RSS (from
# metrics.jsonl) beside `wafer info --layout`'s prediction for its stage, and the losses beside
# one rank's.
# Usage: bash bench/scale.sh [MODELS...]   (default: 1.3B 2.7B 590M-train; after scripts/setup.sh)
# Needs about 16 GB of free disk for the two models (under $WAFER_SCALE_DIR, default /var/tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[ -x build/wafer ] || bash scripts/build.sh build
W=$PWD/build/wafer
models=("$@")
((${#models[@]})) || models=(1.3B 2.7B 590M-train)
work=$(mktemp -d "${WAFER_SCALE_DIR:-/var/tmp}/wafer-scale-XXXX")
trap 'rm -rf "$work"' EXIT
# 256 tokens of held-out text: two windows of 128.
head -c 1200 /usr/share/common-licenses/GPL-3 > "$work/text.txt"
mpi() { mpirun -np "$1" --oversubscribe --mca btl_vader_single_copy_mechanism none -x OMP_NUM_THREADS=1 "${@:2}"; }

# run NAME RANKS FLAGS...: eval under a layout; prints "ppl max_rss_mb rss_per_rank..."
run() {
  local ranks=$1 model=$2
  shift 2
  local out="$work/out.$ranks.$$"
  rm -f "$work"/rss.*
  if [ "$ranks" = 1 ]; then
    OMP_NUM_THREADS=2 /usr/bin/time -o "$work/rss.0" -f "%M" "$W" eval --model "$model" --text "$work/text.txt" \
      --ctx 128 --stride 128 --json "$@" > "$out"
  else
    mpi "$ranks" bash -c '/usr/bin/time -o "'"$work"'/rss.$OMPI_COMM_WORLD_RANK" -f "%M" "$0" "$@"' "$W" eval \
      --model "$model" --text "$work/text.txt" --ctx 128 --stride 128 --json "$@" > "$out"
  fi
  local ppl rss
  ppl=$(grep -o '"perplexity":[ ]*[0-9.e+]*' "$out" | head -n1 | sed 's/.*: *//')
  rss=$(for f in "$work"/rss.*; do tail -n1 "$f"; done | awk '{printf "%d ", $1/1024}')
  echo "$ppl $rss"
}

train590() {
  local dir="$work/590M" data="$work/data" flags="--tp 2 --pp 2 --zero 1 --recompute full"
  local shape="--batch 2 --seq 128 --micro-batches 2 --steps 3 --lr 1e-4 --warmup 1 --eval-every 0 --checkpoint-every 0 --quiet"
  "$W" init --preset 590M --seed 1 --out "$dir" > /dev/null
  "$W" prepare --input /usr/share/games/fortunes --tokenizer third_party/gpt2-tokenizer --out "$data" > /dev/null
  # shellcheck disable=SC2086
  mpi 4 "$W" train --init "$dir" --data "$data" --out "$work/run4" $shape $flags
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=2 "$W" train --init "$dir" --data "$data" --out "$work/run1" $shape
  # shellcheck disable=SC2086
  "$W" info --preset 590M --layout $flags --batch 2 --seq 128 --micro-batches 2 --json > "$work/predicted.json"
  /usr/bin/python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
lines = lambda run: [json.loads(l) for l in open(f"{w}/{run}/metrics.jsonl") if '"loss"' in l]
four, one = lines("run4"), lines("run1")
pred = json.load(open(f"{w}/predicted.json"))
stages = [s["total"] / 2**20 for s in pred["bytes_per_rank"]]
rss = four[-1]["peak_rss_mb"]  # world ranks: tp fastest, then pp (ranks 0,1 stage 0; 2,3 stage 1)
print("\n| 590M training, tp2 x pp2, ZeRO-1, recompute full | rank | stage | predicted MB | measured peak MB | measured / predicted |")
print("|---|---:|---:|---:|---:|---:|")
for r, m in enumerate(rss):
    p = stages[r // 2]
    print(f"| | {r} | {r // 2} | {p:,.0f} | {m:,.0f} | {m / p:.3f} |")
print(f"\none rank's peak: {one[-1]['peak_rss_mb']:,.0f} MB")
print("losses, 4 ranks vs 1 rank:", ", ".join(f"{a['loss']:.6f} / {b['loss']:.6f}" for a, b in zip(four, one)))
PY
}

printf "| model | fp32 weights | layout | perplexity | peak RSS per rank (MB) | largest rank | before: whole model per rank |\n"
printf "|---|---:|---|---:|---|---:|---:|\n"
for name in "${models[@]}"; do
  if [ "$name" = 590M-train ]; then train590; continue; fi
  dir="$work/$name"
  "$W" init --preset "$name" --seed 1 --tokenizer third_party/gpt2-tokenizer --out "$dir" > /dev/null
  bytes=$(stat -c %s "$dir/model.safetensors")
  gb=$(awk -v b="$bytes" 'BEGIN{printf "%.1f GB", b/1e9}')
  whole=$(awk -v b="$bytes" 'BEGIN{printf "%d", b/1048576}')
  layouts=("1|" "4|--tp 4" "4|--pp 4")
  [ "$name" = 2.7B ] && layouts=("1|" "4|--pp 4")
  for l in "${layouts[@]}"; do
    IFS='|' read -r ranks flags <<< "$l"
    # shellcheck disable=SC2086
    read -r ppl rest <<< "$(run "$ranks" "$dir" $flags)"
    max=$(echo "$rest" | tr ' ' '\n' | sort -n | tail -n1)
    printf "| %s | %s | %s | %s | %s | %s | %s |\n" "$name" "$gb" "${flags:-1 rank}" "$ppl" "$rest" "$max" \
      "$([ "$ranks" = 1 ] && echo "-" || echo "$whole + shard")"
  done
  rm -rf "$dir"
done
