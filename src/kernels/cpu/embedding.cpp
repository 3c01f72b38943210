// kernels/cpu/embedding.cpp: gathers rows; rows in parallel.
#include "kernels/cpu/embedding.h"

#include <algorithm>

namespace wafer {

void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int64_t B, int64_t T,
                       int64_t C, int64_t pos0, float scale) {
#pragma omp parallel for schedule(static)
  for (int64_t bt = 0; bt < B * T; ++bt) {
    const float* te = wte + int64_t(tokens[bt]) * C;
    const float* pe = wpe + (pos0 + bt % T) * C;
    float* o = out + bt * C;
    for (int64_t i = 0; i < C; ++i) o[i] = (te[i] + pe[i]) * scale;
  }
}

void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int64_t B, int64_t T,
                        int64_t C, int64_t pos0, float scale) {
  const int64_t chunk = 64;
#pragma omp parallel for schedule(static)
  for (int64_t c0 = 0; c0 < C; c0 += chunk) {
    const int64_t c1 = std::min(C, c0 + chunk);
    for (int64_t bt = 0; bt < B * T; ++bt) {
      const float* d = dout + bt * C;
      float* te = dwte + int64_t(tokens[bt]) * C;
      float* pe = dwpe + (pos0 + bt % T) * C;
      for (int64_t i = c0; i < c1; ++i) {
        te[i] += scale * d[i];
        pe[i] += scale * d[i];
      }
    }
  }
}

void residual_forward(float* out, const float* a, const float* b, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

}  // namespace wafer
