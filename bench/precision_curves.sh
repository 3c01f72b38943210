#!/usr/bin/env bash
# bf16 against fp32 on a real corpus: the main job's model and recipe (4 blocks, C256, the
# fortunes corpus, 240 steps of 8 x 128 tokens) trained three times: fp32 and bf16 from the same
# seed, and fp32 from another seed, whose distance from the first is the run-to-run noise the
# bf16 curve is measured against. Prints a table; writes runs/precision/curves.svg.
# Usage: bash bench/precision_curves.sh   (after scripts/setup.sh; about 10 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/wafer ] || bash scripts/build.sh build
W=build/wafer
RUN=runs/precision
mkdir -p "$RUN"
[ -d runs/main/data ] || $W prepare --input /usr/share/games/fortunes --tokenizer third_party/gpt2-tokenizer \
  --out runs/main/data --val-fraction 0.01
for run in "fp32 1234" "bf16 1234" "fp32 1235"; do
  read -r precision seed <<< "$run"
  out="$RUN/$precision-seed$seed"
  rm -rf "$out"
  echo "precision_curves: training $precision, seed $seed" >&2
  $W train --preset 111M --n-layer 4 --n-embd 256 --n-head 4 --n-positions 256 \
    --data runs/main/data --out "$out" --steps 240 --batch 8 --seq 128 --lr 2e-3 \
    --checkpoint-every 0 --eval-every 40 --seed "$seed" --precision "$precision" --quiet
done
/usr/bin/python3 bench/compare_curves.py "$RUN/fp32-seed1234" "$RUN/bf16-seed1234" "$RUN/fp32-seed1235" \
  --svg "$RUN/curves.svg"
