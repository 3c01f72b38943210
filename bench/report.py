"""Prints bench/run.sh's results as markdown tables. Usage: python3 report.py RESULTS_DIR

The folder holds one JSON file per measure, as bench/run.sh names them: ceilings.json;
trainK.name ("model|BxT"), trainK.wafer-{fp32,bf16}{,.2}.json (two runs, the better kept),
trainK.torch{,-bf16}.{passive,spin}.json (-bf16: autocast); inferR.wafer-{fp32,bf16,q8_0,q4_0,q4_k}.json
and inferR.torch{,-bf16}.{passive,spin}.json for rounds R = 1, 2, ...; tok.wafer.json, tok.js.json;
noisy.txt (the quiet-machine warnings, empty when every measure started on an idle machine).
"""
import datetime
import glob
import json
import os
import platform
import sys

d = sys.argv[1]


def load(name):
    with open(os.path.join(d, name)) as f:
        return json.load(f)


def torch_best(prefix, pick):
    """The better of PyTorch's two thread policies for one measure; pick(json) -> tokens/s.
    (None, []) where the measure was not taken (bf16 autocast on a CPU without bf16 arithmetic)."""
    if not os.path.exists(os.path.join(d, f"{prefix}.passive.json")):
        return None, []
    runs = [load(f"{prefix}.{p}.json") for p in ("passive", "spin")]
    return max(runs, key=pick), runs


def fmt(v, spec, missing="—"):
    """v formatted with spec, or `missing` where v is None."""
    return missing if v is None else format(v, spec)


def loads(pattern):
    """Every result file whose name matches the glob `pattern`, in name order."""
    return [load(os.path.basename(f)) for f in sorted(glob.glob(os.path.join(d, pattern)))]


def rounds(name):
    """The inference files of every round (infer1.NAME.json, infer2.NAME.json, ...)."""
    return loads(f"infer[0-9]*.{name}.json")


def best_of(runs, pick):
    return max(runs, key=pick)


def cpu_name():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


ceil = load("ceilings.json")["ceilings"]
sgemm, bf16 = ceil["sgemm_gflops"], ceil.get("bf16_gemm_gflops")
read = ceil["read_gb_per_s"]
noisy = open(os.path.join(d, "noisy.txt")).read().strip()

print(f"wafer benchmark, {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, {cpu_name()}, {os.cpu_count()} cores")
print(f"kernels: {ceil['kernel_isa']}; bf16 GEMMs: oneDNN {ceil['gemm_isa']}")
print("machine quiet before every measure: " + ("yes" if not noisy else f"NO ({len(noisy.splitlines())} measures started busy)"))
print()
print("Ceilings measured in this run: sgemm fp32 %.0f GFLOP/s (OpenBLAS, best of 1024x3072x768 and 2048^3); "
      "bf16 GEMM %s; streaming read %.1f GB/s (a 1 GiB sum on all threads)."
      % (sgemm, f"{bf16:.0f} GFLOP/s (oneDNN)" if bf16 else "not available on this CPU", read))
print()

# ---- training
print("Training step (forward, backward, clipping, AdamW), tokens/s. FLOPs per token = 6N + 12·L·C·T "
      "(N: parameters without position embeddings, the tied head once); % of the ceiling above (bf16: the bf16 GEMM's).")
print()
print("| model | B×T | PyTorch fp32 | PyTorch bf16 autocast | wafer fp32 | vs PyTorch fp32 | wafer bf16 "
      "| vs PyTorch bf16 | wafer fp32 GFLOP/s | wafer bf16 GFLOP/s | peak MB PyTorch fp32 / bf16 / wafer fp32 / bf16 |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for name_file in sorted(glob.glob(os.path.join(d, "train*.name"))):
    k = os.path.basename(name_file)[: -len(".name")]
    model, bt = open(name_file).read().strip().split("|")
    train = lambda j: j["train"]["tokens_per_s"]
    w32 = best_of(loads(f"{k}.wafer-fp32*.json"), train)["train"]
    w16 = loads(f"{k}.wafer-bf16*.json")  # none where the CPU has no bf16 arithmetic
    w16 = best_of(w16, train)["train"] if w16 else None
    t, _ = torch_best(f"{k}.torch", train)
    t16, _ = torch_best(f"{k}.torch-bf16", train)
    tt, tb = train(t), t16 and train(t16)
    b16 = w16 and w16["tokens_per_s"]
    ratio16 = f"{b16 / tb:.2f}×" if b16 and tb else "—"
    share16 = f"{w16['gflops_per_s']:.0f} ({100 * w16['gflops_per_s'] / bf16:.0f}%)" if w16 and bf16 else "—"
    print(f"| {model} | {bt.replace('x', '×')} | {tt:.1f} | {fmt(tb, '.1f')} | {w32['tokens_per_s']:.1f} "
          f"| {w32['tokens_per_s'] / tt:.2f}× | {fmt(b16, '.1f')} | {ratio16} "
          f"| {w32['gflops_per_s']:.0f} ({100 * w32['gflops_per_s'] / sgemm:.0f}%) | {share16} "
          f"| {t['train']['peak_rss_mb']:,.0f} / {fmt(t16 and t16['train']['peak_rss_mb'], ',.0f')} "
          f"/ {w32['peak_rss_mb']:,.0f} / {fmt(w16 and w16['peak_rss_mb'], ',.0f')} |")
print()

# ---- inference (each measure: the best of the rounds; PyTorch: of both thread policies too)
formats = ["fp32", "bf16", "q8_0", "q4_0", "q4_k"]
wafer = {f: rounds(f"wafer-{f}") for f in formats}
wafer = {f: r for f, r in wafer.items() if r}  # a format this run did not measure is left out
torch_runs = {p: [r for k in range(1, len(wafer["fp32"]) + 1) for r in torch_best(f"infer{k}.{n}", lambda j: 0)[1]]
              for p, n in (("fp32", "torch"), ("bf16", "torch-bf16"))}
torch_runs = {p: r for p, r in torch_runs.items() if r}  # no bf16 autocast where the CPU has no bf16
print(f"Inference, Cerebras-GPT 111M, batch 1, tokens/s, best of {len(wafer['fp32'])} rounds. Prefill FLOPs = "
      "T·(2N' + 4·L·C·T) + 2·V·C (N': block parameters; the head for the last position only); decode reads "
      "every weight matrix once per token, at the format's size.")
print()
print("| measure | PyTorch fp32 | PyTorch bf16 autocast | " + " | ".join(f"wafer {f}" for f in wafer) + " | wafer best vs PyTorch best |")
print("|---|---:|---:|" + "---:|" * len(wafer) + "---:|")
measures = [(f"prefill {T}", lambda j, T=T: j["prefill"][T]["tokens_per_s"]) for T in wafer["fp32"][0]["prefill"]]
measures.append(("decode", lambda j: j["decode"]["tokens_per_s"]))
for label, pick in measures:
    tp = {p: pick(best_of(r, pick)) for p, r in torch_runs.items()}
    wp = {f: pick(best_of(r, pick)) for f, r in wafer.items()}
    print(f"| {label} | {tp['fp32']:.1f} | {fmt(tp.get('bf16'), '.1f')} | " + " | ".join(f"{v:.1f}" for v in wp.values())
          + f" | {max(wp.values()) / max(tp.values()):.2f}× |")
print()
print("Each wafer path against its ceiling, same run: prefill GFLOP/s against the GEMM ceiling (fp32: sgemm; "
      "bf16 and the integer formats: the bf16 GEMM, the fastest this machine has); decode GB/s of weights "
      "against a read of the same number of bytes (a small model's quantized weights stay in cache).")
print()
print("| measure | " + " | ".join(f"wafer {f}" for f in wafer) + " |")
print("|---|" + "---|" * len(wafer))
for T in wafer["fp32"][0]["prefill"]:
    cells = []
    for f, r in wafer.items():
        x = best_of(r, lambda j: j["prefill"][T]["tokens_per_s"])["prefill"][T]
        ceiling = sgemm if f == "fp32" or not bf16 else bf16
        cells.append(f"{x['gflops_per_s']:.0f} GFLOP/s ({100 * x['gflops_per_s'] / ceiling:.0f}%)")
    print(f"| prefill {T} | " + " | ".join(cells) + " |")
cells = []
for f, r in wafer.items():
    x = best_of(r, lambda j: j["decode"]["tokens_per_s"])["decode"]
    ws = x.get("read_gb_per_s_at_weight_size", read)
    cells.append(f"{x['gb_per_s']:.1f} of {ws:.1f} GB/s ({100 * x['gb_per_s'] / ws:.0f}%)")
print("| decode | " + " | ".join(cells) + " |")
peak = lambda runs: min(j["peak_rss_mb"] for j in runs)
print("| peak MB | " + " | ".join(f"{peak(r):,.0f}" for r in wafer.values()) + " |")
print()

# ---- tokenizer
w, j = load("tok.wafer.json")["tokenizer"], load("tok.js.json")
print(f"Tokenizer, one thread, {w['bytes'] / 1e6:.2f} MB of fortunes (gpt-3-encoder on the first 64 KiB):")
print()
print("| wafer MB/s | tiktoken MB/s | ratio | gpt-3-encoder MB/s | ratio |")
print("|---:|---:|---:|---:|---:|")
print(f"| {w['mb_per_s']:.2f} | {j['tiktoken']['mb_per_s']:.2f} | {w['mb_per_s'] / j['tiktoken']['mb_per_s']:.2f}× "
      f"| {j['gpt-3-encoder']['mb_per_s']:.2f} | {w['mb_per_s'] / j['gpt-3-encoder']['mb_per_s']:.0f}× |")
if noisy:
    print()
    print(noisy)
