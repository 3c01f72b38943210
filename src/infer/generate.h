// infer/generate.h: autoregressive generation with a KV cache: one prefill of the prompt, then
// one token per step; stops at end-of-text, at max_new_tokens, or when the context is full.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "infer/sampling.h"
#include "model/model.h"
#include "parallel/layout.h"

namespace wafer {

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  SamplingOptions sampling;
  int32_t stop_token = -1;  // end-of-text id; -1 = never stop early
};

enum class StopReason { EndOfText, MaxTokens, ContextFull, Callback };

struct GenerateResult {
  std::vector<int32_t> tokens;  // new tokens only (the stop token included if produced)
  StopReason reason;
  double prefill_seconds = 0, decode_seconds = 0;
};

// prompt: [T0] ids, 1 <= T0 <= n_positions. on_token(id) is called as each token is chosen and
// returns false to stop.
// Collective under a parallel layout (every rank runs it; all get the same tokens). Needs cp = 1.
GenerateResult generate(const Model& m, const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                        const std::function<bool(int32_t)>& on_token = {},
                        const ParallelState& par = ParallelState::single());

}  // namespace wafer
