// kernels/cpu/layernorm.cpp: two passes per row (mean, then variance around it), fp32
// throughout, rows in parallel.
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/cpu_isa.h"

#include <cmath>

namespace wafer {

WAFER_KERNEL float layernorm_row(float* out, float* mean, const float* inp, const float* weight, const float* bias,
                                 int64_t C, float eps) {
  const float* x = inp;
  float m = 0.0f;
#pragma omp simd reduction(+ : m)
  for (int64_t i = 0; i < C; ++i) m += x[i];
  m /= float(C);
  float v = 0.0f;
#pragma omp simd reduction(+ : v)
  for (int64_t i = 0; i < C; ++i) {
    float d = x[i] - m;
    v += d * d;
  }
  v /= float(C);
  float s = 1.0f / std::sqrt(v + eps);
  for (int64_t i = 0; i < C; ++i) out[i] = (x[i] - m) * s * weight[i] + bias[i];
  if (mean) *mean = m;
  return s;
}

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int64_t N, int64_t C, float eps) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float s = layernorm_row(out + n * C, mean ? mean + n : nullptr, inp + n * C, weight, bias, C, eps);
    if (rstd) rstd[n] = s;
  }
}

WAFER_KERNEL void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* dy = dout + n * C;
    const float* x = inp + n * C;
    const float m = mean[n], s = rstd[n];
    float g_mean = 0.0f, gx_mean = 0.0f;
#pragma omp simd reduction(+ : g_mean, gx_mean)
    for (int64_t i = 0; i < C; ++i) {
      const float g = dy[i] * weight[i];
      g_mean += g;
      gx_mean += g * (x[i] - m) * s;
    }
    g_mean /= float(C);
    gx_mean /= float(C);
    float* dx = dinp + n * C;
    for (int64_t i = 0; i < C; ++i) dx[i] += s * (dy[i] * weight[i] - g_mean - (x[i] - m) * s * gx_mean);
  }
  // Parameter gradients sum over rows: columns in parallel so no two threads share an output.
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < C; ++i) {
    float dw = 0.0f, db = 0.0f;
    for (int64_t n = 0; n < N; ++n) {
      const float dy = dout[n * C + i];
      dw += dy * (inp[n * C + i] - mean[n]) * rstd[n];
      db += dy;
    }
    dweight[i] += dw;
    dbias[i] += db;
  }
}

}  // namespace wafer
