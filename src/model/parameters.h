// model/parameters.h: every parameter tensor listed once (HF name, shape, flags), the one flat
// fp32 buffer they live in, and named views into it. Load, save, init and (later) the optimizer
// and the tensor-parallel sharder all walk for_each_parameter.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/config.h"

namespace wafer {

// Views of one block's weights. Linear weights are HF Conv1D layout [in, out].
struct LayerWeights {
  float* ln1_w;        // [C]
  float* ln1_b;        // [C]
  float* qkv_w;        // [C, 3C]  Q|K|V along the output dim
  float* qkv_b;        // [3C]
  float* attn_proj_w;  // [C, C]
  float* attn_proj_b;  // [C]
  float* ln2_w;        // [C]
  float* ln2_b;        // [C]
  float* fc_w;         // [C, F]
  float* fc_b;         // [F]
  float* fc_proj_w;    // [F, C]
  float* fc_proj_b;    // [C]
};

struct ModelWeights {
  float* wte;     // [V, C]
  float* wpe;     // [P, C]
  std::vector<LayerWeights> layers;  // [L]
  float* lnf_w;   // [C]
  float* lnf_b;   // [C]
  float* lm_head; // [V, C]; points at wte when tied
};

enum class ParamKind { Embedding, Matrix, Bias, Norm };

struct ParamSpec {
  std::string name;            // HF name, e.g. "transformer.h.3.attn.c_attn.weight"
  std::vector<int64_t> shape;
  ParamKind kind;              // decides weight decay (Embedding, Matrix) and μP groups
  int layer = -1;              // block index, -1 outside the blocks
  bool is_residual_proj = false;  // attn.c_proj / mlp.c_proj weights (their own init σ)
  int64_t numel() const;
};

// Calls fn(spec, slot) for every stored parameter, in buffer order; `slot` is the view pointer
// in `w` that the parameter backs (w.layers is sized here). The untied lm_head comes last.
void for_each_parameter(const ModelConfig& c, ModelWeights& w,
                        const std::function<void(const ParamSpec&, float*& slot)>& fn);
// Points every view of `w` into `base` (parameter_count(c) floats) in for_each_parameter order.
ModelWeights point_weights(const ModelConfig& c, float* base);
std::vector<ParamSpec> parameter_specs(const ModelConfig& c);

// HF names come with or without the "transformer." prefix (GPT2LMHeadModel vs GPT2Model);
// this gives the prefixed form wafer uses.
std::string canonical_hf_name(const std::string& name);

}  // namespace wafer
