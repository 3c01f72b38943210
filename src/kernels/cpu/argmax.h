// kernels/cpu/argmax.h: greedy decoding's pick over a row of logits, vectorized (a server's 16
// rows a step had spent 3% of the step in a scalar loop over the 50,257 logits).
#pragma once
#include <cstdint>

namespace wafer {

// The index of the largest of x[0, n) (n >= 1), the lowest on ties: what a scalar loop keeping
// the first i with x[i] > x[best] returns, so NaNs never win unless x[0] is one.
int32_t argmax_row(const float* x, int64_t n);

}  // namespace wafer
