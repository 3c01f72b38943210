#!/usr/bin/env bash
# The benchmark suite, one command: wafer against PyTorch (Debian python3-torch, the same model
# in bench/torch_gpt2.py) and the npm tokenizers, on the same shapes, on this machine, in this
# run. Prints a markdown table with ratios, achieved GFLOP/s and GB/s beside the ceilings
# measured in the same run, and peak resident memory.
#   training steps (forward, backward, clipping, AdamW): Cerebras-GPT 111M at 4x256, 4x64 and
#     1x2048, GPT-2 124M at 4x64; wafer fp32 and bf16 against PyTorch fp32 and PyTorch with bf16
#     autocast;
#   prefill (128, 1024 tokens) and decode at batch 1 for 111M and GPT-2 124M: wafer fp32, bf16,
#     q8_0, q4_0 and q4_k against llama.cpp on the same GGUF files (bench/llama_cpp.sh), and for
#     111M against PyTorch fp32 and bf16 autocast, each beside its ceiling;
#   tokenizer MB/s on one thread against tiktoken (WebAssembly) and gpt-3-encoder.
# PyTorch runs at its best: torch.set_num_threads(2), and each measure under both
# OMP_WAIT_POLICY=PASSIVE and GOMP_SPINCOUNT=100000, keeping the faster. Every measure runs in
# a fresh process (so peak memory is per measure), after waiting for the machine to be quiet;
# the inference measures run twice, alternating programs, and keep each one's best.
# Usage: bash bench/run.sh [--quick]   (after scripts/setup.sh; builds build/ and llama.cpp if needed)
#   --quick: one training shape (111M 4x64) and one step, inference of 111M only, to check the
#     suite itself runs.
# The raw results stay in runs/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/wafer ] || bash scripts/build.sh build
quick=0
[ "${1:-}" = "--quick" ] && quick=1

source bench/quiet.sh
out=runs/bench  # every measure's JSON stays here; python3 bench/report.py runs/bench prints the tables again
rm -rf "$out" && mkdir -p "$out"
: > "$out/noisy.txt"
quiet() { wait_for_quiet | tee -a "$out/noisy.txt" >&2; }
# bf16 is measured where the CPU has bf16 arithmetic (AVX512-BF16 or AMX). Elsewhere wafer's
# --precision bf16 runs in fp32 (it says so), and PyTorch's autocast emulates bf16 in software
# (one 111M 4x256 step took over 6 minutes on an AVX2-only AMD EPYC): neither is a bf16 measure.
has_bf16=0
grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo && has_bf16=1
precisions="fp32"
((has_bf16)) && precisions="fp32 bf16"
torch_best() {  # torch_best NAME ARGS...: both thread policies, one JSON file each, fp32 and bf16 autocast
  local name=$1; shift
  quiet; OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_gpt2.py "$@" > "$out/$name.passive.json"
  quiet; GOMP_SPINCOUNT=100000 /usr/bin/python3 bench/torch_gpt2.py "$@" > "$out/$name.spin.json"
  ((has_bf16)) || return 0
  quiet; OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_gpt2.py "$@" --autocast bf16 > "$out/$name-bf16.passive.json"
  quiet; GOMP_SPINCOUNT=100000 /usr/bin/python3 bench/torch_gpt2.py "$@" --autocast bf16 > "$out/$name-bf16.spin.json"
}

echo "bench: measuring the ceilings" >&2
quiet; build/wafer bench --ceilings --json > "$out/ceilings.json"

# name | wafer shape | torch shape | BxT
cases=(
  "111M|--preset 111M|--layers 10 --d 768 --heads 12 --positions 2048|4x256"
  "111M|--preset 111M|--layers 10 --d 768 --heads 12 --positions 2048|4x64"
  "111M|--preset 111M|--layers 10 --d 768 --heads 12 --positions 2048|1x2048"
  "GPT-2 124M|--preset gpt2|--layers 12 --d 768 --heads 12 --positions 1024 --gelu tanh|4x64"
)
steps=2
if ((quick)); then cases=("${cases[1]}"); steps=1; fi
i=0
for c in "${cases[@]}"; do
  IFS='|' read -r name wflags tflags bt <<< "$c"
  echo "bench: training $name $bt" >&2
  echo "$name|$bt" > "$out/train$i.name"
  # wafer runs before and after PyTorch's runs and keeps its better one, as PyTorch keeps the
  # better of its two thread policies: a slow spell of the machine (one cost a measure 25% here)
  # then has to last through both runs of a program to show in the table.
  for suffix in "" .2; do
    for p in $precisions; do
      # shellcheck disable=SC2086
      quiet; build/wafer bench $wflags --train "$bt" --train-steps "$steps" --precision "$p" --json > "$out/train$i.wafer-$p$suffix.json"
    done
    # shellcheck disable=SC2086
    [ -n "$suffix" ] || torch_best "train$i.torch" $tflags --train "$bt" --train-steps "$steps"
  done
  i=$((i + 1))
done

# Inference runs on the same random weights in both engines: wafer init writes each model,
# wafer export writes its GGUF files (the quantized ones with the types llama-quantize gives), and
# wafer and llama.cpp (bench/llama_cpp.sh builds it) load the same files. First a check that
# they compute the same model: greedy tokens from one prompt (GPT-2's tanh GELU is llama.cpp's;
# Cerebras-GPT's erf GELU is not, so its tokens may part after a while).
llama_bin=$(bash bench/llama_cpp.sh)
formats="f32 q8_0 q4_0 q4_k"
((has_bf16)) && formats="f32 bf16 q8_0 q4_0 q4_k"
precision_of() { case $1 in f32) echo fp32 ;; *) echo "$1" ;; esac; }
# key | wafer init flags
infer_models=("m111|--preset 111M" "gpt2|--preset gpt2")
((quick)) && infer_models=("${infer_models[0]}")
prompt="The first thing to know about the wafer is"
for m in "${infer_models[@]}"; do
  IFS='|' read -r key iflags <<< "$m"
  # shellcheck disable=SC2086
  build/wafer init $iflags --tokenizer third_party/gpt2-tokenizer --out "$out/$key" > /dev/null
  for t in $formats; do
    build/wafer export --gguf --model "$out/$key" --type "$t" --out "$out/$key-$t.gguf" > /dev/null
  done
  build/wafer generate --model "$out/$key-f32.gguf" --prompt "$prompt" --max-new-tokens 24 --temperature 0 \
    > "$out/$key.greedy.wafer.txt"
  "$llama_bin/llama-simple" -m "$out/$key-f32.gguf" -n 24 "$prompt" 2> /dev/null > "$out/$key.greedy.llama.txt"
done

# Inference measures are short, and this shared machine has slow spells of ten seconds or more
# that the idle check cannot see: two rounds, alternating the programs, each measure's best kept.
echo "bench: prefill and decode" >&2
for round in 1 2; do
  for m in "${infer_models[@]}"; do
    IFS='|' read -r key _ <<< "$m"
    for t in $formats; do
      quiet; build/wafer bench --model "$out/$key-$t.gguf" --precision "$(precision_of "$t")" --prefill 128,1024 \
        --decode-tokens 64 --json > "$out/infer$round.$key.wafer-$t.json"
      # llama-bench: its prompt and generation tests (pp, tg) with and without flash attention, best kept
      quiet; "$llama_bin/llama-bench" -m "$out/$key-$t.gguf" -t 2 -p 128,1024 -n 64 -r 2 -fa 0,1 -o json \
        2> /dev/null > "$out/infer$round.$key.llama-$t.json"
    done
  done
  torch_best "infer$round.torch" --layers 10 --d 768 --heads 12 --positions 2048 --prefill 128,1024 --decode-tokens 64
done

echo "bench: tokenizer" >&2
corpus="$out/corpus.txt"
find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' | sort | xargs cat > "$corpus"
quiet; build/wafer bench --tokenizer third_party/gpt2-tokenizer --text "$corpus" --json > "$out/tok.wafer.json"
quiet; node bench/js_tokenizer.cjs third_party/npm "$corpus" > "$out/tok.js.json"

/usr/bin/python3 bench/report.py "$out"
