// train/adamw.cpp
#include "train/adamw.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

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

void AdamW::step(float* params, const float* grads, double lr) {
  ++t_;
  const double bc1 = 1.0 - std::pow(o_.beta1, double(t_)), bc2 = 1.0 - std::pow(o_.beta2, double(t_));
  const float b1 = float(o_.beta1), b2 = float(o_.beta2), eps = float(o_.eps);
  const float inv_sqrt_bc2 = float(1.0 / std::sqrt(bc2));
  for (const ParamGroup& g : groups_) {
    const float decay = g.decay ? float(1.0 - lr * g.lr_mult * o_.weight_decay) : 1.0f;
    const float step_size = float(lr * g.lr_mult / bc1);
    float* p = params + g.offset;
    const float* gr = grads + g.offset;
    float* m = m_.data() + g.offset;
    float* v = v_.data() + g.offset;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < g.size; ++i) {
      p[i] *= decay;
      m[i] = b1 * m[i] + (1.0f - b1) * gr[i];
      v[i] = b2 * v[i] + (1.0f - b2) * gr[i] * gr[i];
      p[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
    }
  }
}

double grad_norm(const float* grads, size_t n) {
  // Fixed-size chunks summed in order: the same result whatever the thread count.
  const size_t chunk = 1 << 16, nchunks = (n + chunk - 1) / chunk;
  std::vector<double> partial(nchunks, 0.0);
#pragma omp parallel for schedule(static)
  for (size_t k = 0; k < nchunks; ++k) {
    double s = 0.0;
    for (size_t i = k * chunk; i < std::min(n, (k + 1) * chunk); ++i) s += double(grads[i]) * double(grads[i]);
    partial[k] = s;
  }
  double total = 0.0;
  for (double s : partial) total += s;
  return std::sqrt(total);
}

void clip_grads(float* grads, size_t n, double norm, double max_norm) {
  const double coef = max_norm / (norm + 1e-6);
  if (coef >= 1.0) return;
  const float c = float(coef);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) grads[i] *= c;
}

}  // namespace wafer
