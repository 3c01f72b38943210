// kernels/cpu/rows_matmul.h: batch-invariant dense layers for serving. Each output element is
// computed with one fixed sequence of fp32 operations that depends on C (and the ISA picked at
// start-up) but never on N, on which other rows share the call, or on the thread count:
//   rows_matmul:            out[n, o] = bias[o] + (((0 + x[n,0]·w[0,o]) + x[n,1]·w[1,o]) + ...),
//                           one fused multiply-add per c in ascending order;
//   rows_matmul_transposed: out[n, v] = scale · hsum16(lane sums), lane l summing c ≡ l (mod 16)
//                           by fused multiply-adds in ascending c, then a fixed pairwise tree.
// So a request's rows come out bit-identical whether it runs alone or among 15 others (OpenBLAS
// sgemm and the decode gemv make no such promise across N). Not for training: no backward.
#pragma once
#include <cstdint>

#include "kernels/cpu/matmul.h"

namespace wafer {

// out[N, OC] = inp[N, C] · w[C, OC] + bias[OC] (HF Conv1D layout; bias may be null).
void rows_matmul(float* out, const float* inp, WeightView w, const float* bias, int64_t N, int64_t C, int64_t OC);
// out[N, V] = scale · inp[N, C] · wᵀ, w[V, C] (the LM head).
void rows_matmul_transposed(float* out, const float* inp, WeightView w, int64_t N, int64_t C, int64_t V, float scale);

}  // namespace wafer
