// kernels/cpu/cross_entropy.h: per-row negative log-likelihood of a target under
// softmax(logits), computed stably as logsumexp(row) - row[target] in fp32 with a double sum.
#pragma once
#include <cstdint>

namespace wafer {

// losses[N] <- logits[N, V], targets[N] (each in [0, V), or -1 to ignore: loss 0).
void cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, int64_t N, int64_t V);

// Fused softmax + cross-entropy backward, written (not added) into dlogits[N, V]:
// dlogits[n] = dloss[n] · (softmax(logits[n]) - onehot(target[n])); rows with target < 0 get 0.
void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, const float* dloss, int64_t N,
                            int64_t V);

}  // namespace wafer
