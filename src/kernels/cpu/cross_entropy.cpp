// kernels/cpu/cross_entropy.cpp: rows in parallel; exp in fp32 (vectorised), sums in fp64.
#include "kernels/cpu/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/cpu_isa.h"

namespace wafer {

WAFER_KERNEL void cross_entropy_shard_max(float* rowmax, const float* logits, int64_t N, int64_t Vl, int64_t valid) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* row = logits + n * Vl;
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int64_t v = 0; v < valid; ++v) m = std::max(m, row[v]);
    rowmax[n] = m;
  }
}

WAFER_KERNEL void cross_entropy_shard_sums(double* sumexp, double* target_logit, const float* logits, const int32_t* targets,
                              const float* rowmax, int64_t N, int64_t Vl, int64_t v0, int64_t valid) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* row = logits + n * Vl;
    const float m = rowmax[n];
    double s = 0.0;  // fp32 terms, fp64 sum: 50k terms keep full precision
#pragma omp simd reduction(+ : s)
    for (int64_t v = 0; v < valid; ++v) s += double(fast_exp(row[v] - m));
    sumexp[n] = s;
    const int64_t t = int64_t(targets[n]) - v0;
    target_logit[n] = targets[n] >= 0 && t >= 0 && t < valid ? double(row[t]) : 0.0;
  }
}

WAFER_KERNEL void cross_entropy_shard_backward(float* dlogits, const float* logits, const int32_t* targets, const float* dloss,
                                  const float* rowmax, const double* sumexp, int64_t N, int64_t Vl, int64_t v0,
                                  int64_t valid) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    float* d = dlogits + n * Vl;
    if (targets[n] < 0) {
      std::fill(d, d + Vl, 0.0f);
      continue;
    }
    const float m = rowmax[n], g = dloss[n], scale = float(double(g) / sumexp[n]);
    if (d == logits + n * Vl) {  // in place (the trainer's case): one pointer, so the loop vectorises
#pragma omp simd
      for (int64_t v = 0; v < valid; ++v) d[v] = scale * fast_exp(d[v] - m);
    } else {
      const float* row = logits + n * Vl;
#pragma omp simd
      for (int64_t v = 0; v < valid; ++v) d[v] = scale * fast_exp(row[v] - m);
    }
    std::fill(d + valid, d + Vl, 0.0f);
    const int64_t t = int64_t(targets[n]) - v0;
    if (t >= 0 && t < valid) d[t] -= g;
  }
}

void cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, int64_t N, int64_t V) {
  std::vector<float> m(static_cast<size_t>(N));
  std::vector<double> s(static_cast<size_t>(N)), t(static_cast<size_t>(N));
  cross_entropy_shard_max(m.data(), logits, N, V, V);
  cross_entropy_shard_sums(s.data(), t.data(), logits, targets, m.data(), N, V, 0, V);
  for (int64_t n = 0; n < N; ++n)
    losses[n] = targets[n] < 0 ? 0.0f : float(double(m[size_t(n)]) + std::log(s[size_t(n)]) - t[size_t(n)]);
}

void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, const float* dloss, int64_t N,
                            int64_t V) {
  std::vector<float> m(static_cast<size_t>(N));
  std::vector<double> s(static_cast<size_t>(N)), t(static_cast<size_t>(N));
  cross_entropy_shard_max(m.data(), logits, N, V, V);
  cross_entropy_shard_sums(s.data(), t.data(), logits, targets, m.data(), N, V, 0, V);
  cross_entropy_shard_backward(dlogits, logits, targets, dloss, m.data(), s.data(), N, V, 0, V);
}

}  // namespace wafer
