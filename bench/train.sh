#!/usr/bin/env bash
# Training benchmark: one full step (forward, backward, clipping, AdamW) in wafer and in PyTorch
# (Debian python3-torch, 2 threads, OMP_WAIT_POLICY=PASSIVE, torch.optim.AdamW), same shapes,
# same machine, same run; each shape in a fresh process of each so peak memory is per shape.
# Usage: bash bench/train.sh   (after scripts/setup.sh; builds build/ if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE
[ -x build/wafer ] || bash scripts/build.sh build
# name | wafer shape flags | torch shape flags | BxT
cases=(
  "111M|--preset 111M|--layers 10 --d 768 --heads 12|4x256"
  "111M|--preset 111M|--layers 10 --d 768 --heads 12|4x64"
  "small (L4 C256)|--preset 111M --n-layer 4 --n-embd 256 --n-head 4|--layers 4 --d 256 --heads 4|8x128"
)
printf "%-16s %-7s %14s %14s %7s %12s %12s\n" model BxT "wafer tok/s" "torch tok/s" ratio "wafer MB" "torch MB"
for c in "${cases[@]}"; do
  IFS='|' read -r name wflags tflags bt <<< "$c"
  # shellcheck disable=SC2086
  w=$(build/wafer bench $wflags --train "$bt" --json)
  # shellcheck disable=SC2086
  t=$(/usr/bin/python3 bench/torch_gpt2.py $tflags --train "$bt")
  /usr/bin/python3 - "$name" "$bt" "$w" "$t" <<'PY'
import json, sys
name, bt, w, t = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])["train"], json.loads(sys.argv[4])["train"]
print(f"{name:<16} {bt:<7} {w['tokens_per_s']:>14.1f} {t['tokens_per_s']:>14.1f} {w['tokens_per_s'] / t['tokens_per_s']:>6.2f}x "
      f"{w['peak_rss_mb']:>12.0f} {t['peak_rss_mb']:>12.0f}")
PY
done
