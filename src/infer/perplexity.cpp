// infer/perplexity.cpp: the sliding-window loop over full forward passes.
#include "infer/perplexity.h"

#include <cmath>

#include "core/error.h"
#include "model/forward.h"

namespace wafer {

double PerplexityResult::perplexity() const { return std::exp(mean_nll()); }

PerplexityResult perplexity(const Model& m, const std::vector<int32_t>& ids, const PerplexityOptions& opts,
                            const ParallelState& par) {
  const ModelConfig& c = m.config;
  const int64_t ctx = opts.ctx > 0 ? opts.ctx : c.n_positions;
  const int64_t stride = opts.stride > 0 ? opts.stride : ctx;
  const int64_t N = int64_t(ids.size());
  WAFER_CHECK(ctx >= 2 && ctx <= c.n_positions, "[eval] expected --ctx in [2, ", c.n_positions, "], found ", ctx);
  WAFER_CHECK(stride <= ctx, "[eval] expected --stride <= --ctx (", ctx, "), found ", stride);
  WAFER_CHECK(N >= 2, "[eval] expected a text of at least 2 tokens, found ", N);
  PerplexityResult r;
  r.tokens = N;
  const int64_t chunks = par.layout.cp == 1 ? 1 : 2 * par.layout.cp;
  WAFER_CHECK(ctx % chunks == 0, "[eval] --cp ", par.layout.cp, " needs --ctx to be a multiple of ", chunks,
              "; found ", ctx);
  ForwardPass fp(m, par, PassMode::Inference);
  std::vector<int32_t> tokens, targets;
  int64_t prev_end = 0;
  for (int64_t begin = 0; begin < N; begin += stride) {
    const int64_t end = std::min(begin + ctx, N);
    const int64_t T = end - begin;
    const int64_t trg = end - prev_end;  // the last `trg` positions are targets
    // Position t predicts token t+1; targets are window positions [T - trg, T), minus position 0.
    const int64_t first_target = std::max<int64_t>(1, T - trg);
    // Inputs t < T-1 predict ids[begin + t + 1]; padding (for cp's chunks) comes last, uncounted.
    const int64_t Tp = (T - 1 + chunks - 1) / chunks * chunks;
    tokens.assign(size_t(Tp), 0);
    targets.assign(size_t(Tp), -1);
    for (int64_t t = 0; t + 1 < T; ++t) {
      tokens[size_t(t)] = ids[size_t(begin + t)];
      if (t + 1 >= first_target) targets[size_t(t)] = ids[size_t(begin + t + 1)];
    }
    if (Tp > 0) {
      auto [nll, n] = fp.forward_loss(tokens.data(), targets.data(), 1, Tp);
      r.total_nll += nll;
      r.scored += n;
    }
    ++r.windows;
    prev_end = end;
    if (end == N) break;
  }
  return r;
}

}  // namespace wafer
