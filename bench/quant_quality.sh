#!/usr/bin/env bash
# The quality and speed of each inference precision, the table of the README's "Quantized
# weights" section:
#   quality: the main job's trained model (runs/main/train/final; scripts/main.sh makes it when it
#            is missing), perplexity on the GPL-3 text (`wafer eval --ctx 256 --stride 128`) and,
#            over the text's first 256 tokens, the KL divergence of each position's next-token
#            distribution from fp32's (`wafer logits`, compared in numpy): mean, max, and how often
#            the most likely token is fp32's;
#   speed:   random 111M weights (`wafer bench --preset 111M`): decode tokens/s and the weights'
#            GB/s it reads, prefill of 128 tokens;
#   GELU:    llama.cpp's tanh form against the model's erf form, in wafer (a row of the table)
#            and in llama.cpp (llama-perplexity on the exported f32 GGUF; bench/llama_cpp.sh
#            builds it) against wafer's logits scored the same way.
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

# llama.cpp computes GELU in its tanh form only, so the main job's model (erf GELU) gives other
# logits there. By how much: the same weights under gelu_new (the tanh form, a config change
# only) against the model's own, in wafer (KL over the same 256 tokens, perplexity); and
# llama-perplexity on the model's f32 GGUF against wafer's logits scored the way it scores them
# (chunks of 256 tokens, the second half of each; the first 8 chunks), under both GELUs.
tanh=$out/model-gelu_new
rm -rf "$tanh" && mkdir -p "$tanh"
for f in "$MODEL"/*; do ln -s "$(realpath "$f")" "$tanh/"; done
rm "$tanh/config.json"
$PY -c 'import json,sys; c=json.load(open(sys.argv[1])); c["activation_function"]="gelu_new"; json.dump(c,open(sys.argv[2],"w"),indent=2)' \
  "$MODEL/config.json" "$tanh/config.json"
$W eval --model "$tanh" --text "$TEXT" --ctx 256 --stride 128 --json > "$out/eval.fp32-tanh.json"
$W logits --model "$tanh" --ids "$ids" --out "$out/logits.fp32-tanh.safetensors" > /dev/null
llama_bin=$(bash bench/llama_cpp.sh)
$W export --gguf --model "$MODEL" --type f32 --out "$out/model-f32.gguf" > /dev/null
"$llama_bin/llama-perplexity" -m "$out/model-f32.gguf" -f "$TEXT" -c 256 -b 256 --chunks 8 -t 2 \
  > "$out/llama-perplexity.txt" 2>&1
all_ids=$($W tokenize --tokenizer "$MODEL" < "$TEXT" | tr -s ' \n' ',' | cut -d, -f1-2048)
for m in "$MODEL" "$tanh"; do
  for c in 0 1 2 3 4 5 6 7; do
    $W logits --model "$m" --ids "$(echo "$all_ids" | cut -d, -f$((c * 256 + 1))-$((c * 256 + 256)))" \
      --out "$out/chunk$c.$(basename "$m").safetensors" > /dev/null
  done
done
$PY - "$out" "$all_ids" "$(basename "$MODEL")" "$(basename "$tanh")" "${precisions[@]}" fp32-tanh <<'EOF'
import json, re, struct, sys
import numpy as np

out, ids, erf, tanh, precisions = sys.argv[1], [int(x) for x in sys.argv[2].split(",") if x], sys.argv[3], sys.argv[4], sys.argv[5:]

def logits_file(path):  # the one F32 tensor of a safetensors file written by wafer logits
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        meta = json.loads(f.read(n))["logits"]
        data = np.frombuffer(f.read(), dtype=np.float32)
    b, e = meta["data_offsets"]
    return data[b // 4:e // 4].reshape(meta["shape"]).astype(np.float64)

def logits(p):
    return logits_file(f"{out}/logits.{p}.safetensors")

def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

def llama_style_ppl(name):  # llama-perplexity's scoring: per chunk, positions 128..254 predict 129..255
    nll, count = 0.0, 0
    for c in range(8):
        lp = log_softmax(logits_file(f"{out}/chunk{c}.{name}.safetensors"))
        chunk = ids[c * 256:(c + 1) * 256]
        for j in range(128, 255):
            nll -= lp[j, chunk[j + 1]]
            count += 1
    return float(np.exp(nll / count))

text = open(f"{out}/llama-perplexity.txt").read()
llama = float(re.search(r"Final estimate: PPL = ([0-9.]+)", text).group(1))
e, t = llama_style_ppl(erf), llama_style_ppl(tanh)
print(f"llama-perplexity (f32 GGUF, 8 chunks of 256): {llama:.4f}; wafer, scored alike: erf GELU {e:.4f} "
      f"(relative difference from llama.cpp {llama / e - 1:+.1e}), tanh GELU {t:.4f} ({llama / t - 1:+.1e})")

ref = log_softmax(logits("fp32")) if "fp32" in precisions else None
print("| precision | perplexity | mean KL vs fp32 | max KL | top-1 agrees | decode tok/s (111M) "
      "| weights read GB/s | prefill 128 tok/s |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for p in precisions:
    ppl = json.load(open(f"{out}/eval.{p}.json"))["perplexity"]
    b = json.load(open(f"{out}/bench.{p}.json")) if p != "fp32-tanh" else None
    kl, agree = ("n/a", "n/a"), "n/a"
    if ref is not None:
        lp = log_softmax(logits(p))
        per_pos = (np.exp(ref) * (ref - lp)).sum(axis=-1)
        kl = (f"{per_pos.mean():.1e}", f"{per_pos.max():.1e}") if p != "fp32" else ("0", "0")
        agree = f"{(ref.argmax(-1) == lp.argmax(-1)).mean():.3f}"
    speed = (f"{b['decode']['tokens_per_s']:.1f} | {b['decode']['gb_per_s']:.1f} | {b['prefill']['128']['tokens_per_s']:,.0f}"
             if b else "— | — | —")
    label = "fp32, tanh GELU (llama.cpp's form)" if p == "fp32-tanh" else p
    print(f"| {label} | {ppl:.2f} | {kl[0]} | {kl[1]} | {agree} | {speed} |")
EOF
