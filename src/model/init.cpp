// model/init.cpp: random initialisation by the Cerebras-GPT rules (see model.h).
#include <cmath>
#include <random>

#include "model/model.h"

namespace wafer {

namespace {
// Normal(0, σ) cut at ±2σ by rejection, from a seeded 64-bit Mersenne twister (Box-Muller).
struct TruncatedNormal {
  std::mt19937_64 rng;
  explicit TruncatedNormal(uint64_t seed) : rng(seed) {}
  double uniform() { return (double(rng() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  float sample(double sigma) {
    while (true) {
      double z = std::sqrt(-2.0 * std::log(uniform())) * std::cos(2.0 * M_PI * uniform());
      if (std::fabs(z) <= 2.0) return float(z * sigma);
    }
  }
};
}  // namespace

void init_weights(Model& m, const InitOptions& opts) {
  const ModelConfig& c = m.config;
  TruncatedNormal tn(opts.seed);
  const double two_l = 2.0 * double(c.n_layer);
  for_each_parameter(c, m.w, [&](const ParamSpec& s, float*& slot) {
    const size_t n = size_t(s.numel());
    if (s.kind == ParamKind::Bias) {
      std::fill(slot, slot + n, 0.0f);
      return;
    }
    if (s.kind == ParamKind::Norm) {
      bool is_weight = s.name.size() >= 7 && s.name.compare(s.name.size() - 7, 7, ".weight") == 0;
      std::fill(slot, slot + n, is_weight ? 1.0f : 0.0f);
      return;
    }
    double sigma = opts.sigma;
    if (c.is_mup()) {
      const double base_sigma = 0.08;
      sigma = s.kind == ParamKind::Matrix ? base_sigma * std::sqrt(double(c.mup_base_width) / double(c.n_embd))
                                          : base_sigma;
      if (s.is_residual_proj) sigma /= std::sqrt(two_l);
    } else if (s.is_residual_proj) {
      sigma = c.n_embd >= 2048 ? 0.0025 : opts.sigma / std::sqrt(two_l);
    }
    for (size_t i = 0; i < n; ++i) slot[i] = tn.sample(sigma);
  });
}

}  // namespace wafer
