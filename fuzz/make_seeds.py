#!/usr/bin/python3
"""Writes the fuzz seed corpus (fuzz/corpus/<harness>/): small real files of each format, made
with the libraries that write them for users (torch.save, zipfile, json). Run with Debian's
/usr/bin/python3 (python3-torch); the outputs are committed, so tests do not need torch."""
import collections
import io
import json
import os
import struct
import sys
import zipfile
import zlib

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(harness, name, data):
    os.makedirs(os.path.join(OUT, harness), exist_ok=True)
    with open(os.path.join(OUT, harness, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def safetensors(tensors, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def torch_bin(sd):
    buf = io.BytesIO()
    torch.save(sd, buf)
    return buf.getvalue()


def data_pkl(binary):
    z = zipfile.ZipFile(io.BytesIO(binary))
    return z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))


def shard(tokens, vocab):
    bpt = 2 if vocab <= 65536 else 4
    ids = b"".join(struct.pack("<H" if bpt == 2 else "<I", t) for t in tokens)
    crc = zlib.crc32(ids)
    return b"WFRTOKS\0" + struct.pack("<IIQII", 1, bpt, len(tokens), vocab, crc) + ids, crc


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def main():
    torch.manual_seed(0)
    # safetensors: mixed dtypes, metadata, an empty tensor and a scalar.
    put("safetensors", "mixed.safetensors", safetensors({
        "wte.weight": ("F32", [4, 3], struct.pack("<12f", *range(12))),
        "ln.bias": ("BF16", [3], b"\x80\x3f\x00\x40\x40\x40"),
        "ids": ("I64", [2], struct.pack("<2q", 7, -1)),
        "empty": ("F16", [0, 5], b""),
        "scalar": ("F64", [], struct.pack("<d", 0.5)),
    }, {"format": "pt"}))
    put("safetensors", "one.safetensors", safetensors({"a": ("U8", [2, 2], b"\x01\x02\x03\x04")}))

    # torch .bin: a state dict with a transposed (strided) tensor, a shared storage, bf16 and int.
    w = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    sd = collections.OrderedDict()
    sd["h.0.attn.c_attn.weight"] = w
    sd["h.0.mlp.c_fc.weight"] = w.t()
    sd["ln_f.bias"] = torch.ones(4, dtype=torch.bfloat16)
    sd["step"] = torch.tensor([3], dtype=torch.int64)
    sd["view"] = w[1]
    binary = torch_bin(sd)
    put("zip", "state_dict.bin", binary)
    put("torch_bin", "state_dict.pkl", data_pkl(binary))
    # A second pickle, with a Parameter and protocol 2 framing (torch.save's pickle_protocol).
    buf = io.BytesIO()
    torch.save({"p": torch.nn.Parameter(torch.zeros(2, 2)), "h": torch.zeros(3, dtype=torch.float16)}, buf,
               pickle_protocol=2)
    put("torch_bin", "parameter.pkl", data_pkl(buf.getvalue()))
    # zip: deflated entries and zip64 records, as other writers make them.
    for name, kw in [("deflated.zip", dict(compression=zipfile.ZIP_DEFLATED)), ("zip64.zip", {})]:
        b = io.BytesIO()
        with zipfile.ZipFile(b, "w", **kw) as zf:
            with zf.open("archive/data.pkl", "w", force_zip64=name == "zip64.zip") as f:
                f.write(b"\x80\x02}q\x00." * 20)
            zf.writestr("archive/data/0", bytes(range(64)))
        put("zip", name, b.getvalue())

    # config.json: GPT-2's, a Cerebras-GPT one with mu-P fields, one with n_inner null.
    base = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "activation_function": "gelu_new",
            "vocab_size": 50257, "n_positions": 1024, "n_ctx": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12,
            "n_inner": None, "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True, "scale_attn_weights": True,
            "bos_token_id": 50256, "eos_token_id": 50256}
    put("config", "gpt2.json", json.dumps(base, indent=2))
    mup = dict(base, activation_function="gelu", n_embd=256, n_head=4, n_layer=2, n_inner=1024, vocab_size=512,
               n_positions=128, mup_base_width=256, mup_embeddings_scale=10.0, mup_output_scale=1.0,
               mup_scale_qk_dot_by_d=True, scale_attn_by_inverse_layer_idx=False)
    put("config", "mup.json", json.dumps(mup))
    put("config", "tiny.json", '{"vocab_size":8,"n_positions":4,"n_embd":4,"n_layer":1,"n_head":2}')

    # token shards: 2 and 4 bytes per token.
    put("token_shard", "u16.bin", shard([5, 1, 50256, 0, 65535, 17], 50257)[0])
    put("token_shard", "u32.bin", shard([70000, 3, 99999], 100000)[0])
    put("token_shard", "empty.bin", shard([], 100)[0])

    # manifest.json matching fuzz_data_manifest's shards (64 and 16 tokens, vocabulary 100).
    _, crc_train = shard([i * 7 % 100 for i in range(64)], 100)
    _, crc_val = shard([i * 3 % 100 for i in range(16)], 100)
    manifest = {"version": 1, "vocab_size": 100, "tokenizer": "/tmp/tok", "files": 1, "skipped_files": 0,
                "bytes": 400,
                "train": {"tokens": 64, "shards": [{"file": "train_000.bin", "tokens": 64, "crc32": crc_train}]},
                "val": {"tokens": 16, "shards": [{"file": "val_000.bin", "tokens": 16, "crc32": crc_val}]}}
    put("data_manifest", "manifest.json", json.dumps(manifest, indent=2))

    # state.json as save_checkpoint writes it.
    state = {"version": 1, "step": 20, "adam_t": 20,
             "trainer": {"seed": 1234, "batch": 4, "seq": 64, "micro_batches": 1, "data_cursor": 20,
                         "schedule": "cosine 1e-3 warmup 2", "layout": "dp1 tp1 pp1 cp1"},
             "crc32": {"model.safetensors": 3735928559, "config.json": 1, "optimizer.safetensors": 4294967295}}
    put("state_json", "state.json", json.dumps(state, indent=2))

    # text to encode.
    put("tokenizer_encode", "english.txt", "Hello world, it's a test. We'll see 12345 numbers\n\n  and spaces.")
    put("tokenizer_encode", "unicode.txt", "caf\u00e9 \u4e2d\u6587 \U0001F600 \u00a0x\u3000y \u200b<|endoftext|>next")
    put("tokenizer_encode", "invalid.txt", b"ok \xff\xfe\xc3 \xe2\x82 tail\x00\x01")

    # tokenizer files: 256 byte tokens, a few merges, <|endoftext|>.
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    merges = [("h", "e"), ("l", "l"), ("he", "ll"), ("\u0120", "w"), ("o", "r")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    merges_txt = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    put("tokenizer_load", "vocab_merges", b"\x00" + json.dumps(vocab).encode() + b"\x00" + merges_txt.encode())
    tj = {"version": "1.0", "added_tokens": [{"id": vocab["<|endoftext|>"], "content": "<|endoftext|>",
                                               "special": True}],
          "model": {"type": "BPE", "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges[:3]] +
                    [list(m) for m in merges[3:]]}}
    put("tokenizer_load", "tokenizer_json", b"\x01" + json.dumps(tj).encode())


    # gguf: metadata of each kind, tensors F32, F16, Q8_0 and Q4_0, 32-byte alignment.
    put("gguf", "small.gguf", gguf([
        ("general.architecture", 8, "gpt2"), ("general.alignment", 4, 32), ("gpt2.context_length", 4, 16),
        ("general.flag", 7, True), ("tokenizer.ggml.tokens", 9, (8, ["a", "b", "<|endoftext|>"])),
        ("tokenizer.ggml.token_type", 9, (5, [1, 1, 3])), ("gpt2.eps", 6, 1e-5), ("big", 10, 2**40)],
        [("w", 0, [4, 2], struct.pack("<8f", *range(8))), ("h", 1, [3], struct.pack("<3e", 1, 2, 3)),
         ("q8", 8, [32, 1], struct.pack("<e", 0.5) + bytes(range(32))),
         ("q4", 2, [32], struct.pack("<e", 0.25) + bytes(range(16)))]))


def gguf(kvs, tensors):
    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b
    scalar = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
    def value(t, v):
        if t == 8:
            return s(v)
        if t == 9:
            et, items = v
            return struct.pack("<IQ", et, len(items)) + b"".join(value(et, i) for i in items)
        return struct.pack(scalar[t], v)
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for k, t, v in kvs:
        out += s(k) + struct.pack("<I", t) + value(t, v)
    data, offsets = b"", []
    for name, t, ne, raw in tensors:
        data += b"\0" * ((32 - len(data) % 32) % 32)
        offsets.append(len(data))
        data += raw
    for (name, t, ne, raw), off in zip(tensors, offsets):
        out += s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        out += struct.pack("<IQ", t, off)
    out += b"\0" * ((32 - len(out) % 32) % 32)
    return out + data


if __name__ == "__main__":
    sys.exit(main())
