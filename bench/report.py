"""Prints bench/run.sh's results as markdown tables. Usage: python3 report.py RESULTS_DIR

The folder holds one JSON file per measure, as bench/run.sh names them: ceilings.json;
trainK.name ("model|BxT"), trainK.wafer-{fp32,bf16}{,.2}.json (two runs, the better kept),
trainK.torch{,-bf16}.{passive,spin}.json (-bf16: autocast); for rounds R = 1, 2, ... and models M
(m111, gpt2): inferR.M.wafer-F.json and inferR.M.llama-F.json (llama-bench's JSON) for the GGUF
formats F = f32, bf16, q8_0, q4_0, q4_k, and inferR.torch{,-bf16}.{passive,spin}.json (111M);
M.greedy.{wafer,llama}.txt, each engine's greedy continuation of one prompt; tok.wafer.json, tok.js.json;
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


def rounds(model, name):
    """One model's inference files of every round (infer1.MODEL.NAME.json, infer2.MODEL.NAME.json, ...)."""
    return loads(f"infer[0-9].{model}.{name}.json")


def greedy_agreement(model):
    """How far wafer's and llama.cpp's greedy continuations of one prompt agree, in words."""
    w = open(os.path.join(d, f"{model}.greedy.wafer.txt")).read().strip()
    l = open(os.path.join(d, f"{model}.greedy.llama.txt")).read().strip()
    if w == l:
        return "the same text"
    n = next(i for i in range(min(len(w), len(l)) + 1) if i == min(len(w), len(l)) or w[i] != l[i])
    return f"the same for {n} of {max(len(w), len(l))} characters"


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
formats = ["f32", "bf16", "q8_0", "q4_0", "q4_k"]
precision = {"f32": "fp32"}
infer_models = [("m111", "Cerebras-GPT 111M"), ("gpt2", "GPT-2 124M")]
infer_models = [(k, n) for k, n in infer_models if rounds(k, "wafer-f32")]
wafer = {k: {f: r for f in formats if (r := rounds(k, f"wafer-{f}"))} for k, _ in infer_models}
llama = {k: {f: r for f in formats if (r := rounds(k, f"llama-{f}"))} for k, _ in infer_models}
n_rounds = len(wafer["m111"]["f32"])


def wafer_measures(T_list):
    """(label, pick) for prefill at each length and decode: pick(wafer json) -> tokens/s."""
    out = [(f"prefill {T}", lambda j, T=T: j["prefill"][T]["tokens_per_s"]) for T in T_list]
    return out + [("decode", lambda j: j["decode"]["tokens_per_s"])]


def llama_best(runs, label):
    """llama-bench's best tokens/s for one measure over every round and flash-attention setting."""
    if label == "decode":
        keep = lambda t: t["n_prompt"] == 0 and t["n_gen"] > 0
    else:
        T = int(label.split()[1])
        keep = lambda t: t["n_prompt"] == T and t["n_gen"] == 0
    return max(t["avg_ts"] for run in runs for t in run if keep(t))


T_list = list(wafer["m111"]["f32"][0]["prefill"])
print("Greedy tokens from the same GGUF (f32), wafer generate against llama-simple, 24 tokens: "
      + "; ".join(f"{name}: {greedy_agreement(k)}" for k, name in infer_models) + ".")
print()
for k, name in infer_models:
    print(f"{name}, batch 1, tokens/s against llama.cpp on the same GGUF file, best of {n_rounds} rounds "
          f"(llama-bench -t 2 -r 2, flash attention on and off, the better kept; decode: tg64):")
    print()
    print("| format | " + " | ".join(f"{lbl} llama.cpp | wafer | ratio" for lbl, _ in wafer_measures(T_list)) + " |")
    print("|---|" + "---:|---:|---:|" * len(wafer_measures(T_list)))
    best_w, best_l = {}, {}
    for f in wafer[k]:
        cells = []
        for lbl, pick in wafer_measures(T_list):
            w = pick(best_of(wafer[k][f], pick))
            l = llama_best(llama[k][f], lbl) if f in llama[k] else None
            best_w[lbl] = max(best_w.get(lbl, 0), w)
            if l:
                best_l[lbl] = max(best_l.get(lbl, 0), l)
            cells.append(f"{fmt(l, '.1f')} | {w:.1f} | {f'{w / l:.2f}×' if l else '—'}")
        print(f"| {precision.get(f, f)} | " + " | ".join(cells) + " |")
    print("| best of each | " + " | ".join(f"{best_l[lbl]:.1f} | {best_w[lbl]:.1f} | {best_w[lbl] / best_l[lbl]:.2f}×"
                                            for lbl, _ in wafer_measures(T_list)) + " |")
    print()

w111 = wafer["m111"]
torch_runs = {p: [r for k in range(1, n_rounds + 1) for r in torch_best(f"infer{k}.{n}", lambda j: 0)[1]]
              for p, n in (("fp32", "torch"), ("bf16", "torch-bf16"))}
torch_runs = {p: r for p, r in torch_runs.items() if r}  # no bf16 autocast where the CPU has no bf16
print(f"Inference, Cerebras-GPT 111M, batch 1, tokens/s against PyTorch, best of {n_rounds} rounds. Prefill FLOPs = "
      "T·(2N' + 4·L·C·T) + 2·V·C (N': block parameters; the head for the last position only); decode reads "
      "every weight matrix once per token, at the format's size.")
print()
print("| measure | PyTorch fp32 | PyTorch bf16 autocast | " + " | ".join(f"wafer {precision.get(f, f)}" for f in w111)
      + " | wafer best vs PyTorch best |")
print("|---|---:|---:|" + "---:|" * len(w111) + "---:|")
for label, pick in wafer_measures(T_list):
    tp = {p: pick(best_of(r, pick)) for p, r in torch_runs.items()}
    wp = {f: pick(best_of(r, pick)) for f, r in w111.items()}
    print(f"| {label} | {tp['fp32']:.1f} | {fmt(tp.get('bf16'), '.1f')} | " + " | ".join(f"{v:.1f}" for v in wp.values())
          + f" | {max(wp.values()) / max(tp.values()):.2f}× |")
print()
print("Each wafer path against its ceiling, 111M, same run: prefill GFLOP/s against the GEMM ceiling (fp32: sgemm; "
      "bf16 and the integer formats: the bf16 GEMM, the fastest this machine has); decode GB/s of weights "
      "against a read of the same number of bytes (a small model's quantized weights stay in cache).")
print()
print("| measure | " + " | ".join(f"wafer {precision.get(f, f)}" for f in w111) + " |")
print("|---|" + "---|" * len(w111))
for T in T_list:
    cells = []
    for f, r in w111.items():
        x = best_of(r, lambda j: j["prefill"][T]["tokens_per_s"])["prefill"][T]
        ceiling = sgemm if f == "f32" or not bf16 else bf16
        cells.append(f"{x['gflops_per_s']:.0f} GFLOP/s ({100 * x['gflops_per_s'] / ceiling:.0f}%)")
    print(f"| prefill {T} | " + " | ".join(cells) + " |")
cells = []
for f, r in w111.items():
    x = best_of(r, lambda j: j["decode"]["tokens_per_s"])["decode"]
    ws = x.get("read_gb_per_s_at_weight_size", read)
    cells.append(f"{x['gb_per_s']:.1f} of {ws:.1f} GB/s ({100 * x['gb_per_s'] / ws:.0f}%)")
print("| decode | " + " | ".join(cells) + " |")
peak = lambda runs: min(j["peak_rss_mb"] for j in runs)
print("| peak MB | " + " | ".join(f"{peak(r):,.0f}" for r in w111.values()) + " |")
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
