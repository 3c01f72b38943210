// model/gguf_gpt2.h: wafer's model as llama.cpp's `gpt2` architecture in a GGUF file, both ways.
// Names, metadata keys and orientation follow convert_hf_to_gguf.py (GPT2Model) and llama.cpp's
// src/models/gpt2.cpp:
//   transformer.wte.weight [V, C]        → token_embd.weight     ne [C, V]
//   transformer.wpe.weight [P, C]        → position_embd.weight  ne [C, P]
//   transformer.h.N.ln_1.{weight,bias}   → blk.N.attn_norm.*     ne [C]
//   transformer.h.N.attn.c_attn.*        → blk.N.attn_qkv.*      weight ne [C, 3C]
//   transformer.h.N.attn.c_proj.*        → blk.N.attn_output.*   weight ne [C, C]
//   transformer.h.N.ln_2.*               → blk.N.ffn_norm.*
//   transformer.h.N.mlp.c_fc.*           → blk.N.ffn_up.*        weight ne [C, F]
//   transformer.h.N.mlp.c_proj.*         → blk.N.ffn_down.*      weight ne [F, C]
//   transformer.ln_f.*                   → output_norm.*
//   lm_head.weight [V, C] (untied only)  → output.weight         ne [C, V]; absent when tied, and
//                                                                llama.cpp then reads token_embd
// HF's Conv1D weights are [in, out]; the converter transposes them to torch's [out, in], whose
// GGUF ne (fastest first) is [in, out]: the bytes on disk are the transpose of wafer's buffer.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "model/model.h"
#include "tokenizer/bpe.h"

namespace wafer {

// The tokenizer as GGUF stores it: tokens by id in vocab.json's byte-mapped spelling ("Ġthe"),
// merges as merges.txt lines ("Ġ t").
struct GgufVocab {
  std::vector<std::string> tokens;
  std::vector<std::string> merges;
  std::vector<int32_t> special_ids;  // added special tokens (<|endoftext|>): token type CONTROL
};
// Reads vocab.json + merges.txt or tokenizer.json from a folder; throws when it has neither.
GgufVocab read_gguf_vocab(const std::string& dir);
// The vocabulary a GGUF file carries (padding tokens dropped); false when it has none.
bool gguf_vocab_of(const GgufFile& f, GgufVocab* out);

// The GGUF name of an HF parameter name, and whether its data is stored transposed.
std::string gguf_tensor_name(const std::string& hf_name, bool* transposed);

// The type a tensor gets in a file of base type `base`, following llama.cpp: 1-D tensors and
// position_embd stay F32 (convert_hf_to_gguf keeps them so and llama-quantize leaves them);
// F16/BF16 apply to every other tensor; under a block type the matrices take matrix_quant_type's
// (model.h, the in-memory policy): the output matrix (token_embd when tied) Q6_K under Q4_0/Q4_K,
// as in llama.cpp, and a row length ne[0] the block does not divide Q8_0, then F16 (llama.cpp:
// Q4_K → Q5_0 → ... → F16, Q6_K → Q8_0).
GgufType gguf_tensor_type(const std::string& gguf_name, const std::vector<int64_t>& ne, GgufType base, bool tied);

// Writes `m` (a whole model, one rank) as a gpt2 GGUF file of base type `type`; μP multipliers are
// folded in first (export_for_hf). The tokenizer goes into the metadata when `vocab` is given.
// The activation goes in as wafer.activation_function: llama.cpp ignores it and always computes
// the tanh GELU, wafer reads it back so a round trip keeps the model's own.
void save_gguf_model(const Model& m, const std::string& path, GgufType type, const GgufVocab* vocab);

// The config a gpt2 GGUF file describes (validated as config.json would be).
ModelConfig gguf_model_config(const GgufFile& f);
ModelConfig load_gguf_config(const std::string& path);
// Loads a gpt2 GGUF file into fp32 (quantized tensors dequantized).
std::unique_ptr<Model> load_gguf_model(const std::string& path);
// Loads a gpt2 GGUF file for inference with quantized weights of base type t: the model
// quantize_matrices(t) makes of load_gguf_model's, except that a matrix the file holds in the
// type t's policy gives it is computed on in place in the mapped file (Model::weight_file),
// never dequantized, copied or quantized again. Its fp32 pages are never written, so they
// never take memory: a model of such matrices takes about its file's size, mapped.
std::unique_ptr<Model> load_gguf_model(const std::string& path, QuantType t);
// The blocks of f's matrices (the blocks' four, token_embd, output) that are of a type wafer
// computes with (Q8_0, Q4_0, Q4_K, Q6_K), as rows along the input dimension, keyed by the fp32
// pointer of that matrix in `m` (a whole model loaded from f): quantize_matrices' `given`. The
// views point into f, which must outlive them.
std::map<const float*, QuantMatrix> gguf_quant_matrices(const GgufFile& f, const Model& m);
// The tokenizer in a GGUF file's metadata (tokenizer.ggml.tokens + merges).
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::string& path);

// True for a path naming a .gguf file (the loaders dispatch on it).
bool is_gguf_path(const std::string& path);

}  // namespace wafer
