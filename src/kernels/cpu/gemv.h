// kernels/cpu/gemv.h: matrix-vector products for decoding one token, where every weight is read
// once per token and the speed is the memory bandwidth. GEMM libraries pack the matrix first
// (a second pass over it); these stream it once, fp32 or bf16, split over threads by output.
#pragma once
#include <cstdint>

namespace wafer {

// y[OC] = x[C] · W[C, OC] + bias[OC] (HF Conv1D layout; bias may be null). W is fp32 `w` or,
// when `w16` is not null, bf16 `w16`.
void gemv_forward(float* y, const float* x, const float* w, const uint16_t* w16, const float* bias, int64_t C,
                  int64_t OC);
// y[V] = scale · W[V, C] · x[C] (the LM head). W as above.
void gemv_transposed(float* y, const float* x, const float* w, const uint16_t* w16, int64_t C, int64_t V,
                     float scale);

}  // namespace wafer
