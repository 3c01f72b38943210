// kernels/cpu/cross_entropy.h: per-row negative log-likelihood of a target under
// softmax(logits), computed stably as logsumexp(row) - row[target] in fp32 with a double sum.
#pragma once
#include <cstdint>

namespace wafer {

// losses[N] <- logits[N, V], targets[N] (each in [0, V)).
void cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, int64_t N, int64_t V);

}  // namespace wafer
