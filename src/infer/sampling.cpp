// infer/sampling.cpp: softmax over the kept candidates in double precision.
#include "infer/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/argmax.h"

namespace wafer {

TokenLogprobs token_logprobs(const float* logits, int64_t V, int32_t token, int64_t k) {
  double mx = -INFINITY;
  for (int64_t i = 0; i < V; ++i) mx = std::max(mx, double(logits[i]));
  double sum = 0.0;
  for (int64_t i = 0; i < V; ++i) sum += std::exp(double(logits[i]) - mx);
  const double lse = mx + std::log(sum);
  TokenLogprobs r;
  r.logprob = float(double(logits[token]) - lse);
  k = std::min(k, V);
  if (k > 0) {
    std::vector<int32_t> idx(static_cast<size_t>(V));
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    for (int64_t i = 0; i < k; ++i) r.top.push_back({idx[size_t(i)], float(double(logits[idx[size_t(i)]]) - lse)});
  }
  return r;
}

Sampler::Sampler(const SamplingOptions& o) : o_(o), rng_(o.seed) {
  WAFER_CHECK(o.temperature >= 0.0f, "[sample] expected temperature >= 0, found ", o.temperature);
  WAFER_CHECK(o.top_k >= 0, "[sample] expected top-k >= 0, found ", o.top_k);
  WAFER_CHECK(o.top_p > 0.0f && o.top_p <= 1.0f, "[sample] expected top-p in (0, 1], found ", o.top_p);
}

int32_t Sampler::sample(const float* logits, int64_t V) {
  if (o_.temperature == 0.0f) return argmax_row(logits, V);
  // Candidates sorted by logit, descending (stable: lower id first on ties).
  std::vector<int32_t> idx(static_cast<size_t>(V));
  std::iota(idx.begin(), idx.end(), 0);
  int64_t keep = V;
  if (o_.top_k > 0 && o_.top_k < V) {
    keep = o_.top_k;
    std::partial_sort(idx.begin(), idx.begin() + keep, idx.end(), [&](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
  } else {
    std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  }
  std::vector<double> p(static_cast<size_t>(keep));
  const double mx = double(logits[idx[0]]) / o_.temperature;
  double sum = 0.0;
  for (int64_t i = 0; i < keep; ++i) sum += p[size_t(i)] = std::exp(double(logits[idx[size_t(i)]]) / o_.temperature - mx);
  if (o_.top_p < 1.0f) {  // smallest prefix whose mass reaches top_p (at least one token)
    double cum = 0.0;
    int64_t n = 0;
    while (n < keep) {
      cum += p[size_t(n)] / sum;
      ++n;
      if (cum >= o_.top_p) break;
    }
    keep = n;
    sum = 0.0;
    for (int64_t i = 0; i < keep; ++i) sum += p[size_t(i)];
  }
  double r = std::uniform_real_distribution<double>(0.0, sum)(rng_);
  for (int64_t i = 0; i < keep; ++i) {
    r -= p[size_t(i)];
    if (r < 0.0) return idx[size_t(i)];
  }
  return idx[size_t(keep - 1)];
}

}  // namespace wafer
