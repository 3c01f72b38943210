// train/adamw.h: AdamW over the flat parameter buffer, exactly torch.optim.AdamW's update:
//   p ← p·(1 - lr·wd);  m ← β1·m + (1-β1)·g;  v ← β2·v + (1-β2)·g²
//   p ← p - (lr / (1-β1^t)) · m / (sqrt(v) / sqrt(1-β2^t) + eps)
// Each parameter tensor has its own LR multiplier (μP) and weight-decay switch (matrices and
// embeddings decay; biases and LayerNorm do not).
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/parameters.h"

namespace wafer {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
};

// A contiguous run of the flat buffer sharing LR multiplier and decay.
struct ParamGroup {
  size_t offset, size;
  double lr_mult;
  bool decay;
};

// One group per parameter tensor, in buffer order. μP: hidden matrices (c_attn, c_proj, c_fc)
// get lr × base_width / C.
std::vector<ParamGroup> param_groups(const ModelConfig& c);
// The groups of a shard's flat buffer that fall in [begin, end), offsets counted from `begin`
// (a ZeRO-1 rank updates one such range).
std::vector<ParamGroup> param_groups(const ModelConfig& c, const Shard& sh, size_t begin, size_t end);

class AdamW {
 public:
  AdamW(size_t n, std::vector<ParamGroup> groups, const AdamWOptions& o);
  // One step with base learning rate `lr` on params[n] given grads[n]; t counts from 1. The
  // gradients are read as grad_scale · grads (clipping folded into the same pass), and with
  // `params_bf16` the updated parameters are also rounded into it (the bf16 GEMMs' copy).
  void step(float* params, const float* grads, double lr, float grad_scale = 1.0f, uint16_t* params_bf16 = nullptr);

  int64_t t() const { return t_; }
  std::vector<float>& m() { return m_; }  // [n] first moments
  std::vector<float>& v() { return v_; }  // [n] second moments
  const std::vector<float>& m() const { return m_; }
  const std::vector<float>& v() const { return v_; }
  void set_t(int64_t t) { t_ = t; }
  const AdamWOptions& options() const { return o_; }

 private:
  std::vector<ParamGroup> groups_;
  AdamWOptions o_;
  std::vector<float> m_, v_;
  int64_t t_ = 0;
};

// Global L2 norm of grads[n] (double accumulation, fixed order: reproducible).
double grad_norm(const float* grads, size_t n);
// torch.nn.utils.clip_grad_norm_'s factor: max_norm / (norm + 1e-6) when that is < 1, else 1.
float clip_coefficient(double norm, double max_norm);

}  // namespace wafer
