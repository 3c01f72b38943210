// kernels/cpu/cross_entropy.h: per-row negative log-likelihood of a target under
// softmax(logits), computed stably as logsumexp(row) - row[target] in fp32 with a double sum.
//
// The pieces work on a vocabulary shard so that tensor-parallel ranks never gather B·T·V
// logits: each holds columns [v0, v0 + Vl) of the vocabulary, of which the first `valid` are
// real words (the rest is padding and ignored). Between the pieces the caller combines the
// ranks: the max of rowmax, the sum of sumexp and of target_logit. On one rank v0 = 0,
// Vl = valid = V and the combining is nothing.
#pragma once
#include <cstdint>

namespace wafer {

// rowmax[N] = max over the valid columns of logits[N, Vl] (-inf when there are none).
void cross_entropy_shard_max(float* rowmax, const float* logits, int64_t N, int64_t Vl, int64_t valid);
// Given the max over all shards: sumexp[N] = Σ_valid exp(l - rowmax), target_logit[N] = the
// target's logit when the target lies in this shard, else 0 (rows with target < 0: 0).
void cross_entropy_shard_sums(double* sumexp, double* target_logit, const float* logits, const int32_t* targets,
                              const float* rowmax, int64_t N, int64_t Vl, int64_t v0, int64_t valid);
// Given the combined sums: dlogits[n, v] = dloss[n]·(exp(l - rowmax)/sumexp - [v0 + v == target])
// on valid columns, 0 on padding and on rows with target < 0. dlogits may alias logits.
void cross_entropy_shard_backward(float* dlogits, const float* logits, const int32_t* targets, const float* dloss,
                                  const float* rowmax, const double* sumexp, int64_t N, int64_t Vl, int64_t v0,
                                  int64_t valid);

// The whole vocabulary on one rank. losses[N] <- logits[N, V], targets[N] (each in [0, V), or
// -1 to ignore: loss 0).
void cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, int64_t N, int64_t V);
// Fused softmax + cross-entropy backward, written (not added) into dlogits[N, V]:
// dlogits[n] = dloss[n] · (softmax(logits[n]) - onehot(target[n])); rows with target < 0 get 0.
void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, const float* dloss, int64_t N,
                            int64_t V);

}  // namespace wafer
