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

enum class PassMode { Inference, Training };  // Training keeps every layer's activations

// Scratch for forward (and, in Training mode, backward) calls, reused across calls.
class ForwardPass {
 public:
  explicit ForwardPass(const Model& m, PassMode mode = PassMode::Inference);

  // tokens: [B, T] ids in [0, V), positions pos0 .. pos0+T-1 (pos0 + T <= P). With `kv`
  // (L views, or empty), K/V of these positions are written into the cache and attention reads
  // positions [0, pos0+T) from it; without, pos0 must be 0. Returns logits, [B, T, V] or [B, V],
  // valid until the next call.
  const float* forward(const int32_t* tokens, int64_t B, int64_t T, int64_t pos0, const std::vector<LayerKV>& kv,
                       LogitsRows rows);

  // Training: forward over tokens [B, T] and the summed next-token cross-entropy against
  // targets [B, T] (-1 = ignored). Returns (sum of losses, number of counted targets).
  std::pair<double, int64_t> forward_loss(const int32_t* tokens, const int32_t* targets, int64_t B, int64_t T);
  // Training: backward of the last forward_loss, each counted position's loss weighted by
  // `loss_scale` (e.g. 1 / (targets · micro-batches)). Adds (+=) into `grads` (views into a
  // gradient buffer laid out like the parameters; a tied head's gradient lands in wte's).
  void backward(const int32_t* tokens, const int32_t* targets, int64_t B, int64_t T, float loss_scale,
                const ModelWeights& grads);

 private:
  void block_forward(const LayerWeights& w, BlockActivations& a, float* out, const float* x, int64_t B, int64_t T,
                     int64_t pos0, const LayerKV* kv);
  // dx [B, T, C]: in, the gradient of the block's output; out, of its input x.
  void block_backward(const LayerWeights& w, const LayerWeights& g, const BlockActivations& a, const float* x,
                      float* dx, int64_t B, int64_t T);
  void resize(int64_t B, int64_t T);

  const Model& m_;
  PassMode mode_;
  GeluForwardFn gelu_;
  GeluBackwardFn gelu_backward_;
  std::vector<BlockActivations> acts_;        // [L] when training, else [1] reused by every layer
  std::vector<std::vector<float>> resid_;     // residual stream: [L+1][B, T, C] training, else [2]
  std::vector<float> tmp_;                    // [B, T, C]
  std::vector<float> lnf_, lnf_mean_, lnf_rstd_;  // [B, T, C], [B, T], [B, T]
  std::vector<float> last_rows_;              // [B, C]
  std::vector<float> logits_;                 // [B, T, V] or [B, V]; dlogits in place in backward
  std::vector<float> losses_;                 // [B, T]
  std::vector<float> dres2_, dfch_, dfch_gelu_, dln_, datty_, dqkv_, dlnf_;  // backward scratch
  const float* resid_out_ = nullptr;          // input of ln_f in the last forward
};

}  // namespace wafer
