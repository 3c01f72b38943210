// kernels/cpu/gelu.h: the two GELU forms. Exact: x·Φ(x) = 0.5·x·(1 + erf(x/√2)) (HF "gelu",
// Cerebras-GPT). Tanh: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (HF "gelu_new", GPT-2).
#pragma once
#include <cstdint>

namespace wafer {

void gelu_erf_forward(float* out, const float* inp, int64_t n);
void gelu_tanh_forward(float* out, const float* inp, int64_t n);
// The same, serial, for a caller's own parallel region (model/decode_step.cpp).
void gelu_erf_span(float* out, const float* inp, int64_t n);
void gelu_tanh_span(float* out, const float* inp, int64_t n);
// out[N, F] = GELU(inp[N, F]) for serving: one parallel region, each row cut into fixed blocks,
// so an element's arithmetic (vector body or tail) depends on its column alone, never on N or
// the thread count.
void gelu_erf_rows_forward(float* out, const float* inp, int64_t N, int64_t F);
void gelu_tanh_rows_forward(float* out, const float* inp, int64_t N, int64_t F);

// Backward (+=): dinp[i] += dout[i] · gelu'(inp[i]).
void gelu_erf_backward(float* dinp, const float* inp, const float* dout, int64_t n);
void gelu_tanh_backward(float* dinp, const float* inp, const float* dout, int64_t n);

using GeluForwardFn = void (*)(float* out, const float* inp, int64_t n);
using GeluRowsForwardFn = void (*)(float* out, const float* inp, int64_t N, int64_t F);
using GeluBackwardFn = void (*)(float* dinp, const float* inp, const float* dout, int64_t n);

}  // namespace wafer
