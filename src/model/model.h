// model/model.h: a GPT-2-layout model in memory: its config, the flat fp32 parameter buffer
// and the views into it; loading from and saving to HF folders; random initialisation.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/zero_pages.h"
#include "kernels/cpu/matmul.h"
#include "model/config.h"
#include "model/parameters.h"

namespace wafer {

class GgufFile;

struct Model {
  ModelConfig config;         // the whole model's hyperparameters
  Shard shard;                // the part held here (the whole model on one rank)
  // shard_parameter_count(config, shard) floats, in for_each_parameter order. Zero pages until
  // written (core/zero_pages.h): the fp32 matrices a quantized model never fills cost nothing.
  ZeroPages<float> params;
  ModelWeights w;  // views into params
  // GEMM precision. Under BF16, params_bf16 is a bf16 copy of params (same layout), refreshed
  // after every optimizer step; params stay the fp32 master weights.
  Precision precision = Precision::F32;
  std::vector<uint16_t> params_bf16;
  bool fp32_matrices_released = false;  // inference: only the bf16 copy (or quantized rows) is resident
  // Quantized inference (--precision q8_0|q4_0|q4_k, quantize_matrices): the blocks' four
  // matrices and the head as quantized rows, keyed by the fp32 pointer a layer passes to
  // weight(); wte's lookups read the head's rows (tied) or its own.
  // A quantized matrix's rows live in quant_storage, or in place in weight_file: a GGUF file
  // whose blocks are of the type the policy gives them (load_gguf_model with a type), mapped
  // read-only for as long as the model lives, as llama.cpp maps its files.
  std::vector<std::vector<uint8_t>> quant_storage;
  std::shared_ptr<const GgufFile> weight_file;
  std::map<const float*, QuantMatrix> quant;
  // Serving (pack_serving_panels): the matrices whose range of params (fp32) or params_bf16
  // (bf16) holds rows_matmul's panels instead of the plain layout, keyed as quant is.
  std::set<const float*> serving_panels;

  // The view a dense layer reads of the matrix at p (a pointer into params).
  WeightView weight(const float* p) const {
    const QuantMatrix* q = nullptr;
    if (!quant.empty()) {
      const auto it = quant.find(p);
      if (it != quant.end()) q = &it->second;
    }
    const uint16_t* p16 = params_bf16.empty() ? nullptr : params_bf16.data() + (p - params.data());
    if (serving_panels.count(p)) return p16 ? WeightView::panels(p16) : WeightView::panels(p);
    return {p, p16, q};
  }

  explicit Model(const ModelConfig& c);
  Model(const ModelConfig& c, const Shard& sh);
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
};

// Loads an HF folder: config.json plus model.safetensors, a sharded model.safetensors.index.json,
// or pytorch_model.bin (also sharded). 16-bit weights are upcast to fp32. Throws on a missing,
// unexpected, mis-shaped or non-float tensor, naming the file and tensor.
std::unique_ptr<Model> load_hf_model(const std::string& dir);
// Shard `sh` of the model in an HF folder whose config is `c`: each rank copies only its slice of
// each tensor out of the mapped files (model/weight_files.h), never the whole model.
std::unique_ptr<Model> load_hf_model(const std::string& dir, const ModelConfig& c, const Shard& sh);
// Shard `sh` for inference with quantized weights: what quantize_matrices(t) makes of
// load_hf_model's, with each matrix read and converted to fp32 just before it is quantized and
// its fp32 pages released right after, so at most one matrix's fp32 values are resident (a
// 13B bf16 folder loads as q8_0 in the quantized model's size, not 52 GB). A whole-model GGUF
// file is load_gguf_model(path, t): its blocks used in place.
std::unique_ptr<Model> load_hf_model_quantized(const std::string& dir, const ModelConfig& c, const Shard& sh,
                                               QuantType t);
// The config.json of an HF folder, with the same checks (the folder exists, has a config).
ModelConfig load_hf_config(const std::string& dir);

struct SaveOptions {
  DType dtype = DType::F32;  // F32, BF16 or F16 on disk
};
// Writes config.json + model.safetensors in the names, shapes and layout HF writes
// (tied lm_head omitted). Each file goes through a temporary name and a rename.
void save_hf_model(const Model& m, const std::string& dir, const SaveOptions& opts = {});

// A copy in HF's standard parametrisation: μP multipliers folded into the weights (embedding
// scale into wte and wpe, logit scale into an untied lm_head, the 1/D attention scale into the
// query columns of c_attn as 1/sqrt(D)), so HF GPT-2 computes the same logits. A non-μP model
// is copied unchanged.
std::unique_ptr<Model> export_for_hf(const Model& m);

// Sets the GEMM precision: BF16 builds the bf16 copy of params; where the CPU has no bf16
// GEMMs it warns once and stays in fp32 (see usable_precision). Returns the precision in use.
Precision set_precision(Model& m, Precision p);
// Rounds params into params_bf16 again (after the fp32 master weights changed). No-op in fp32.
void refresh_bf16_copy(Model& m);
// Inference with bf16 weights in memory: returns the fp32 pages of every matrix (the blocks'
// four, wte, an untied lm_head) to the system, halving their footprint. Requires BF16; the
// model must not be trained or saved afterwards (its fp32 matrices read as zeros).
void release_fp32_matrices(Model& m);
// Serving (rows_matmul's batch-invariant GEMMs alone read the weights): rearranges each block
// matrix in place into rows_matmul's panels where they take the matrix's own size (columns a
// multiple of 64, and rows even for bf16; the rest stay as they are): the fp32 matrices under
// F32, the bf16 copy under BF16 once the fp32 matrices are released. A no-op for quantized
// weights or where rows_panels_supported is false. Afterwards the model serves only: rows_matmul
// alone reads those matrices (matmul_forward refuses them), and it is never trained or saved.
void pack_serving_panels(Model& m);
// Inference with quantized weights: the blocks' four matrices and the head (wte's rows, tied or
// not) become rows of `t` blocks along their input dimension (a tensor whose rows do not split
// into t's blocks, as q4_k's 256 on C = 1088, falls back to q8_0, as llama.cpp falls back), and
// their fp32 pages are released. Requires fp32 (no bf16 copy); no training or saving afterwards.
// `given` (may be null): blocks a matrix already has, keyed by its fp32 pointer (a quantized
// GGUF file's, gguf_quant_matrices); one whose type and shape are what this policy gives the
// matrix is used in place (it must outlive m) instead of quantized again from the fp32 values,
// and its fp32 values are never read (they may never have been written).
// `fill` (may be empty): writes the fp32 values of the matrix at w just before it is quantized,
// for a loader that left the matrices unread (quantized_matrices): one matrix's fp32 pages are
// then resident at a time, not the whole model's.
// The policy behind both quantize_matrices and the GGUF writer (gguf_tensor_type), as
// llama.cpp's quantizer gives types: the type under base type t of a matrix whose rows hold
// `cols` values (is_head: the head, or wte when tied), or none where the rows do not split into
// 32 (the matrix stays fp32 in memory, F16 in a file). The head takes q6_K under every t but
// q8_0, and a matrix whose rows do not split into the type's blocks q8_0.
std::optional<QuantType> matrix_quant_type(QuantType t, int64_t cols, bool is_head);
using MatrixFill = std::function<void(float* w)>;
void quantize_matrices(Model& m, QuantType t, const std::map<const float*, QuantMatrix>* given = nullptr,
                       const MatrixFill& fill = {});
// The matrices (by fp32 pointer) quantize_matrices(m, t) quantizes: the ones a loader can leave
// for quantize_matrices' `fill`.
std::set<const float*> quantized_matrices(const Model& m, QuantType t);
// out[N, C] = scale · the wte rows of tokens[N] in this rank's vocabulary shard (0 for the rest),
// read from the copy the model keeps resident: the quantized rows, the bf16 copy once the fp32
// matrices are released, or the fp32 table.
void embed_token_rows(const Model& m, float* out, const int32_t* tokens, int64_t N, float scale);

struct InitOptions {
  uint64_t seed = 1234;
  double sigma = 0.02;  // base σ of the truncated normal (±2σ)
};
// Cerebras-GPT initialisation: weights ~ truncated normal(0, σ) cut at ±2σ; attn/mlp c_proj
// weights σ/sqrt(2L) up to 590M-size models (C < 2048) and 0.0025 from 1.3B (C >= 2048); μP
// models use σ = 0.08·sqrt(base/C) for hidden matrices; biases 0, LayerNorm weights 1.
void init_weights(Model& m, const InitOptions& opts);

}  // namespace wafer
