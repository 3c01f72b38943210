// infer/sampling.h: picking the next token from logits: greedy (temperature 0) or sampling
// with temperature, then top-k, then top-p (nucleus), in the order HF applies them.
#pragma once
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

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

// The log-probability of `token` under softmax(logits) and the k most likely tokens with theirs
// (descending, lower id first on ties): log-softmax with the max and Σ exp in fp64, index order.
struct TokenLogprobs {
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top;
};
TokenLogprobs token_logprobs(const float* logits, int64_t V, int32_t token, int64_t k);

}  // namespace wafer
