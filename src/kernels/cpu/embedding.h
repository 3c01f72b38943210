// kernels/cpu/embedding.h: token + position embedding lookup, and the residual add.
#pragma once
#include <cstdint>

namespace wafer {

// out[B, T, C] = scale · (wte[tokens[b, t]] + wpe[pos0 + t]); tokens already range-checked.
void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int64_t B, int64_t T,
                       int64_t C, int64_t pos0, float scale);
// Backward (+=): dwte[tokens[b, t]] += scale·dout[b, t], dwpe[pos0 + t] += scale·dout[b, t].
// Rows are visited in order (a token may repeat), columns in parallel.
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int64_t B, int64_t T,
                        int64_t C, int64_t pos0, float scale);
// out[n] = a[n] + b[n] (out may alias a).
void residual_forward(float* out, const float* a, const float* b, int64_t n);

}  // namespace wafer
