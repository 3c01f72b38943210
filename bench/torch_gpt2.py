"""The competitor for bench/run.sh: GPT-2 / Cerebras-GPT in PyTorch, written the way an engineer
would for speed on Debian's torch 1.13 (fused QKV nn.Linear, batched matmul attention, a KV
cache for decoding, no autograd for inference; torch.optim.AdamW and clip_grad_norm_ for
training), on torch.set_num_threads(2). The caller sets the OpenMP wait policy (bench/run.sh
runs both OMP_WAIT_POLICY=PASSIVE and GOMP_SPINCOUNT=100000 and keeps the better). With
--autocast bf16 the forward passes run under torch.autocast("cpu", dtype=torch.bfloat16), as
PyTorch's CPU mixed precision is meant to be used (master weights and the optimizer in fp32).

Prints one JSON object: prefill tokens/s per length, decode tokens/s at batch 1; or with
--train BxT, training tokens/s of full steps (forward, backward, clipping, AdamW); and the
process's peak resident memory.
Usage: OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 torch_gpt2.py --layers 10 --d 768 --heads 12
"""
import argparse
import contextlib
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads, ffn, gelu):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.c_fc, self.mlp_proj = nn.Linear(d, ffn), nn.Linear(ffn, d)
        self.heads, self.gelu = heads, gelu

    def forward(self, x, cache, pos0):
        B, T, C = x.shape
        H, D = self.heads, C // self.heads
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=-1)
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in (q, k, v))
        if cache is not None:
            cache[0][:, :, pos0:pos0 + T] = k
            cache[1][:, :, pos0:pos0 + T] = v
            k, v = cache[0][:, :, :pos0 + T], cache[1][:, :, :pos0 + T]
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
        if T > 1:
            mask = torch.ones(T, pos0 + T, dtype=torch.bool).triu(pos0 + 1)
            att = att.masked_fill(mask, float("-inf"))
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate=self.gelu))


class GPT2(nn.Module):
    def __init__(self, vocab, positions, d, layers, heads, ffn, gelu="none"):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(positions, d)
        self.h = nn.ModuleList(Block(d, heads, ffn, gelu) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        for p in self.parameters():
            nn.init.normal_(p, std=0.02)

    def forward(self, ids, caches=None, pos0=0, last_only=False):
        T = ids.shape[1]
        x = self.wte(ids) + self.wpe(torch.arange(pos0, pos0 + T))
        for i, blk in enumerate(self.h):
            x = blk(x, caches[i] if caches else None, pos0)
        x = self.ln_f(x[:, -1:] if last_only else x)
        return x @ self.wte.weight.T


def precision(a):
    """The autocast context of --autocast (nothing for fp32)."""
    if a.autocast == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train(m, a):
    import resource
    B, T = (int(x) for x in a.train.split("x"))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    ids = torch.randint(0, a.vocab, (B, T + 1))
    x, y = ids[:, :-1], ids[:, 1:]

    def step():
        opt.zero_grad(set_to_none=True)
        with precision(a):
            logits = m(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(a.train_steps):
        step()
    per_step = (time.perf_counter() - t0) / a.train_steps
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "autocast": a.autocast, "train": {
        "batch": B, "seq": T, "seconds_per_step": per_step, "tokens_per_s": B * T / per_step,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--positions", type=int, default=2048)
    ap.add_argument("--gelu", default="none", help="none (exact erf, Cerebras-GPT) or tanh (GPT-2)")
    ap.add_argument("--prefill", default="128,1024")
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train", default="")
    ap.add_argument("--train-steps", type=int, default=3)
    ap.add_argument("--autocast", default="none", choices=["none", "bf16"], help="bf16: torch.autocast on the CPU")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = GPT2(a.vocab, a.positions, a.d, a.layers, a.heads, 4 * a.d, a.gelu)
    if a.train:
        print(json.dumps(train(m, a)))
        return
    m = m.eval()
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "autocast": a.autocast, "prefill": {}}
    with torch.no_grad(), precision(a):
        for T in (int(t) for t in a.prefill.split(",")):
            ids = torch.randint(0, a.vocab, (1, T))
            m(ids, last_only=True)  # warm-up
            best, total, r = 1e30, 0.0, 0
            while r < 100 and (r < a.repeats or total < 2.0):  # as wafer bench: >= 2 s of tries
                t0 = time.perf_counter()
                m(ids, last_only=True)
                dt = time.perf_counter() - t0
                best, total, r = min(best, dt), total + dt, r + 1
            out["prefill"][str(T)] = {"seconds": best, "tokens_per_s": T / best}
        if a.decode_tokens > 1:
            best, total, r = 1e30, 0.0, 0
            D = a.d // a.heads
            while r < 100 and (r < a.repeats or total < 2.0):
                n_max = 16 + a.decode_tokens
                caches = [(torch.zeros(1, a.heads, n_max, D), torch.zeros(1, a.heads, n_max, D)) for _ in m.h]
                ids = torch.randint(0, a.vocab, (1, 16))
                logits = m(ids, caches, 0, last_only=True)
                pos = 16
                t0 = time.perf_counter()
                for _ in range(a.decode_tokens - 1):
                    nxt = logits[:, -1].argmax(-1, keepdim=True)
                    logits = m(nxt, caches, pos, last_only=True)
                    pos += 1
                dt = time.perf_counter() - t0
                best, total, r = min(best, dt / (a.decode_tokens - 1)), total + dt, r + 1
            out["decode"] = {"batch": 1, "seconds_per_token": best, "tokens_per_s": 1.0 / best}
    import resource
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps(out))


if __name__ == "__main__":
    main()
