// parallel/vocab_parallel.cpp
#include "parallel/vocab_parallel.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/cross_entropy.h"

namespace wafer {

void vocab_parallel_cross_entropy(Group& tp, float* losses, VocabParallelStats& st, const float* logits,
                                  const int32_t* targets, int64_t N, int64_t Vl, int64_t v0, int64_t V) {
  const int64_t valid = vocab_shard_valid(V, v0, Vl);
  st.rowmax.resize(size_t(N));
  st.sumexp.resize(size_t(N));
  st.target.resize(size_t(N));
  cross_entropy_shard_max(st.rowmax.data(), logits, N, Vl, valid);
  tp.all_reduce_max(st.rowmax.data(), N);
  cross_entropy_shard_sums(st.sumexp.data(), st.target.data(), logits, targets, st.rowmax.data(), N, Vl, v0, valid);
  tp.all_reduce_sum(st.sumexp.data(), N);
  tp.all_reduce_sum(st.target.data(), N);
  for (int64_t n = 0; n < N; ++n)
    losses[n] = targets[n] < 0 ? 0.0f
                               : float(double(st.rowmax[size_t(n)]) + std::log(st.sumexp[size_t(n)]) - st.target[size_t(n)]);
}

}  // namespace wafer
