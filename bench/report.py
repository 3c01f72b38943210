"""Prints bench/run.sh's results as markdown tables. Usage: python3 report.py RESULTS_DIR

The folder holds one JSON file per measure, as bench/run.sh names them: ceilings.json;
trainK.name ("model|BxT"), trainK.wafer-{fp32,bf16}.json, trainK.torch.{passive,spin}.json;
inferR.wafer-{fp32,bf16}.json and inferR.torch.{passive,spin}.json for rounds R = 1, 2, ...; tok.wafer.json, tok.js.json;
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
    """The better of PyTorch's two thread policies for one measure; pick(json) -> tokens/s."""
    runs = [load(f"{prefix}.{p}.json") for p in ("passive", "spin")]
    return max(runs, key=pick), runs


def rounds(name):
    """The inference files of every round (infer1.NAME.json, infer2.NAME.json, ...)."""
    return [load(os.path.basename(f)) for f in sorted(glob.glob(os.path.join(d, f"infer[0-9]*.{name}.json")))]


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
      "(N: parameters without position embeddings, the tied head once); % of the ceiling above.")
print()
print("| model | B×T | PyTorch fp32 | wafer fp32 | ratio | wafer bf16 | ratio vs PyTorch fp32 "
      "| wafer fp32 GFLOP/s | wafer bf16 GFLOP/s | peak MB PyTorch / wafer fp32 / bf16 |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
for name_file in sorted(glob.glob(os.path.join(d, "train*.name"))):
    k = os.path.basename(name_file)[: -len(".name")]
    model, bt = open(name_file).read().strip().split("|")
    w32, w16 = load(f"{k}.wafer-fp32.json"), load(f"{k}.wafer-bf16.json")
    t, _ = torch_best(f"{k}.torch", lambda j: j["train"]["tokens_per_s"])
    tt, a, b = t["train"]["tokens_per_s"], w32["train"], w16["train"]
    b_ceiling = bf16 if w16.get("precision") == "bf16" and bf16 else sgemm
    print(f"| {model} | {bt.replace('x', '×')} | {tt:.1f} | {a['tokens_per_s']:.1f} | {a['tokens_per_s'] / tt:.2f}× "
          f"| {b['tokens_per_s']:.1f} | {b['tokens_per_s'] / tt:.2f}× "
          f"| {a['gflops_per_s']:.0f} ({100 * a['gflops_per_s'] / sgemm:.0f}%) "
          f"| {b['gflops_per_s']:.0f} ({100 * b['gflops_per_s'] / b_ceiling:.0f}%) "
          f"| {t['train']['peak_rss_mb']:,.0f} / {a['peak_rss_mb']:,.0f} / {b['peak_rss_mb']:,.0f} |")
print()

# ---- inference (each measure: the best of the rounds; PyTorch: of both thread policies too)
w32s, w16s = rounds("wafer-fp32"), rounds("wafer-bf16")
torch_runs = [r for k in range(1, len(w32s) + 1) for r in torch_best(f"infer{k}.torch", lambda j: 0)[1]]
print(f"Inference, Cerebras-GPT 111M, batch 1, tokens/s, best of {len(w32s)} rounds. Prefill FLOPs = "
      "T·(2N' + 4·L·C·T) + 2·V·C (N': block parameters; the head for the last position only); decode reads "
      "every weight matrix once per token (GB/s = those bytes / time).")
print()
print("| measure | PyTorch fp32 | wafer fp32 | ratio | wafer bf16 | ratio vs PyTorch fp32 | wafer fp32 achieved | wafer bf16 achieved |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
b_ceiling = bf16 if w16s[0].get("precision") == "bf16" and bf16 else sgemm
for T in w32s[0]["prefill"]:
    tt = best_of(torch_runs, lambda j: j["prefill"][T]["tokens_per_s"])["prefill"][T]["tokens_per_s"]
    a = best_of(w32s, lambda j: j["prefill"][T]["tokens_per_s"])["prefill"][T]
    b = best_of(w16s, lambda j: j["prefill"][T]["tokens_per_s"])["prefill"][T]
    print(f"| prefill {T} | {tt:.1f} | {a['tokens_per_s']:.1f} | {a['tokens_per_s'] / tt:.2f}× | {b['tokens_per_s']:.1f} "
          f"| {b['tokens_per_s'] / tt:.2f}× | {a['gflops_per_s']:.0f} GFLOP/s ({100 * a['gflops_per_s'] / sgemm:.0f}%) "
          f"| {b['gflops_per_s']:.0f} GFLOP/s ({100 * b['gflops_per_s'] / b_ceiling:.0f}%) |")
tt = best_of(torch_runs, lambda j: j["decode"]["tokens_per_s"])["decode"]["tokens_per_s"]
a = best_of(w32s, lambda j: j["decode"]["tokens_per_s"])["decode"]
b = best_of(w16s, lambda j: j["decode"]["tokens_per_s"])["decode"]
print(f"| decode | {tt:.1f} | {a['tokens_per_s']:.1f} | {a['tokens_per_s'] / tt:.2f}× | {b['tokens_per_s']:.1f} "
      f"| {b['tokens_per_s'] / tt:.2f}× | {a['gb_per_s']:.1f} GB/s ({100 * a['gb_per_s'] / read:.0f}%) "
      f"| {b['gb_per_s']:.1f} GB/s ({100 * b['gb_per_s'] / read:.0f}%) |")
print(f"| decode ceiling (read GB/s ÷ weight bytes) | | {read * 1e9 / a['weight_bytes_per_token']:.1f} | "
      f"| {read * 1e9 / b['weight_bytes_per_token']:.1f} | | | |")
peak = lambda runs: min(j["peak_rss_mb"] for j in runs)
print(f"| peak MB | {peak(torch_runs):,.0f} | {peak(w32s):,.0f} | | {peak(w16s):,.0f} | | "
      f"resident after load {w32s[0]['rss_mb']:,.0f} MB | resident after load {w16s[0]['rss_mb']:,.0f} MB |")
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
