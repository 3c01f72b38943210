// model/parameters.h: every parameter tensor listed once (HF name, shape, flags), the one flat
// fp32 buffer they live in, and named views into it. Load, save, init, the optimizer and the
// parallel sharder all walk for_each_parameter.
//
// A rank of a parallel job holds a Shard of the model: the blocks of its pipeline stage (the
// embedding with the first stage, ln_f and the head with the last) and, of each block, its
// tensor-parallel slice. Shapes below are a shard's; the whole model is the shard of one rank.
//   Ca = C / tp  attention width of the rank's heads     Fl = F / tp  its MLP columns
//   Vl = Vp / tp vocabulary rows of the rank, Vp = V padded to a multiple of 128·tp (tp > 1)
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "model/config.h"

namespace wafer {

// Views of one block's weights. Linear weights are HF Conv1D layout [in, out].
struct LayerWeights {
  float* ln1_w;        // [C]
  float* ln1_b;        // [C]
  float* qkv_w;        // [C, 3Ca]  Q|K|V along the output dim, this rank's heads of each
  float* qkv_b;        // [3Ca]
  float* attn_proj_w;  // [Ca, C]   rows of this rank's heads
  float* attn_proj_b;  // [C]
  float* ln2_w;        // [C]
  float* ln2_b;        // [C]
  float* fc_w;         // [C, Fl]
  float* fc_b;         // [Fl]
  float* fc_proj_w;    // [Fl, C]
  float* fc_proj_b;    // [C]
};

struct ModelWeights {
  float* wte;     // [Vl, C]  (first stage; also the last stage's head when tied)
  float* wpe;     // [P, C]   (first stage)
  std::vector<LayerWeights> layers;  // the shard's blocks
  float* lnf_w;   // [C]      (last stage)
  float* lnf_b;   // [C]
  float* lm_head; // [Vl, C]; points at wte when tied
};

// Which part of the model one rank holds.
struct Shard {
  int tp_rank = 0, tp_size = 1;
  int64_t layer_begin = 0, layer_end = 0;  // blocks [begin, end) of the model
  bool first_stage = true, last_stage = true;
  int64_t vocab_padded = 0;                // Vp

  static Shard full(const ModelConfig& c);  // the whole model on one rank
  // Tensor-parallel rank tp_rank of tp_size, holding blocks [layer_begin, layer_end) of a
  // pipeline stage (first/last: the embedding / the head live here).
  static Shard of(const ModelConfig& c, int tp_rank, int tp_size, int64_t layer_begin, int64_t layer_end, bool first,
                  bool last);
  int64_t n_layers() const { return layer_end - layer_begin; }
  int64_t heads(const ModelConfig& c) const { return c.n_head / tp_size; }
  int64_t attn_width(const ModelConfig& c) const { return c.n_embd / tp_size; }  // Ca
  int64_t ffn(const ModelConfig& c) const { return c.ffn() / tp_size; }          // Fl
  int64_t vocab_rows() const { return vocab_padded / tp_size; }                  // Vl
  int64_t vocab_begin() const { return tp_rank * vocab_rows(); }
  bool operator==(const Shard&) const = default;
};

// How a shard's tensor sits in the full one: both viewed as [outer][sections][inner]; the shard
// holds `local_inner` of each section's `full_inner`, from tp_rank·local_inner on. Elements past
// full_inner (the vocabulary padding) are zero in the shard and dropped when gathering.
struct SliceMap {
  int64_t outer = 1, sections = 1, full_inner = 0, local_inner = 0, offset = 0;
  bool whole() const { return full_inner == local_inner && offset == 0; }
};

enum class ParamKind { Embedding, Matrix, Bias, Norm };

struct ParamSpec {
  std::string name;            // HF name, e.g. "transformer.h.3.attn.c_attn.weight"
  std::vector<int64_t> shape;
  ParamKind kind;              // decides weight decay (Embedding, Matrix) and μP groups
  int layer = -1;              // block index, -1 outside the blocks
  bool is_residual_proj = false;  // attn.c_proj / mlp.c_proj weights (their own init σ)
  std::vector<int64_t> full_shape;  // the whole tensor's shape (== shape on one rank)
  SliceMap slice;                   // where the shard's elements sit in the whole tensor
  // Replicated over the tp ranks; under sequence parallelism each rank's gradient is partial
  // (it saw only its rows) and needs a tp all-reduce.
  bool tp_replicated = false;
  int64_t numel() const;
};

// Copies between a whole tensor (full_shape) and a shard (shape) along spec.slice.
void copy_to_shard(const ParamSpec& s, const float* full, float* local);
// The same from a whole tensor stored as `dtype` (a file's bytes), converted to fp32 run by run,
// so a rank reads only its slice of a mapped file.
void copy_to_shard(const ParamSpec& s, const void* full, DType dtype, float* local);
void copy_from_shard(const ParamSpec& s, const float* local, float* full);

// Calls fn(spec, slot) for every stored parameter, in buffer order; `slot` is the view pointer
// in `w` that the parameter backs (w.layers is sized here). The untied lm_head comes last.
// A shard lists its own tensors: the tied head of a last stage that is not also the first comes
// as a copy of "transformer.wte.weight".
void for_each_parameter(const ModelConfig& c, const Shard& sh, ModelWeights& w,
                        const std::function<void(const ParamSpec&, float*& slot)>& fn);
void for_each_parameter(const ModelConfig& c, ModelWeights& w,
                        const std::function<void(const ParamSpec&, float*& slot)>& fn);
// Points every view of `w` into `base` (shard_parameter_count floats) in for_each_parameter order.
ModelWeights point_weights(const ModelConfig& c, const Shard& sh, float* base);
ModelWeights point_weights(const ModelConfig& c, float* base);
std::vector<ParamSpec> parameter_specs(const ModelConfig& c, const Shard& sh);
std::vector<ParamSpec> parameter_specs(const ModelConfig& c);
int64_t shard_parameter_count(const ModelConfig& c, const Shard& sh);

// Flat buffers: `full` laid out like the whole model (parameter_count floats), `local` like the
// shard. shard_flat fills all of `local`; unshard_flat writes the shard's elements of the tensors
// for which owned(spec) holds into `full` and leaves the rest of it alone.
void shard_flat(const ModelConfig& c, const Shard& sh, const float* full, float* local);
void unshard_flat(const ModelConfig& c, const Shard& sh, const float* local, float* full,
                  const std::function<bool(const ParamSpec&)>& owned);

// HF names come with or without the "transformer." prefix (GPT2LMHeadModel vs GPT2Model);
// this gives the prefixed form wafer uses.
std::string canonical_hf_name(const std::string& name);

}  // namespace wafer
