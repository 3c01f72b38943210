// infer/sampling.h: picking the next token from logits: greedy (temperature 0) or sampling
// with temperature, then top-k, then top-p (nucleus), in the order HF applies them.
#pragma once
#include <cstdint>
#include <random>

namespace wafer {

struct SamplingOptions {
  float temperature = 1.0f;  // 0 = greedy (argmax, lowest id on ties)
  int64_t top_k = 0;         // 0 = off
  float top_p = 1.0f;        // 1 = off
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& o);
  // logits: [V]. Deterministic for a given seed and sequence of calls.
  int32_t sample(const float* logits, int64_t V);

 private:
  SamplingOptions o_;
  std::mt19937_64 rng_;
};

int32_t argmax(const float* x, int64_t n);

}  // namespace wafer
