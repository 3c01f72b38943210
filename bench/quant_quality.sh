#!/usr/bin/env bash
# The quality and speed of each inference precision, the table of the README's "Quantized
# weights" section:
#   quality: the main job's trained model (runs/main/train/final; scripts/main.sh makes it when it
#            is missing), perplexity on the GPL-3 text (`wafer eval --ctx 256 --stride 128`) and,
#            over the text's first 256 tokens, the KL divergence of each position's next-token
#            distribution from fp32's (`wafer logits`, compared in numpy): mean, max, and how often
#            the most likely token is fp32's;
#   speed:   random 111M weights (`wafer bench --preset 111M`): decode tokens/s and the weights'
#            GB/s it reads, prefill of 128 tokens.
# Usage: bash bench/quant_quality.sh [precision ...]   (default: fp32 bf16 q8_0 q4_0 q4_k q6_k)
# bf16 is left out where the CPU has no bf16 arithmetic (wafer would run it in fp32).
set -euo pipefail
cd "$(dirname "$0")/.."
W=build/wafer
PY=/usr/bin/python3
MODEL=runs/main/train/final
TEXT=/usr/share/common-licenses/GPL-3
out=runs/bench/quant_quality
mkdir -p "$out"
[ -x "$W" ] || bash scripts/build.sh build
[ -d "$MODEL" ] || bash scripts/main.sh

precisions=("$@")
if [ ${#precisions[@]} -eq 0 ]; then
  precisions=(fp32)
  grep -q -E 'avx512_bf16|amx_bf16' /proc/cpuinfo && precisions+=(bf16)
  precisions+=(q8_0 q4_0 q4_k q6_k)
fi

ids=$(head -c 4000 "$TEXT" | $W tokenize --tokenizer "$MODEL" | tr -s ' \n' ',' | cut -d, -f1-256)
for p in "${precisions[@]}"; do
  echo "quant_quality: $p" >&2
  $W eval --model "$MODEL" --text "$TEXT" --ctx 256 --stride 128 --precision "$p" --json > "$out/eval.$p.json"
  $W logits --model "$MODEL" --ids "$ids" --precision "$p" --out "$out/logits.$p.safetensors" > /dev/null
  $W bench --preset 111M --precision "$p" --prefill 128 --decode-tokens 64 --repeats 3 --json > "$out/bench.$p.json"
done

$PY - "$out" "${precisions[@]}" <<'EOF'
import json, struct, sys
import numpy as np

out, precisions = sys.argv[1], sys.argv[2:]

def logits(p):  # the one F32 tensor of a safetensors file written by wafer logits
    with open(f"{out}/logits.{p}.safetensors", "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        meta = json.loads(f.read(n))["logits"]
        data = np.frombuffer(f.read(), dtype=np.float32)
    b, e = meta["data_offsets"]
    return data[b // 4:e // 4].reshape(meta["shape"]).astype(np.float64)

def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

ref = log_softmax(logits("fp32")) if "fp32" in precisions else None
print("| precision | perplexity | mean KL vs fp32 | max KL | top-1 agrees | decode tok/s (111M) "
      "| weights read GB/s | prefill 128 tok/s |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for p in precisions:
    ppl = json.load(open(f"{out}/eval.{p}.json"))["perplexity"]
    b = json.load(open(f"{out}/bench.{p}.json"))
    kl, agree = ("n/a", "n/a"), "n/a"
    if ref is not None:
        lp = log_softmax(logits(p))
        per_pos = (np.exp(ref) * (ref - lp)).sum(axis=-1)
        kl = (f"{per_pos.mean():.1e}", f"{per_pos.max():.1e}") if p != "fp32" else ("0", "0")
        agree = f"{(ref.argmax(-1) == lp.argmax(-1)).mean():.3f}"
    print(f"| {p} | {ppl:.2f} | {kl[0]} | {kl[1]} | {agree} | {b['decode']['tokens_per_s']:.1f} "
          f"| {b['decode']['gb_per_s']:.1f} | {b['prefill']['128']['tokens_per_s']:,.0f} |")
EOF
