// model/forward.h: the GPT-2 forward pass as a flat list of kernel calls per block (llm.c style).
// Activations a block keeps live in BlockActivations; inference reuses one for every layer, the
// trainer keeps one per layer for its backward pass. A KV cache is passed in as per-layer views so
// the storage (infer/) stays outside model/.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/cpu/gelu.h"
#include "model/model.h"

namespace wafer {

// What one block's forward produces and its backward needs, for a (B, T) batch.
struct BlockActivations {
  std::vector<float> ln1;        // [B, T, C]
  std::vector<float> ln1_mean;   // [B, T]
  std::vector<float> ln1_rstd;   // [B, T]
  std::vector<float> qkv;        // [B, T, 3C]
  std::vector<float> atty;       // [B, T, C]  attention output before c_proj
  std::vector<float> att_lse;    // [B, H, T]  log-sum-exp of each attention row
  std::vector<float> res2;       // [B, T, C]  residual after attention
  std::vector<float> ln2;        // [B, T, C]
  std::vector<float> ln2_mean;   // [B, T]
  std::vector<float> ln2_rstd;   // [B, T]
  std::vector<float> fch;        // [B, T, F]  c_fc output (pre-GELU)
  std::vector<float> fch_gelu;   // [B, T, F]
  void resize(const ModelConfig& c, int64_t B, int64_t T);
};

// A layer's KV cache: K and V of positions [0, Tmax) for each batch row.
struct LayerKV {
  float* k;      // [B, Tmax, C]
  float* v;      // [B, Tmax, C]
  int64_t Tmax;
};

enum class LogitsRows { All, Last };  // [B, T, V] or only each sequence's last position [B, V]

// Scratch for one forward call, reused across calls of the same or smaller size.
class ForwardPass {
 public:
  explicit ForwardPass(const Model& m);

  // tokens: [B, T] ids in [0, V), positions pos0 .. pos0+T-1 (pos0 + T <= P). With `kv`
  // (L views, or empty), K/V of these positions are written into the cache and attention reads
  // positions [0, pos0+T) from it; without, pos0 must be 0. Returns logits, [B, T, V] or [B, V],
  // valid until the next call.
  const float* forward(const int32_t* tokens, int64_t B, int64_t T, int64_t pos0, const std::vector<LayerKV>& kv,
                       LogitsRows rows);

 private:
  void block_forward(const LayerWeights& w, BlockActivations& a, float* out, const float* x, int64_t B, int64_t T,
                     int64_t pos0, const LayerKV* kv);

  const Model& m_;
  GeluForwardFn gelu_;
  BlockActivations acts_;
  std::vector<float> x_, x_next_, tmp_, lnf_, last_rows_, logits_;
};

}  // namespace wafer
