// infer/generate.cpp: prefill, then decode one position at a time.
#include "infer/generate.h"

#include <chrono>

#include "core/error.h"
#include "infer/kv_cache.h"
#include "model/forward.h"

namespace wafer {

GenerateResult generate(const Model& m, const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                        const std::function<bool(int32_t)>& on_token, const ParallelState& par) {
  const ModelConfig& c = m.config;
  const int64_t T0 = int64_t(prompt.size());
  WAFER_CHECK(T0 >= 1, "[generate] expected a prompt of at least one token, found none");
  WAFER_CHECK(T0 <= c.n_positions, "[generate] the prompt has ", T0, " tokens, longer than the model's context of ",
              c.n_positions, "; shorten it");
  WAFER_CHECK(opts.max_new_tokens >= 0, "[generate] expected max-new-tokens >= 0, found ", opts.max_new_tokens);
  const int64_t capacity = std::min(c.n_positions, T0 + opts.max_new_tokens);
  WAFER_CHECK(par.layout.cp == 1 && par.layout.dp == 1, "[generate] decodes one sequence a token at a time: "
              "spread it with --tp and --pp; --cp and --dp do not apply (found ", par.layout.describe(), ")");
  KVCache cache(m, 1, capacity);
  ForwardPass fp(m, par, PassMode::Inference);
  Sampler sampler(opts.sampling);
  GenerateResult res{{}, StopReason::MaxTokens};
  using clock = std::chrono::steady_clock;

  auto t0 = clock::now();
  const float* logits = fp.forward(prompt.data(), 1, T0, 0, cache.views(), LogitsRows::Last);
  cache.advance(T0);
  auto t1 = clock::now();
  res.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
  while (int64_t(res.tokens.size()) < opts.max_new_tokens) {
    int32_t next = sampler.sample(logits, c.vocab_size);
    res.tokens.push_back(next);
    if (on_token && !on_token(next)) {
      res.reason = StopReason::Callback;
      break;
    }
    if (next == opts.stop_token) {
      res.reason = StopReason::EndOfText;
      break;
    }
    if (int64_t(res.tokens.size()) == opts.max_new_tokens) break;
    if (cache.length() >= c.n_positions) {
      res.reason = StopReason::ContextFull;
      break;
    }
    logits = fp.forward(&next, 1, 1, cache.length(), cache.views(), LogitsRows::Last);
    cache.advance(1);
  }
  res.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return res;
}

}  // namespace wafer
