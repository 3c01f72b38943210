// kernels/cpu/layernorm.h: LayerNorm over the last dim, y = (x - mean) · rstd · w + b,
// rstd = 1/sqrt(var + eps) with the biased variance (as torch). mean and rstd are kept for the
// backward pass.
#pragma once
#include <cstdint>

namespace wafer {

// out[N, C], mean[N], rstd[N] <- inp[N, C], weight[C], bias[C]. mean/rstd may be null.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int64_t N, int64_t C, float eps);

}  // namespace wafer
