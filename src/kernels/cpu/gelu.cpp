// kernels/cpu/gelu.cpp: elementwise, in parallel chunks.
#include "kernels/cpu/gelu.h"

#include <cmath>

namespace wafer {

void gelu_erf_forward(float* out, const float* inp, int64_t n) {
  const float inv_sqrt2 = 0.70710678118654752f;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = 0.5f * inp[i] * (1.0f + std::erf(inp[i] * inv_sqrt2));
}

void gelu_tanh_forward(float* out, const float* inp, int64_t n) {
  const float k = 0.79788456080286536f;  // sqrt(2/pi)
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float x = inp[i];
    out[i] = 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
  }
}

}  // namespace wafer
