"""Independent PyTorch reference for wafer's tests and benchmarks.

A GPT-2 (HF GPT2LMHeadModel semantics) written directly in torch, plus a safetensors
reader/writer, so nothing here shares code with the C++ engine. Run with Debian's
/usr/bin/python3 (python3-torch).
"""
import json
import math
import os
import struct

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
          "I64": torch.int64}
NAMES = {v: k for k, v in DTYPES.items()}


def default_config(**kw):
    c = dict(vocab_size=50257, n_positions=64, n_embd=24, n_layer=2, n_head=3, n_inner=None,
             activation_function="gelu", layer_norm_epsilon=1e-5, tie_word_embeddings=True,
             scale_attn_weights=True, bos_token_id=50256, eos_token_id=50256,
             model_type="gpt2", architectures=["GPT2LMHeadModel"])
    c.update(kw)
    return c


def param_shapes(c):
    """HF names and shapes of every parameter, in wafer's order."""
    V, P, C, L = c["vocab_size"], c["n_positions"], c["n_embd"], c["n_layer"]
    Fw = c["n_inner"] or 4 * C
    out = [("transformer.wte.weight", (V, C)), ("transformer.wpe.weight", (P, C))]
    for l in range(L):
        h = f"transformer.h.{l}."
        out += [(h + "ln_1.weight", (C,)), (h + "ln_1.bias", (C,)),
                (h + "attn.c_attn.weight", (C, 3 * C)), (h + "attn.c_attn.bias", (3 * C,)),
                (h + "attn.c_proj.weight", (C, C)), (h + "attn.c_proj.bias", (C,)),
                (h + "ln_2.weight", (C,)), (h + "ln_2.bias", (C,)),
                (h + "mlp.c_fc.weight", (C, Fw)), (h + "mlp.c_fc.bias", (Fw,)),
                (h + "mlp.c_proj.weight", (Fw, C)), (h + "mlp.c_proj.bias", (C,))]
    out += [("transformer.ln_f.weight", (C,)), ("transformer.ln_f.bias", (C,))]
    if not c.get("tie_word_embeddings", True):
        out.append(("lm_head.weight", (V, C)))
    return out


def random_params(c, seed, std=0.3):
    """Weights with enough spread that greedy choices are not near-ties."""
    g = torch.Generator().manual_seed(seed)
    p = {}
    for name, shape in param_shapes(c):
        if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
            p[name] = 1.0 + 0.2 * torch.randn(shape, generator=g)
        elif name.endswith(".bias"):
            p[name] = 0.1 * torch.randn(shape, generator=g)
        else:
            p[name] = std * torch.randn(shape, generator=g)
    return p


def forward(p, c, ids):
    """Logits [B, T, V] in float64 for ids [B, T] (LongTensor)."""
    B, T = ids.shape
    C, H = c["n_embd"], c["n_head"]
    D = C // H
    eps = c["layer_norm_epsilon"]
    d = {k: v.to(torch.float64) for k, v in p.items()}
    x = d["transformer.wte.weight"][ids] + d["transformer.wpe.weight"][torch.arange(T)]
    x = x * c.get("mup_embeddings_scale", 1.0)
    if not c.get("scale_attn_weights", True):
        scale = 1.0
    elif c.get("mup_scale_qk_dot_by_d", False):
        scale = 1.0 / D
    else:
        scale = 1.0 / math.sqrt(D)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    approximate = "none" if c["activation_function"] == "gelu" else "tanh"
    for l in range(c["n_layer"]):
        h = f"transformer.h.{l}."
        a = F.layer_norm(x, (C,), d[h + "ln_1.weight"], d[h + "ln_1.bias"], eps)
        qkv = a @ d[h + "attn.c_attn.weight"] + d[h + "attn.c_attn.bias"]
        q, k, v = qkv.split(C, dim=-1)
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * scale
        att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ d[h + "attn.c_proj.weight"] + d[h + "attn.c_proj.bias"]
        a = F.layer_norm(x, (C,), d[h + "ln_2.weight"], d[h + "ln_2.bias"], eps)
        m = F.gelu(a @ d[h + "mlp.c_fc.weight"] + d[h + "mlp.c_fc.bias"], approximate=approximate)
        x = x + m @ d[h + "mlp.c_proj.weight"] + d[h + "mlp.c_proj.bias"]
    x = F.layer_norm(x, (C,), d["transformer.ln_f.weight"], d["transformer.ln_f.bias"], eps)
    head = d["transformer.wte.weight"] if c.get("tie_word_embeddings", True) else d["lm_head.weight"]
    return (x @ head.T) * c.get("mup_output_scale", 1.0)


def greedy(p, c, prompt, n_new, stop=50256):
    ids = list(prompt)
    new = []
    for _ in range(n_new):
        if len(ids) >= c["n_positions"]:
            break
        logits = forward(p, c, torch.tensor([ids]))[0, -1]
        t = int(torch.argmax(logits))
        new.append(t)
        ids.append(t)
        if t == stop:
            break
    return new


def perplexity(p, c, ids, ctx, stride):
    """HF's sliding-window perplexity, token-weighted: (total NLL, tokens scored)."""
    n = len(ids)
    total, scored, prev_end = 0.0, 0, 0
    for begin in range(0, n, stride):
        end = min(begin + ctx, n)
        trg = end - prev_end
        window = torch.tensor([ids[begin:end]])
        logp = forward(p, c, window)[0].log_softmax(-1)
        T = end - begin
        for t in range(max(1, T - trg), T):
            total -= float(logp[t - 1, ids[begin + t]])
            scored += 1
        prev_end = end
        if end == n:
            break
    return total, scored


def write_safetensors(path, tensors, order=None):
    """tensors: name -> torch tensor (contiguous). Data laid out in `order` (default: sorted)."""
    names = order or sorted(tensors)
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for n in names:
        t = tensors[n].contiguous()
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype in (torch.bfloat16, torch.float16) else t.numpy().tobytes()
        header[n] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = bytearray(data[8 + n + b:8 + n + e])
        dt = DTYPES[info["dtype"]]
        if dt in (torch.bfloat16, torch.float16):
            t = torch.frombuffer(raw, dtype=torch.int16).view(dt) if raw else torch.empty(0, dtype=dt)
        else:
            t = torch.frombuffer(raw, dtype=dt) if raw else torch.empty(0, dtype=dt)
        out[name] = t.reshape(info["shape"])
    return out


def load_folder(path):
    """(params as float32, config) from an HF folder with config.json + model.safetensors."""
    with open(os.path.join(path, "config.json")) as f:
        c = json.load(f)
    p = {k: v.float() for k, v in read_safetensors(os.path.join(path, "model.safetensors")).items()}
    return p, c


def lr_at(step, peak, warmup, total, decay, final_ratio):
    """wafer's schedule (train/schedule.h), for the optimizer reference."""
    if step < warmup:
        return peak * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - 1 - warmup))
    if decay == "linear":
        return peak * (1 - (1 - final_ratio) * p)
    return peak * (final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


def is_matrix(name):
    return name.endswith(".weight") and any(k in name for k in ("c_attn", "c_proj", "c_fc"))


def decays(name):
    return is_matrix(name) or name in ("transformer.wte.weight", "transformer.wpe.weight", "lm_head.weight")


def mean_loss(leaves, c, batches):
    """Mean next-token cross-entropy over every counted target of the micro-batches (each an
    [B, T] LongTensor, HF labels=input_ids convention)."""
    total, counted = 0.0, 0
    for ids in batches:
        logits = forward(leaves, c, ids)
        V = logits.shape[-1]
        total = total + F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1), reduction="sum")
        counted += ids.shape[0] * (ids.shape[1] - 1)
    return total / counted


def loss_and_grads(p, c, batches):
    """mean_loss and its float64 gradients."""
    leaves = {k: v.detach().to(torch.float64).requires_grad_(True) for k, v in p.items()}
    loss = mean_loss(leaves, c, batches)
    loss.backward()
    return float(loss), {k: v.grad for k, v in leaves.items()}, leaves


def adamw_run(p, c, steps, peak, warmup, decay, final_ratio, clip=1.0, wd=0.1, betas=(0.9, 0.95), eps=1e-8):
    """torch.optim.AdamW over `steps` (a list of micro-batch lists), float64. Returns (losses, params)."""
    leaves = {k: v.detach().to(torch.float64).clone().requires_grad_(True) for k, v in p.items()}
    C = c["n_embd"]
    mult = {k: (c["mup_base_width"] / C if c.get("mup_base_width", 0) and is_matrix(k) else 1.0) for k in leaves}
    groups = [{"params": [v], "lr": peak, "weight_decay": wd if decays(k) else 0.0, "name": k}
              for k, v in leaves.items()]
    opt = torch.optim.AdamW(groups, lr=peak, betas=betas, eps=eps)
    losses = []
    for s, micro in enumerate(steps):
        opt.zero_grad()
        loss = mean_loss(leaves, c, micro)
        loss.backward()
        losses.append(float(loss))
        torch.nn.utils.clip_grad_norm_(list(leaves.values()), clip)
        lr = lr_at(s, peak, warmup, len(steps), decay, final_ratio)
        for g in opt.param_groups:
            g["lr"] = lr * mult[g["name"]]
        opt.step()
    return losses, {k: v.detach() for k, v in leaves.items()}
