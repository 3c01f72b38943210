// model/batch_forward.h: the serving forward pass over a batch descriptor, as llama.cpp's
// llama_batch: one entry per token with its sequence (= its KV-cache slot), its position and
// whether its logits are wanted. Decode tokens of many sequences and chunks of new prompts go
// through one call; every dense layer is one GEMM over all the batch's rows
// (kernels/cpu/rows_matmul, batch-invariant), attention runs per token over its own slot.
// Three pieces: the block executor (block_forward), the whole-model driver (forward) and the
// KV-cache writer (write_kv). One rank holding the whole model; not for training.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/cpu/gelu.h"
#include "model/forward.h"
#include "model/model.h"

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

// K/V of a token at (slot s, position p) in layer l: kv[l].k + (s·Tmax + p)·C, the layout
// LayerKV already has for B = slots rows (infer/kv_cache.h's KVCache(m, slots, Tmax)).
// Writes the K and V columns of qkv [N, 3C] into each token's slot and position.
void write_kv(const LayerKV& kv, const float* qkv, const TokenBatch& b, int64_t C);

class BatchForward {
 public:
  explicit BatchForward(const Model& m);
  // Runs the batch: writes each token's K/V into its slot, attends over positions [0, pos] of
  // the slot (earlier positions must already be in the cache or earlier in this batch), and
  // returns logits [n, V] for the n tokens with logits[i] = 1, in batch order; valid until the
  // next call. Throws on ids, positions or slots out of range.
  const float* forward(const TokenBatch& b, const std::vector<LayerKV>& kv, int64_t slots);

 private:
  void block_forward(const LayerWeights& w, float* x, const TokenBatch& b, const LayerKV& kv);

  const Model& m_;
  GeluForwardFn gelu_;
  std::vector<float> x_, ln_, qkv_, atty_, y_, fch_, fch_gelu_, logits_;  // [N, ·] scratch
};

}  // namespace wafer
