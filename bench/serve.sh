#!/usr/bin/env bash
# bench/serve.sh: `wafer serve` under load. Cerebras-GPT 111M (random weights from `wafer init`:
# speed does not depend on the values), 128-token prompts, 128 greedy tokens each, 1, 4, 16 and
# 64 concurrent streams, fp32 and bf16 (the bf16 server's KV cache in bf16, --kv-cache auto).
# Prints markdown tables: aggregate tokens/s, decode tokens/s, time to first token and
# inter-token latency (p50, p99), the server's peak memory; under two scheduler budgets (the
# burst prefilled in big steps, and in small chunks at 16 streams); and the two targets on the
# first (decode at 16 streams >= 8x (bf16) / 5x (fp32) one stream; p99 inter-token latency at
# 16 streams <= 3x one stream's). Takes about three minutes; not run by CI.
# Usage: bash bench/serve.sh   (WAFER_BUILD=dir picks the build, default build/)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${WAFER_BUILD:-build}
[ -x "$build/wafer" ] || bash scripts/build.sh "$build"
source bench/quiet.sh
out=runs/serve-bench
mkdir -p "$out"
model=$out/m111
[ -f "$model/model.safetensors" ] || "$build/wafer" init --preset 111M --tokenizer third_party/gpt2-tokenizer --out "$model" >/dev/null

echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(nproc) cores"

# serve_table PRECISIONS STREAMS TAG FLAGS...: one server per precision with FLAGS, a table row
# per stream count; the load's JSON kept as $out/TAG-PRECISION-STREAMS.json.
serve_table() {
  local precisions=$1 counts=$2 tag=$3
  shift 3
  echo "| precision | streams | aggregate tok/s | decode tok/s | TTFT p50 (s) | TTFT p99 (s) | ITL p50 (ms) | ITL p99 (ms) | peak RSS (MiB) |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for p in $precisions; do
    log=$out/server-$tag-$p.log
    "$build/wafer" serve --model "$model" --port 0 --parallel 64 --ctx 256 --max-queue 128 "$@" --precision "$p" 2> "$log" &
    pid=$!
    trap 'kill $pid 2>/dev/null || true' EXIT
    port=
    for _ in $(seq 1 600); do
      port=$(sed -n 's/.*ready on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$log")
      [ -n "$port" ] && break
      sleep 0.2
    done
    [ -n "$port" ] || { echo "server did not start:"; cat "$log"; exit 1; }
    node bench/serve_load.cjs "$port" 1 16 8 > /dev/null  # warm-up
    for n in $counts; do
      wait_for_quiet >&2
      node bench/serve_load.cjs "$port" "$n" 128 128 > "$out/$tag-$p-$n.json"
      rss=$(awk '/VmHWM/{print int($2/1024)}' /proc/$pid/status)
      python3 - "$out/$tag-$p-$n.json" "$p" "$rss" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"| {sys.argv[2]} | {r['streams']} | {r['aggregate_tok_s']:.1f} | {r['decode_tok_s']:.1f} | {r['ttft_p50']:.2f} | "
      f"{r['ttft_p99']:.2f} | {1e3*r['itl_p50']:.0f} | {1e3*r['itl_p99']:.0f} | {sys.argv[3]} |")
PY
    done
    kill "$pid"
    wait "$pid" || true
    trap - EXIT
  done
}

# The burst of prompts prefilled in as few steps as the budget allows (2048 tokens a step, a
# 128-token prompt in one chunk), then decoded together.
echo "Scheduler --batch-tokens 2048 --prefill-chunk 128:"
echo
serve_table "fp32 bf16" "1 4 16 64" big --batch-tokens 2048 --prefill-chunk 128
echo
# Small chunks within a small budget: the decoders that started first are never held up by a
# big step, but wait through many mixed ones while the other prompts trickle in.
echo "Scheduler --batch-tokens 96 --prefill-chunk 32 (16 streams):"
echo
serve_table "fp32 bf16" "16" chunked --batch-tokens 96 --prefill-chunk 32
echo
python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
for p, want in (("bf16", 8), ("fp32", 5)):
    one, six = json.load(open(f"{d}/big-{p}-1.json")), json.load(open(f"{d}/big-{p}-16.json"))
    x = six["decode_tok_s"] / one["decode_tok_s"]
    l = six["itl_p99"] / one["itl_p99"]
    print(f"{p}: decode at 16 streams = {x:.1f}x one stream (target >= {want}x: {'met' if x >= want else 'NOT met'}); "
          f"p99 inter-token latency at 16 = {l:.1f}x one stream's (target <= 3x: {'met' if l <= 3 else 'NOT met'})")
PY
