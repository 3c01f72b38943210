// kernels/cpu/layernorm.h: LayerNorm over the last dim, y = (x - mean) · rstd · w + b,
// rstd = 1/sqrt(var + eps) with the biased variance (as torch). mean and rstd are kept for the
// backward pass.
#pragma once
#include <cstdint>

namespace wafer {

// out[N, C], mean[N], rstd[N] <- inp[N, C], weight[C], bias[C]. mean/rstd may be null.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int64_t N, int64_t C, float eps);
// One row of layernorm_forward, serial (the same code; for a caller's own parallel region).
// Returns rstd; *mean is set when mean is not null.
float layernorm_row(float* out, float* mean, const float* inp, const float* weight, const float* bias, int64_t C,
                    float eps);

// Backward (+=): dinp[N, C], dweight[C], dbias[C] from dout[N, C] and the forward's inp, weight,
// mean, rstd. With x̂ = (x - mean)·rstd and g = dout·weight:
//   dinp = rstd · (g - mean(g) - x̂ · mean(g · x̂)),  dweight = Σ dout·x̂,  dbias = Σ dout.
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C);

}  // namespace wafer
