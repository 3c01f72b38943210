// kernels/cpu/gelu.cpp: elementwise, in parallel chunks.
#include "kernels/cpu/gelu.h"

#include <cmath>

#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/cpu_isa.h"

namespace wafer {

WAFER_KERNEL void gelu_erf_forward(float* out, const float* inp, int64_t n) {
  const float inv_sqrt2 = 0.70710678118654752f;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = 0.5f * inp[i] * (1.0f + fast_erf(inp[i] * inv_sqrt2));
}

WAFER_KERNEL void gelu_tanh_forward(float* out, const float* inp, int64_t n) {
  const float k = 0.79788456080286536f;  // sqrt(2/pi)
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float x = inp[i];
    out[i] = 0.5f * x * (1.0f + fast_tanh(k * (x + 0.044715f * x * x * x)));
  }
}

// d/dx [x·Φ(x)] = Φ(x) + x·φ(x)
WAFER_KERNEL void gelu_erf_backward(float* dinp, const float* inp, const float* dout, int64_t n) {
  const float inv_sqrt2 = 0.70710678118654752f, inv_sqrt_2pi = 0.39894228040143268f;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float x = inp[i];
    const float cdf = 0.5f * (1.0f + fast_erf(x * inv_sqrt2));
    const float pdf = inv_sqrt_2pi * fast_exp(-0.5f * x * x);
    dinp[i] += dout[i] * (cdf + x * pdf);
  }
}

// With u = k(x + 0.044715x³), t = tanh u: d/dx = 0.5(1 + t) + 0.5x(1 - t²)·k(1 + 3·0.044715x²)
WAFER_KERNEL void gelu_tanh_backward(float* dinp, const float* inp, const float* dout, int64_t n) {
  const float k = 0.79788456080286536f;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float x = inp[i];
    const float t = fast_tanh(k * (x + 0.044715f * x * x * x));
    const float d = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * k * (1.0f + 3.0f * 0.044715f * x * x);
    dinp[i] += dout[i] * d;
  }
}

}  // namespace wafer
