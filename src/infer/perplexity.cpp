// infer/perplexity.cpp: the sliding-window loop over full forward passes.
#include "infer/perplexity.h"

#include <cmath>

#include "core/error.h"
#include "kernels/cpu/cross_entropy.h"
#include "model/forward.h"

namespace wafer {

double PerplexityResult::perplexity() const { return std::exp(mean_nll()); }

PerplexityResult perplexity(const Model& m, const std::vector<int32_t>& ids, const PerplexityOptions& opts) {
  const ModelConfig& c = m.config;
  const int64_t ctx = opts.ctx > 0 ? opts.ctx : c.n_positions;
  const int64_t stride = opts.stride > 0 ? opts.stride : ctx;
  const int64_t N = int64_t(ids.size());
  WAFER_CHECK(ctx >= 2 && ctx <= c.n_positions, "[eval] expected --ctx in [2, ", c.n_positions, "], found ", ctx);
  WAFER_CHECK(stride <= ctx, "[eval] expected --stride <= --ctx (", ctx, "), found ", stride);
  WAFER_CHECK(N >= 2, "[eval] expected a text of at least 2 tokens, found ", N);
  PerplexityResult r;
  r.tokens = N;
  ForwardPass fp(m);
  std::vector<float> losses;
  int64_t prev_end = 0;
  for (int64_t begin = 0; begin < N; begin += stride) {
    const int64_t end = std::min(begin + ctx, N);
    const int64_t T = end - begin;
    const int64_t trg = end - prev_end;  // the last `trg` positions are targets
    const float* logits = fp.forward(ids.data() + begin, 1, T, 0, {}, LogitsRows::All);
    // Position t predicts token t+1; targets are window positions [T - trg, T), minus position 0.
    const int64_t first_target = std::max<int64_t>(1, T - trg);
    const int64_t n = T - first_target;
    losses.resize(size_t(n));
    cross_entropy_forward(losses.data(), logits + (first_target - 1) * c.vocab_size, ids.data() + begin + first_target,
                          n, c.vocab_size);
    for (float l : losses) r.total_nll += double(l);
    r.scored += n;
    ++r.windows;
    prev_end = end;
    if (end == N) break;
  }
  return r;
}

}  // namespace wafer
