"""Builds the reference models and expected outputs that wafer's C++ tests compare against.

Each model is a random GPT-2 in one of the HF on-disk layouts (safetensors f32/bf16/f16,
sharded safetensors, pytorch_model.bin with legacy buffers, untied head, μP fields). For each,
expected.json holds the inputs and the float64 reference results: logits (in logits.safetensors),
greedy continuations and sliding-window perplexity.

Usage: /usr/bin/python3 make_reference.py --out DIR --tokenizer GPT2_TOKENIZER_DIR
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt2_ref as ref  # noqa: E402

TEXT = ("The Cerebras-GPT family of models was trained on the Pile with compute-optimal token budgets.\n"
        "It uses the GPT-2 architecture: learned position embeddings, pre-LayerNorm blocks, and a tied head. "
        "Don't forget: perplexity measures how surprised a model is, token by token — 12,345 tokens later!\n") * 2


def tiktoken_ids(text, npm_dir, work):
    path = os.path.join(work, "ppl_text.txt")
    with open(path, "w") as f:
        f.write(text)
    js = ("const {get_encoding}=require(process.argv[1]+'/node_modules/tiktoken');"
          "const e=get_encoding('gpt2');"
          "console.log(JSON.stringify(Array.from(e.encode(require('fs').readFileSync(process.argv[2],'utf8'),[],[]))));")
    out = subprocess.run(["node", "-e", js, npm_dir, path], check=True, capture_output=True, text=True).stdout
    return json.loads(out), path


def save_model(folder, c, p, layout, dtype=torch.float32):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    tensors = {k: v.to(dtype) for k, v in p.items()}
    if layout == "safetensors":
        ref.write_safetensors(os.path.join(folder, "model.safetensors"), tensors)
    elif layout == "sharded":
        names = sorted(tensors)
        shards = [names[i::3] for i in range(3)]
        weight_map = {}
        for i, part in enumerate(shards):
            fname = f"model-{i + 1:05d}-of-00003.safetensors"
            ref.write_safetensors(os.path.join(folder, fname), {n: tensors[n] for n in part})
            weight_map.update({n: fname for n in part})
        with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)
    elif layout == "bin_legacy":
        # Old GPT2Model-style names (no "transformer." prefix), the causal-mask buffers, and one
        # weight stored as a non-contiguous (transposed) view.
        P = c["n_positions"]
        sd = {}
        for k, v in tensors.items():
            sd[k[len("transformer."):] if k.startswith("transformer.") else k] = v
        for l in range(c["n_layer"]):
            sd[f"h.{l}.attn.bias"] = torch.tril(torch.ones(P, P, dtype=torch.uint8)).view(1, 1, P, P)
            sd[f"h.{l}.attn.masked_bias"] = torch.tensor(-1e4)
        sd["h.0.mlp.c_fc.weight"] = sd["h.0.mlp.c_fc.weight"].t().contiguous().t()
        torch.save(sd, os.path.join(folder, "pytorch_model.bin"))
    else:
        raise ValueError(layout)
    # The reference computes with exactly the values on disk.
    return {k: v.to(dtype).to(torch.float64) for k, v in p.items()}


def write_optimizer_runs(out, models, g):
    """Ten AdamW steps (warmup, decay, clipping, weight decay, 2 micro-batches a step) from two of
    the reference models; expected losses and final parameters."""
    runs = []
    for name, peak, decay in (("f32_gelu", 1e-3, "linear"), ("mup_untied", 2e-3, "cosine")):
        folder = os.path.join(out, name)
        c = next(m[1] for m in models if m[0] == name)
        p = {k: v.double() for k, v in ref.read_safetensors(os.path.join(folder, "model.safetensors")).items()}
        steps = [[torch.randint(0, c["vocab_size"], (2, 9), generator=g) for _ in range(2)] for _ in range(10)]
        losses, final = ref.adamw_run(p, c, steps, peak=peak, warmup=3, decay=decay, final_ratio=0.1)
        ref.write_safetensors(os.path.join(folder, f"adamw_{decay}.safetensors"),
                              {k: v.to(torch.float32) for k, v in final.items()})
        runs.append({"model": name, "dir": folder, "peak": peak, "warmup": 3, "decay": decay, "final_ratio": 0.1,
                     "steps": [[b.tolist() for b in micro] for micro in steps], "losses": losses,
                     "expected": os.path.join(folder, f"adamw_{decay}.safetensors")})
    return runs


def write_bad_pickles(out, c):
    """pytorch_model.bin archives whose pickle is truncated or uses an opcode a state dict never has."""
    import zipfile
    cases = {
        "bad_pickle_truncated": b"\x80\x02}q\x00(X\x03\x00\x00\x00abc",
        "bad_pickle_opcode": b"\x80\x02}q\x00\xff.",
        "bad_pickle_not_dict": b"\x80\x02K\x05.",
    }
    for name, pkl in cases.items():
        folder = os.path.join(out, name)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(c, f)
        with zipfile.ZipFile(os.path.join(folder, "pytorch_model.bin"), "w") as z:
            z.writestr("archive/data.pkl", pkl)
            z.writestr("archive/version", "3\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenizer", required=True)
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    npm_dir = os.path.join(root, "third_party", "npm")
    os.makedirs(args.out, exist_ok=True)
    ppl_ids, ppl_text = tiktoken_ids(TEXT, npm_dir, args.out)

    models = [
        ("f32_gelu", ref.default_config(), "safetensors", torch.float32),
        ("bf16_gelu_new", ref.default_config(n_embd=48, activation_function="gelu_new"), "safetensors", torch.bfloat16),
        ("f16_sharded", ref.default_config(n_layer=3, n_inner=40), "sharded", torch.float16),
        ("bin_legacy_untied", ref.default_config(tie_word_embeddings=False, activation_function="gelu_new"),
         "bin_legacy", torch.float32),
        ("mup_untied", ref.default_config(tie_word_embeddings=False, mup_base_width=12, mup_embeddings_scale=10.0,
                                          mup_output_scale=0.5, mup_scale_qk_dot_by_d=True), "safetensors",
         torch.float32),
    ]
    g = torch.Generator().manual_seed(99)
    manifest = {"models": [], "ppl_text": ppl_text, "ppl_ids": ppl_ids}
    for i, (name, c, layout, dtype) in enumerate(models):
        folder = os.path.join(args.out, name)
        p = save_model(folder, c, ref.random_params(c, seed=100 + i), layout, dtype)
        for f in ("vocab.json", "merges.txt"):
            shutil.copy(os.path.join(args.tokenizer, f), folder)
        ids = torch.randint(0, c["vocab_size"], (2, 17), generator=g)
        logits = ref.forward(p, c, ids)
        ref.write_safetensors(os.path.join(folder, "expected_logits.safetensors"),
                              {"logits": logits.to(torch.float32), "input_ids": ids.to(torch.int64)})
        if name != "f16_sharded":
            loss, grads, _ = ref.loss_and_grads(p, c, [ids])
            out = {k: v.to(torch.float32) for k, v in grads.items()}
            out["loss"] = torch.tensor([loss], dtype=torch.float64)
            ref.write_safetensors(os.path.join(folder, "expected_grads.safetensors"), out)
            with open(os.path.join(folder, "grads_batch.json"), "w") as f:
                json.dump({"input_ids": ids.tolist()}, f)
        prompt = ids[0, :5].tolist()
        ctx, stride = 48, 20
        nll, scored = ref.perplexity(p, c, ppl_ids, ctx, stride)
        manifest["models"].append({
            "name": name, "dir": folder, "prompt": prompt, "greedy": ref.greedy(p, c, prompt, 24),
            "ppl_ctx": ctx, "ppl_stride": stride, "ppl_nll": nll, "ppl_scored": scored,
        })
    write_bad_pickles(args.out, models[0][1])
    manifest["optimizer"] = write_optimizer_runs(args.out, models, g)
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
