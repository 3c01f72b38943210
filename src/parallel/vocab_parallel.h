// parallel/vocab_parallel.h: cross-entropy over logits whose vocabulary is split across the tp
// ranks (Megatron's vocab-parallel loss). Each rank holds columns [v0, v0 + Vl) of every row;
// three all-reduces of N numbers each (max, sum of exponentials, target logit) replace gathering
// the N·V logits.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "parallel/comm.h"

namespace wafer {

// What the backward needs from the forward: each row's max logit and sum of exponentials.
struct VocabParallelStats {
  std::vector<float> rowmax;   // [N]
  std::vector<double> sumexp;  // [N]
  std::vector<double> target;  // [N]
};

// How many of a shard's Vl columns starting at v0 are real words of a V-word vocabulary (the rest
// is padding).
inline int64_t vocab_shard_valid(int64_t V, int64_t v0, int64_t Vl) { return std::clamp<int64_t>(V - v0, 0, Vl); }

// logits: [N, Vl], this rank's columns of the vocabulary [0, V) (padding past V ignored).
// losses[N] = logsumexp(row) - row[target] over the whole vocabulary; 0 where target < 0.
void vocab_parallel_cross_entropy(Group& tp, float* losses, VocabParallelStats& st, const float* logits,
                                  const int32_t* targets, int64_t N, int64_t Vl, int64_t v0, int64_t V);

}  // namespace wafer
