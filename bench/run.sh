#!/usr/bin/env bash
# Inference benchmark: wafer vs PyTorch (Debian python3-torch, 2 threads, OMP_WAIT_POLICY=PASSIVE)
# on the Cerebras-GPT 111M shape with random weights, and wafer's tokenizer vs the npm
# tiktoken and gpt-3-encoder packages, all in one run on one machine. Prints a table of ratios.
# Usage: bash bench/run.sh   (after scripts/setup.sh; builds build/ if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE
[ -x build/wafer ] || bash scripts/build.sh build

source bench/quiet.sh
wait_for_quiet

corpus=$(mktemp /tmp/wafer-bench-XXXX.txt)
find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' | sort | xargs cat > "$corpus"

wafer_json=$(build/wafer bench --preset 111M --prefill 128,1024 --decode-tokens 64 \
  --tokenizer third_party/gpt2-tokenizer --text "$corpus" --json)
torch_json=$(/usr/bin/python3 bench/torch_gpt2.py --layers 10 --d 768 --heads 12 --prefill 128,1024 --decode-tokens 64)
js_json=$(node bench/js_tokenizer.cjs third_party/npm "$corpus")
rm -f "$corpus"

/usr/bin/python3 - "$wafer_json" "$torch_json" "$js_json" "$(nproc)" <<'PY'
import json, sys
w, t, j = (json.loads(a) for a in sys.argv[1:4])
print(f"Cerebras-GPT 111M shape, fp32, batch 1, {sys.argv[4]} cores; PyTorch {t['torch']} with {t['threads']} threads")
print(f"{'measure':<26}{'wafer':>12}{'competitor':>14}{'ratio':>9}")
for T in w["prefill"]:
    a, b = w["prefill"][T]["tokens_per_s"], t["prefill"][T]["tokens_per_s"]
    print(f"{'prefill ' + T + ' tok/s':<26}{a:>12.1f}{b:>14.1f}{a / b:>8.2f}x")
a, b = w["decode"]["tokens_per_s"], t["decode"]["tokens_per_s"]
print(f"{'decode tok/s (batch 1)':<26}{a:>12.1f}{b:>14.1f}{a / b:>8.2f}x")
a = w["tokenizer"]["mb_per_s"]
for name in ("tiktoken", "gpt-3-encoder"):
    b = j[name]["mb_per_s"]
    print(f"{'tokenizer MB/s vs ' + name:<26}{a:>12.2f}{b:>14.2f}{a / b:>8.2f}x")
print(f"(tokenizer corpus: {w['tokenizer']['bytes'] / 1e6:.2f} MB of fortunes)")
PY
