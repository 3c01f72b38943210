// model/batch_forward.h: the serving forward pass over a batch descriptor, as llama.cpp's
// llama_batch: one entry per token with its sequence (= its KV-cache slot), its position and
// whether its logits are wanted. Decode tokens of many sequences and chunks of new prompts go
// through one call; every dense layer is one GEMM over all the batch's rows
// (kernels/cpu/rows_matmul, batch-invariant), attention runs per token over its own slot.
// Three pieces: the block executor (block_forward), the whole-model driver (forward) and the
// KV-cache writer (write_kv). Not for training.
//
// Over a --tp/--pp layout (serving under mpirun) world rank 0 drives: forward() broadcasts the
// batch descriptor to every rank, each rank runs its shard (tp: its heads, MLP columns and
// vocabulary rows, partial sums added in rank order; pp: its stage's blocks, the residual stream
// [N, C] sent on to the next stage), and the last stage's tp rank 0 sends the logits [n, V] to
// world rank 0. The other ranks sit in follow(). Steps are not pipelined: a step's stages run
// one after another, each stage's tp ranks together.
#pragma once
#include <chrono>
#include <cstdint>
#include <vector>

#include "kernels/cpu/gelu.h"
#include "model/forward.h"
#include "model/model.h"
#include "parallel/layout.h"

namespace wafer {

// The batch descriptor: N tokens.
struct TokenBatch {
  std::vector<int32_t> tokens;  // [N] ids in [0, V)
  std::vector<int32_t> seq;     // [N] sequence = KV slot, in [0, slots)
  std::vector<int32_t> pos;     // [N] position in its sequence, in [0, Tmax)
  std::vector<uint8_t> logits;  // [N] 1 = return this token's logits
  void add(int32_t token, int32_t s, int32_t p, bool want) {
    tokens.push_back(token), seq.push_back(s), pos.push_back(p), logits.push_back(want ? 1 : 0);
  }
  void clear() { tokens.clear(), seq.clear(), pos.clear(), logits.clear(); }
  int64_t size() const { return int64_t(tokens.size()); }
};

// The serving cache's layout, head-major: K (and V) of head h of a token at (slot s, position p)
// in layer l at kv[l].k + ((s·H + h)·Tmax + p)·D, H this rank's heads, in a KVCache(m, slots,
// Tmax) buffer (the same size as ForwardPass's [B, Tmax, Ca], which no serving cache is given).
// Each (token, head) of a decode step then reads one contiguous run of positions: with the
// heads interleaved at each position, 16 streams' attention waited on scattered cache lines.
// Writes the K and V columns of qkv [N, 3·H·D] into each token's slot and position (rounded to
// bf16 to nearest even under a BF16 cache).
void write_kv(const LayerKV& kv, const float* qkv, const TokenBatch& b, int64_t H, int64_t D);

class BatchForward {
 public:
  explicit BatchForward(const Model& m);  // the whole model on this rank alone
  // m: this rank's shard of layout `par` (tp and pp only; cp = dp = 1).
  BatchForward(const Model& m, const ParallelState& par);
  // Runs the batch: writes each token's K/V into its slot, attends over positions [0, pos] of
  // the slot (earlier positions must already be in the cache or earlier in this batch), and
  // returns logits [n, V] for the n tokens with logits[i] = 1, in batch order; valid until the
  // next call. Throws on ids, positions or slots out of range. World rank 0 only, under a layout
  // (collective with the other ranks' follow()).
  const float* forward(const TokenBatch& b, const std::vector<LayerKV>& kv, int64_t slots);
  // Every other rank of a layout: waits for world rank 0's next batch and runs this shard's part
  // of it. Returns false once rank 0 has called end().
  bool follow(const std::vector<LayerKV>& kv, int64_t slots);
  // World rank 0, with nothing to run: at most once a second tells the followers it is alive
  // (their wait for the next batch has the communicator's deadline).
  void idle();
  // World rank 0: the followers' follow() returns false.
  void end();

 private:
  void send_descriptor(const TokenBatch& b);
  const float* run(const TokenBatch& b, const std::vector<LayerKV>& kv, int64_t slots);
  void check(const TokenBatch& b, const std::vector<LayerKV>& kv, int64_t slots) const;
  void embed(float* x, const TokenBatch& b);
  void block_forward(const LayerWeights& w, float* x, const TokenBatch& b, const LayerKV& kv);
  const float* head(const float* x, const TokenBatch& b);
  // y[n] = Σ_r (tp rank r's y) in rank order: every rank gets the same bits, whatever the batch
  // size (MPI's all-reduce may pick its summation order by message size).
  void tp_sum(float* y, int64_t n);

  const Model& m_;
  Group tp_, pp_, world_;
  GeluRowsForwardFn gelu_;
  TokenBatch followed_;
  std::chrono::steady_clock::time_point last_sent_{};
  std::vector<float> x_, ln_, qkv_, atty_, y_, fch_, fch_gelu_, head_, logits_, parts_;  // [N, ·] scratch
};

}  // namespace wafer
