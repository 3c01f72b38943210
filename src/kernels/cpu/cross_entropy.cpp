// kernels/cpu/cross_entropy.cpp: rows in parallel.
#include "kernels/cpu/cross_entropy.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/fast_math.h"

namespace wafer {

void cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, int64_t N, int64_t V) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* row = logits + n * V;
    if (targets[n] < 0) {  // ignored position
      losses[n] = 0.0f;
      continue;
    }
    float m = row[0];
#pragma omp simd reduction(max : m)
    for (int64_t v = 1; v < V; ++v) m = std::max(m, row[v]);
    double s = 0.0;  // fp32 terms, fp64 sum: 50k terms keep full precision
#pragma omp simd reduction(+ : s)
    for (int64_t v = 0; v < V; ++v) s += double(fast_exp(row[v] - m));
    losses[n] = float(double(m) + std::log(s) - double(row[targets[n]]));
  }
}

void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, const float* dloss, int64_t N,
                            int64_t V) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* row = logits + n * V;
    float* d = dlogits + n * V;
    if (targets[n] < 0) {
      for (int64_t v = 0; v < V; ++v) d[v] = 0.0f;
      continue;
    }
    float m = row[0];
#pragma omp simd reduction(max : m)
    for (int64_t v = 1; v < V; ++v) m = std::max(m, row[v]);
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t v = 0; v < V; ++v) s += double(fast_exp(row[v] - m));
    const float g = dloss[n], scale = float(double(g) / s);
    if (d == row) {  // in place (the trainer's case): one pointer, so the loop vectorises
#pragma omp simd
      for (int64_t v = 0; v < V; ++v) d[v] = scale * fast_exp(d[v] - m);
    } else {
#pragma omp simd
      for (int64_t v = 0; v < V; ++v) d[v] = scale * fast_exp(row[v] - m);
    }
    d[targets[n]] -= g;
  }
}

}  // namespace wafer
