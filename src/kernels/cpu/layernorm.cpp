// kernels/cpu/layernorm.cpp: two passes per row (mean, then variance around it), fp32
// throughout, rows in parallel.
#include "kernels/cpu/layernorm.h"

#include <cmath>

namespace wafer {

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int64_t N, int64_t C, float eps) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* x = inp + n * C;
    float* y = out + n * C;
    float m = 0.0f;
    for (int64_t i = 0; i < C; ++i) m += x[i];
    m /= float(C);
    float v = 0.0f;
    for (int64_t i = 0; i < C; ++i) {
      float d = x[i] - m;
      v += d * d;
    }
    v /= float(C);
    float s = 1.0f / std::sqrt(v + eps);
    for (int64_t i = 0; i < C; ++i) y[i] = (x[i] - m) * s * weight[i] + bias[i];
    if (mean) mean[n] = m;
    if (rstd) rstd[n] = s;
  }
}

}  // namespace wafer
