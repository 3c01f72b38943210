// kernels/cpu/embedding.h: token and position embedding lookups over a list of rows (each row
// has its own token and position, so a rank's zigzag slice of a sequence needs nothing special),
// a vocabulary shard of the token table, and the residual adds.
#pragma once
#include <cstdint>

#include "kernels/cpu/quant_matmul.h"

namespace wafer {

// out[N, C] = scale · wte[tokens[n] - v0] for tokens in the shard [v0, v0 + Vl), 0 for the rest
// (the whole table: v0 = 0, Vl = V).
void embedding_forward(float* out, const int32_t* tokens, const float* wte, int64_t v0, int64_t Vl, int64_t N,
                       int64_t C, float scale);
// The same from a bf16 table (inference with bf16 weights in memory).
void embedding_forward(float* out, const int32_t* tokens, const uint16_t* wte, int64_t v0, int64_t Vl, int64_t N,
                       int64_t C, float scale);
// The same from a quantized table (quantized inference): each row dequantized as it is read.
void embedding_forward(float* out, const int32_t* tokens, const QuantMatrix& wte, int64_t v0, int64_t Vl, int64_t N,
                       int64_t C, float scale);
// out[N, C] += scale · wpe[positions[n]].
void position_embedding_forward(float* out, const int32_t* positions, const float* wpe, int64_t N, int64_t C,
                                float scale);
// Backward (+=): dwte[tokens[n] - v0] += scale·dout[n] for tokens in the shard. Rows are visited
// in order (a token may repeat), columns in parallel.
void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int64_t v0, int64_t Vl, int64_t N,
                        int64_t C, float scale);
// Backward (+=): dwpe[positions[n]] += scale·dout[n].
void position_embedding_backward(float* dwpe, const float* dout, const int32_t* positions, int64_t N, int64_t C,
                                 float scale);
// out[n] = a[n] + b[n] (out may alias a).
void residual_forward(float* out, const float* a, const float* b, int64_t n);
// out[N, C] = a + b + bias[C] (out may alias a or b): a residual add after a row-parallel layer
// whose bias is added once, after its partial sums are reduced.
void residual_bias_forward(float* out, const float* a, const float* b, const float* bias, int64_t N, int64_t C);

}  // namespace wafer
