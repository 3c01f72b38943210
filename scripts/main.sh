#!/usr/bin/env bash
# The main job: set up a fresh Debian 12 machine, build wafer, make a randomly initialised
# Cerebras-GPT 111M-shaped model, generate from it and measure its perplexity on a fortune.
# (Training lands with the trainer; until then the model is untrained, so its text is noise.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_WAIT_POLICY=PASSIVE
bash scripts/build.sh build
W=build/wafer
RUN=runs/main
mkdir -p "$RUN"
$W info --preset 111M
$W init --preset 111M --seed 1 --tokenizer third_party/gpt2-tokenizer --out "$RUN/model-111M"
$W generate --model "$RUN/model-111M" --prompt "The wafer-scale engine" --max-new-tokens 32 \
  --temperature 0.8 --top-k 40 --seed 1
$W eval --model "$RUN/model-111M" --text /usr/share/games/fortunes/science --ctx 512
