// serve/scheduler.h: continuous batching over KV-cache slots. Sequences wait in a FIFO queue;
// each step admits waiting ones into free slots, builds one batch of every active sequence's
// next token plus chunks of new prompts (so a long prompt never stalls the decoders), runs one
// batched forward (model/batch_forward) and samples each sequence with its own random stream.
// Knows tokens only: text, stop strings and JSON live in serve/api.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "infer/kv_cache.h"
#include "infer/sampling.h"
#include "model/batch_forward.h"
#include "serve/metrics.h"

namespace wafer::serve {

struct SeqParams {
  std::vector<int32_t> prompt;   // >= 1 ids
  int64_t max_tokens = 16;       // prompt + max_tokens <= the slot's context (checked by the caller)
  SamplingOptions sampling;      // its seed starts this sequence's own random stream
  int64_t top_logprobs = -1;     // < 0: no log-probabilities; k >= 0: the chosen token's and the top k
  bool prompt_logprobs = false;  // also each prompt token's (from the second on): echo + logprobs
  int32_t stop_token = -1;       // end-of-text id (-1 = none)
};

enum class Finish { None, Stop, Length, Cancelled };

struct TokenEvent {
  int32_t token = 0;
  bool prompt = false;  // a prompt token's log-probability (prompt_logprobs), not a generated token
  bool has_logprobs = false;
  TokenLogprobs lp;
};

// One sequence's output channel, from the scheduler thread to the handler that waits on it.
class SeqStream {
 public:
  // Waits until events or the end arrive (at most `timeout`), appends the events to `out`;
  // returns the finish reason once finished and drained, else Finish::None.
  Finish wait(std::vector<TokenEvent>& out, std::chrono::milliseconds timeout);
  // The client went away or a stop string matched: the slot is freed within one step.
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

 private:
  friend class Scheduler;
  void push(TokenEvent e);
  void finish(Finish f);
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<TokenEvent> events_;
  Finish finish_ = Finish::None;
  std::atomic<bool> cancelled_{false};
};

struct SchedulerOptions {
  int64_t slots = 4;              // sequences decoded together
  int64_t ctx = 0;                // positions per slot; 0 = the model's context
  int64_t max_queue = 64;         // waiting sequences before submit refuses (HTTP 503)
  int64_t max_batch_tokens = 512; // tokens per step (decodes first, then prompt chunks)
  int64_t prefill_chunk = 128;    // prompt tokens one sequence adds per step at most
  DType kv_dtype = DType::F32;    // the KV cache's elements: F32 or BF16 (half the bytes)
};

// The KV cache a scheduler with options `o` keeps for model `m`: slots and positions per slot.
std::pair<int64_t, int64_t> kv_cache_shape(const Model& m, const SchedulerOptions& o);

class Scheduler {
 public:
  // m: the whole model, or world rank 0's shard of layout `par` (then every other rank of the
  // layout runs follow_scheduler with the same options, and run() drives them).
  Scheduler(const Model& m, const SchedulerOptions& o, Metrics& metrics,
            const ParallelState& par = ParallelState::single());
  ~Scheduler();
  // Queues the sequences of one request, all or none: empty when the queue has no room.
  std::vector<std::shared_ptr<SeqStream>> submit(std::vector<SeqParams> seqs);
  // The step loop; returns after shutdown() once every sequence has been ended (and the
  // followers of a layout have been released).
  void run();
  // Refuses new sequences and ends waiting and active ones at the next step (Finish::Length).
  void shutdown();
  int64_t queued() const { return queued_.load(); }
  int64_t busy() const { return busy_.load(); }
  int64_t slots() const { return o_.slots; }
  int64_t ctx() const { return o_.ctx; }

 private:
  struct Seq;
  bool step();  // one batched forward; false when there was nothing to do
  void take_logits(Seq& s, const float* logits);
  void end(Seq& s, Finish f);

  const Model& m_;
  SchedulerOptions o_;
  Metrics& metrics_;
  KVCache cache_;
  BatchForward fwd_;
  TokenBatch batch_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Seq>> waiting_;  // guarded by mu_
  bool stopping_ = false;                     // guarded by mu_
  std::vector<std::unique_ptr<Seq>> active_;  // scheduler thread only, admission order
  std::vector<int32_t> free_slots_;
  std::atomic<int64_t> queued_{0}, busy_{0};
};

// Every rank of a serving layout but world rank 0: runs this rank's shard of each batched step
// world rank 0's Scheduler sends, until it stops. SIGTERM and SIGINT are left to rank 0's server
// (mpirun delivers them to every rank), which ends the followers when its streams are done.
void follow_scheduler(const Model& m, const ParallelState& par, const SchedulerOptions& o);

}  // namespace wafer::serve
