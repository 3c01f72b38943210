// train/adamw.cpp
#include "train/adamw.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/cpu_isa.h"

namespace wafer {

std::vector<ParamGroup> param_groups(const ModelConfig& c, const Shard& sh, size_t begin, size_t end) {
  std::vector<ParamGroup> groups;
  size_t offset = 0;
  for (const auto& s : parameter_specs(c, sh)) {
    double mult = 1.0;
    if (c.is_mup() && s.kind == ParamKind::Matrix) mult = double(c.mup_base_width) / double(c.n_embd);
    const size_t lo = std::max(offset, begin), hi = std::min(offset + size_t(s.numel()), end);
    if (lo < hi)
      groups.push_back({lo - begin, hi - lo, mult, s.kind == ParamKind::Matrix || s.kind == ParamKind::Embedding});
    offset += size_t(s.numel());
  }
  return groups;
}

std::vector<ParamGroup> param_groups(const ModelConfig& c) {
  return param_groups(c, Shard::full(c), 0, size_t(parameter_count(c)));
}

AdamW::AdamW(size_t n, std::vector<ParamGroup> groups, const AdamWOptions& o)
    : groups_(std::move(groups)), o_(o), m_(n, 0.0f), v_(n, 0.0f) {}

namespace {
// One group's update; Bf16 writes the rounded parameters too (a separate instantiation, so
// the fp32 loop carries no branch).
template <bool Bf16>
WAFER_KERNEL void adamw_update(float* p, float* m, float* v, const float* gr, uint16_t* p16, size_t n, float grad_scale,
                  float decay, float step_size, float b1, float b2, float inv_sqrt_bc2, float eps) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; ++i) {
    const float g = gr[i] * grad_scale;
    float pi = p[i] * decay;
    const float mi = b1 * m[i] + (1.0f - b1) * g;
    const float vi = b2 * v[i] + (1.0f - b2) * g * g;
    pi -= step_size * mi / (std::sqrt(vi) * inv_sqrt_bc2 + eps);
    m[i] = mi, v[i] = vi, p[i] = pi;
    if constexpr (Bf16) p16[i] = f32_to_bf16(pi);
  }
}
}  // namespace

void AdamW::step(float* params, const float* grads, double lr, float grad_scale, uint16_t* params_bf16) {
  ++t_;
  const double bc1 = 1.0 - std::pow(o_.beta1, double(t_)), bc2 = 1.0 - std::pow(o_.beta2, double(t_));
  const float b1 = float(o_.beta1), b2 = float(o_.beta2), eps = float(o_.eps);
  const float inv_sqrt_bc2 = float(1.0 / std::sqrt(bc2));
  for (const ParamGroup& g : groups_) {
    const float decay = g.decay ? float(1.0 - lr * g.lr_mult * o_.weight_decay) : 1.0f;
    const float step_size = float(lr * g.lr_mult / bc1);
    float* p = params + g.offset;
    const auto update = params_bf16 ? adamw_update<true> : adamw_update<false>;
    update(p, m_.data() + g.offset, v_.data() + g.offset, grads + g.offset,
           params_bf16 ? params_bf16 + g.offset : nullptr, g.size, grad_scale, decay, step_size, b1, b2, inv_sqrt_bc2, eps);
  }
}

WAFER_KERNEL double grad_norm(const float* grads, size_t n) {
  // Fixed-size chunks summed in order: the same result whatever the thread count.
  const size_t chunk = 1 << 16, nchunks = (n + chunk - 1) / chunk;
  std::vector<double> partial(nchunks, 0.0);
#pragma omp parallel for schedule(static)
  for (size_t k = 0; k < nchunks; ++k) {
    double s = 0.0;
    const size_t end = std::min(n, (k + 1) * chunk);
#pragma omp simd reduction(+ : s)
    for (size_t i = k * chunk; i < end; ++i) s += double(grads[i]) * double(grads[i]);
    partial[k] = s;
  }
  double total = 0.0;
  for (double s : partial) total += s;
  return std::sqrt(total);
}

float clip_coefficient(double norm, double max_norm) {
  const double coef = max_norm / (norm + 1e-6);
  return coef >= 1.0 ? 1.0f : float(coef);
}


}  // namespace wafer
