// kernels/cpu/matmul.h: dense layers on OpenBLAS sgemm. Weights in HF Conv1D layout [in, out],
// so out = inp · w + b needs no transpose; the LM head multiplies by wteᵀ.
#pragma once
#include <cstdint>

namespace wafer {

// out[N, OC] = inp[N, C] · w[C, OC] + bias[OC] (bias may be null).
void matmul_forward(float* out, const float* inp, const float* w, const float* bias, int64_t N, int64_t C, int64_t OC);
// out[N, V] = scale · inp[N, C] · wᵀ, w[V, C] (the tied or untied LM head).
void matmul_forward_transposed(float* out, const float* inp, const float* w, int64_t N, int64_t C, int64_t V,
                               float scale);
// Backward of matmul_forward, accumulating (+=): dinp[N, C] += dout · wᵀ, dw[C, OC] += inpᵀ · dout,
// dbias[OC] += Σ_n dout. dinp or dbias may be null when not needed.
void matmul_backward(float* dinp, float* dw, float* dbias, const float* dout, const float* inp, const float* w,
                     int64_t N, int64_t C, int64_t OC);
// dbias[OC] += Σ_n dout[n, OC] (a bias added apart from its matmul).
void bias_backward(float* dbias, const float* dout, int64_t N, int64_t OC);
// Backward of matmul_forward_transposed (+=): dinp[N, C] += scale · dout · w, dw[V, C] += scale · doutᵀ · inp.
void matmul_transposed_backward(float* dinp, float* dw, const float* dout, const float* inp, const float* w, int64_t N,
                                int64_t C, int64_t V, float scale);
// Reference loops for tests: out[N, OC] = inp · w + bias.
void matmul_forward_naive(float* out, const float* inp, const float* w, const float* bias, int64_t N, int64_t C,
                          int64_t OC);

}  // namespace wafer
