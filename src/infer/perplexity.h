// infer/perplexity.h: perplexity by HF's sliding-window method. Windows of up to `ctx` tokens
// start every `stride` tokens; each window scores only the tokens the previous window did not
// (its last end - prev_end targets, each predicted from the tokens before it in the window).
// The result is exp(total NLL / tokens scored): every token but the first is scored once.
#pragma once
#include <cstdint>
#include <vector>

#include "model/model.h"
#include "parallel/layout.h"

namespace wafer {

struct PerplexityOptions {
  int64_t ctx = 0;     // window length; 0 = the model's n_positions
  int64_t stride = 0;  // 0 = ctx (disjoint windows)
};

struct PerplexityResult {
  int64_t tokens = 0;      // tokens in the text
  int64_t scored = 0;      // tokens whose NLL was summed (tokens - 1)
  int64_t windows = 0;
  double total_nll = 0.0;  // nats
  double mean_nll() const { return scored ? total_nll / double(scored) : 0.0; }
  double perplexity() const;
};

// Collective under a parallel layout (every rank gets the result). Under --cp each window is
// padded with uncounted positions to a multiple of 2·cp tokens.
PerplexityResult perplexity(const Model& m, const std::vector<int32_t>& ids, const PerplexityOptions& opts,
                            const ParallelState& par = ParallelState::single());

}  // namespace wafer
