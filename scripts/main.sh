#!/usr/bin/env bash
# The main job: set up a fresh Debian 12 machine, build wafer, tokenize the default corpus (the
# fortunes package), train a small Cerebras-GPT-shaped model on it for a few minutes on 2 cores,
# then sample from the result and measure its perplexity on held-out text.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh build
W=build/wafer
RUN=runs/main

# 1. Data: every fortune file, 1% of the tokens held out for validation.
$W prepare --input /usr/share/games/fortunes --tokenizer third_party/gpt2-tokenizer --out "$RUN/data" \
  --val-fraction 0.01

# 2. Train: the 111M preset's recipe on a 4-layer, 256-wide, 4-head model (context 256): 240 steps
#    of 8 x 128 tokens. A fresh run each time (the previous one is moved aside).
[ -d "$RUN/train" ] && rm -rf "$RUN/train.previous" && mv "$RUN/train" "$RUN/train.previous"
$W train --preset 111M --n-layer 4 --n-embd 256 --n-head 4 --n-positions 256 \
  --data "$RUN/data" --out "$RUN/train" --steps 240 --batch 8 --seq 128 --lr 2e-3 \
  --checkpoint-every 80 --eval-every 40

# 3. Use it: sample a continuation, and measure perplexity on text it never trained on.
$W generate --model "$RUN/train/final" --prompt "A computer is" --max-new-tokens 60 \
  --temperature 0.8 --top-k 40 --seed 1
$W eval --model "$RUN/train/final" --text /usr/share/common-licenses/GPL-3 --ctx 256 --stride 128
echo "run folder: $RUN/train (metrics.jsonl, loss.svg, final/ is an HF model folder)"
