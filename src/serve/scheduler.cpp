// serve/scheduler.cpp: the step loop. A sequence is Prefill (prompt tokens not yet in its slot)
// then Decode (its last token goes in next step). Sampling uses each sequence's own Sampler, so
// its tokens depend on its seed and its logits only, never on its neighbours or arrival order.
#include "serve/scheduler.h"

#include <algorithm>
#include <csignal>

#include "core/error.h"

namespace wafer::serve {

using Clock = std::chrono::steady_clock;

struct Scheduler::Seq {
  SeqParams p;
  std::shared_ptr<SeqStream> stream;
  Sampler sampler;
  int32_t slot = -1;
  int64_t filled = 0;     // positions written into the slot
  int64_t generated = 0;  // tokens sampled
  int32_t next = 0;       // the token to feed at position `filled` (Decode)
  Clock::time_point submitted, last_token;
  explicit Seq(SeqParams q) : p(std::move(q)), stream(std::make_shared<SeqStream>()), sampler(p.sampling) {}
  bool prefilling() const { return filled < int64_t(p.prompt.size()); }
};

Finish SeqStream::wait(std::vector<TokenEvent>& out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return !events_.empty() || finish_ != Finish::None; });
  for (auto& e : events_) out.push_back(std::move(e));
  events_.clear();
  return finish_;
}

void SeqStream::push(TokenEvent e) {
  std::lock_guard<std::mutex> lock(mu_);
  events_.push_back(std::move(e));
  cv_.notify_all();
}

void SeqStream::finish(Finish f) {
  std::lock_guard<std::mutex> lock(mu_);
  finish_ = f;
  cv_.notify_all();
}

std::pair<int64_t, int64_t> kv_cache_shape(const Model& m, const SchedulerOptions& o) {
  return {std::max<int64_t>(1, o.slots), o.ctx > 0 ? std::min(o.ctx, m.config.n_positions) : m.config.n_positions};
}

Scheduler::Scheduler(const Model& m, const SchedulerOptions& o, Metrics& metrics, const ParallelState& par)
    : m_(m),
      o_(o),
      metrics_(metrics),
      cache_(m, kv_cache_shape(m, o).first, kv_cache_shape(m, o).second, o.kv_dtype),
      fwd_(m, par) {
  WAFER_CHECK(o.slots >= 1, "[serve] expected --parallel >= 1, found ", o.slots);
  WAFER_CHECK(o.ctx >= 0 && o.ctx <= m.config.n_positions, "[serve] expected --ctx in [1, ", m.config.n_positions,
              "] (the model's context), found ", o.ctx);
  o_.ctx = cache_.capacity();
  o_.max_batch_tokens = std::max(o_.max_batch_tokens, o_.slots + 1);
  for (int32_t s = int32_t(o_.slots) - 1; s >= 0; --s) free_slots_.push_back(s);
}

Scheduler::~Scheduler() = default;

std::vector<std::shared_ptr<SeqStream>> Scheduler::submit(std::vector<SeqParams> seqs) {
  std::vector<std::shared_ptr<SeqStream>> out;
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_ || int64_t(waiting_.size() + seqs.size()) > o_.max_queue) return out;
  const auto now = Clock::now();
  for (auto& p : seqs) {
    WAFER_ASSERT(!p.prompt.empty() && int64_t(p.prompt.size()) + p.max_tokens <= o_.ctx + 1);
    auto s = std::make_unique<Seq>(std::move(p));
    s->submitted = s->last_token = now;
    out.push_back(s->stream);
    waiting_.push_back(std::move(s));
  }
  queued_ = int64_t(waiting_.size());
  cv_.notify_all();
  return out;
}

void Scheduler::shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  stopping_ = true;
  cv_.notify_all();
}

void Scheduler::end(Seq& s, Finish f) {
  if (s.stream->cancelled()) f = Finish::Cancelled;
  if (f == Finish::Cancelled) metrics_.cancelled++;
  s.stream->finish(f);
  if (s.slot >= 0) free_slots_.push_back(s.slot);
  s.slot = -1;
}

void Scheduler::run() {
  for (;;) {
    bool stopping;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (active_.empty() && waiting_.empty() && !stopping_)
        cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return !waiting_.empty() || stopping_; });
      stopping = stopping_;
      if (stopping) {  // end everything that is waiting or running
        for (auto& s : waiting_) end(*s, Finish::Length);
        waiting_.clear();
      }
      // Admit waiting sequences into free slots, first come first served.
      while (!stopping && !waiting_.empty() && !free_slots_.empty()) {
        auto s = std::move(waiting_.front());
        waiting_.pop_front();
        if (s->stream->cancelled()) {
          end(*s, Finish::Cancelled);
          continue;
        }
        s->slot = free_slots_.back();
        free_slots_.pop_back();
        active_.push_back(std::move(s));
      }
      queued_ = int64_t(waiting_.size());
    }
    if (stopping) {
      for (auto& s : active_) end(*s, Finish::Length);
      active_.clear();
      busy_ = 0;
      fwd_.end();
      return;
    }
    if (!step()) fwd_.idle();
  }
}

void follow_scheduler(const Model& m, const ParallelState& par, const SchedulerOptions& o) {
  signal(SIGTERM, SIG_IGN);  // rank 0's server takes the stop and ends us through end()
  signal(SIGINT, SIG_IGN);
  const auto [slots, ctx] = kv_cache_shape(m, o);
  KVCache cache(m, slots, ctx, o.kv_dtype);
  BatchForward fwd(m, par);
  while (fwd.follow(cache.views(), slots)) {
  }
}

bool Scheduler::step() {
  // Cancelled sequences leave before the batch is built: their slot is free this step.
  for (auto& s : active_)
    if (s->stream->cancelled()) end(*s, Finish::Cancelled);
  active_.erase(std::remove_if(active_.begin(), active_.end(), [](const auto& s) { return s->slot < 0; }),
                active_.end());
  busy_ = int64_t(active_.size());
  if (active_.empty()) return false;

  // Decoders first (one token each), then prompt chunks in admission order within the budget.
  batch_.clear();
  struct Rows {
    Seq* s;
    int64_t n;  // tokens this step
  };
  std::vector<Rows> rows;
  for (auto& s : active_)
    if (!s->prefilling()) {
      batch_.add(s->next, s->slot, int32_t(s->filled), true);
      rows.push_back({s.get(), 1});
    }
  int64_t budget = o_.max_batch_tokens - batch_.size();
  int64_t prompt_tokens = 0;
  for (auto& s : active_) {
    if (!s->prefilling() || budget <= 0) continue;
    const int64_t T0 = int64_t(s->p.prompt.size());
    const int64_t n = std::min({T0 - s->filled, o_.prefill_chunk, budget});
    for (int64_t i = 0; i < n; ++i) {
      const int64_t at = s->filled + i;
      batch_.add(s->p.prompt[size_t(at)], s->slot, int32_t(at), s->p.prompt_logprobs || at == T0 - 1);
    }
    rows.push_back({s.get(), n});
    budget -= n, prompt_tokens += n;
  }
  const float* logits = fwd_.forward(batch_, cache_.views(), o_.slots);
  metrics_.steps++;
  metrics_.prompt_tokens += prompt_tokens;

  const int64_t V = m_.config.vocab_size;
  int64_t b = 0;  // batch row
  for (const Rows& r : rows) {
    Seq& s = *r.s;
    if (!s.prefilling()) {  // a decode row
      s.filled += 1;
      take_logits(s, logits);
      logits += V, b += 1;
      continue;
    }
    const int64_t T0 = int64_t(s.p.prompt.size());
    for (int64_t i = 0; i < r.n; ++i, ++b) {
      if (!batch_.logits[size_t(b)]) continue;
      const int64_t at = s.filled + i;
      if (at + 1 < T0) {  // the next prompt token's log-probability
        TokenEvent e;
        e.token = s.p.prompt[size_t(at + 1)], e.prompt = true, e.has_logprobs = true;
        e.lp = token_logprobs(logits, V, e.token, std::max<int64_t>(0, s.p.top_logprobs));
        s.stream->push(std::move(e));
      }
      if (at + 1 == T0) {
        s.filled = T0;
        take_logits(s, logits);
      }
      logits += V;
    }
    if (s.prefilling()) s.filled += r.n;
  }
  active_.erase(std::remove_if(active_.begin(), active_.end(), [](const auto& s) { return s->slot < 0; }),
                active_.end());
  busy_ = int64_t(active_.size());
  return true;
}

// The distribution after the sequence's last fed token: sample, report, and maybe finish.
void Scheduler::take_logits(Seq& s, const float* logits) {
  if (s.generated >= s.p.max_tokens) return end(s, Finish::Length);  // max_tokens = 0 (echo scoring)
  const int64_t V = m_.config.vocab_size;
  TokenEvent e;
  e.token = s.sampler.sample(logits, V);
  if (s.p.top_logprobs >= 0) e.has_logprobs = true, e.lp = token_logprobs(logits, V, e.token, s.p.top_logprobs);
  const auto now = Clock::now();
  const double dt = std::chrono::duration<double>(now - (s.generated == 0 ? s.submitted : s.last_token)).count();
  (s.generated == 0 ? metrics_.ttft : metrics_.itl).observe(dt);
  s.last_token = now;
  s.generated += 1, s.next = e.token;
  metrics_.generated_tokens++;
  const bool eot = e.token == s.p.stop_token;
  s.stream->push(std::move(e));
  if (eot) return end(s, Finish::Stop);
  if (s.generated >= s.p.max_tokens || s.filled >= o_.ctx) return end(s, Finish::Length);
}

}  // namespace wafer::serve
