// tests/memory_test.cpp: the memory account (model/memory.h) against the real allocations: a Model,
// a TrainStep after a step and a ForwardPass on fake pipeline shards of a small config, each
// buffer's capacity compared with the account's component; and hand-computed preset cases.
#include <gtest/gtest.h>

#include "core/error.h"
#include "model/forward.h"
#include "model/memory.h"
#include "model/model.h"
#include "train/train_step.h"

namespace wafer {
namespace {

ModelConfig tiny() {
  ModelConfig c;
  c.vocab_size = 300, c.n_positions = 64, c.n_embd = 32, c.n_layer = 3, c.n_head = 4;
  return c;
}

Batch random_batch(const ModelConfig& c, int64_t B, int64_t T, uint32_t seed) {
  std::vector<std::vector<int32_t>> seqs(static_cast<size_t>(B));
  for (auto& s : seqs)
    for (int64_t t = 0; t < T; ++t) s.push_back(int32_t((seed = seed * 1664525u + 1013904223u) >> 8) % int32_t(c.vocab_size));
  return batch_from_sequences(seqs);
}

TEST(MemoryAccount, WeightsAndBf16CopyAreTheModelsBuffers) {
  const ModelConfig c = tiny();
  Model m(c);
  MemoryOptions o;
  o.seq = 16;
  EXPECT_EQ(4.0 * double(m.params.size()), rank_memory(c, o, 0).weights);
  const Precision p = set_precision(m, Precision::BF16);  // F32 where the CPU has no bf16 GEMMs
  o.precision = p;
  EXPECT_EQ(2.0 * double(m.params_bf16.size()), rank_memory(c, o, 0).weights_bf16);
  // Fake pipeline shards: each stage's Model holds what the account says.
  o.layout.pp = 2;
  for (int s = 0; s < 2; ++s) {
    const auto [b, e] = stage_blocks(o.layout, c.n_layer, s);
    Model part(c, Shard::of(c, 0, 1, b, e, s == 0, s == 1));
    EXPECT_EQ(4.0 * double(part.params.size()), rank_memory(c, o, s).weights) << "stage " << s;
  }
}

TEST(MemoryAccount, TrainStepBuffersMatchTheAccount) {
  const ModelConfig c = tiny();
  Model m(c);
  init_weights(m, {});
  TrainStep ts(m, {});
  const int64_t B = 2, T = 16;
  ts.step({random_batch(c, B, T, 7)}, 1e-3);
  MemoryOptions o;
  o.batch = B, o.seq = T, o.micro_batches = 1;
  const MemoryAccount a = rank_memory(c, o, 0);
  EXPECT_EQ(4.0 * double(ts.grads().capacity()), a.gradients);
  EXPECT_EQ(8.0 * double(ts.optimizer().m().capacity()), a.moments);
  EXPECT_EQ(ts.optimizer().m().capacity(), ts.optimizer().v().capacity());
  EXPECT_EQ(ts.pass().slot_bytes(), a.activations);
  EXPECT_EQ(ts.pass().scratch_bytes(), a.buffers);  // pp = 1, no ZeRO: the pass's scratch is every buffer
  // The loss backward's per-row weights [N] are a temporary the account counts with the logits.
  EXPECT_EQ(ts.pass().logits_bytes() + 4.0 * double(B * T), a.logits);
}

TEST(MemoryAccount, PipelineStageSlotsMatchTheAccount) {
  const ModelConfig c = tiny();
  MemoryOptions o;
  o.layout.pp = 2, o.batch = 2, o.seq = 16, o.micro_batches = 4;
  std::vector<int32_t> tokens(size_t(o.batch * o.seq), 5), targets(tokens.size(), 6);
  for (int s = 0; s < 2; ++s) {
    const auto [b, e] = stage_blocks(o.layout, c.n_layer, s);
    Model part(c, Shard::of(c, 0, 1, b, e, s == 0, s == 1));
    ForwardPass fp(part, PassMode::Training);
    const LocalBatch lb = local_batch(tokens.data(), targets.data(), o.batch, o.seq, 0, 1);
    const int slots = activation_slots(o, s);  // 1F1B: min(p - stage, m)
    EXPECT_EQ(slots, 2 - s);
    for (int k = 0; k < slots; ++k) fp.prepare(k, lb);
    const MemoryAccount a = rank_memory(c, o, s);
    EXPECT_EQ(fp.slot_bytes(), a.activations) << "stage " << s;
    // Buffers: the pass's scratch plus, off the last stage, one gradient receive buffer per slot.
    const double recv = s == 1 ? 0 : 4.0 * slots * double(o.batch * o.seq * c.n_embd);
    EXPECT_EQ(fp.scratch_bytes() + recv, a.buffers) << "stage " << s;
  }
}

TEST(MemoryAccount, ZeroPartitionsPadTheGradientBuffer) {
  EXPECT_EQ(zero_partition(10, 4, 1), 3);
  EXPECT_EQ(gradient_elems(10, 4, 1), 12);
  EXPECT_EQ(moment_elems(10, 4, 1), 3);
  EXPECT_EQ(zero_partition(10, 4, 0), 10);
  EXPECT_EQ(gradient_elems(10, 4, 0), 10);
}

TEST(MemoryAccount, HandComputed111M) {
  const ModelConfig c = *preset("111M");
  const int64_t C = 768, F = 3072, V = 50257, P = 2048, L = 10;
  // One rank, one sequence of 2048 tokens: 111,050,496 parameters (DESIGN.md).
  MemoryOptions o;
  o.batch = 1, o.seq = 2048;
  const MemoryAccount a = rank_memory(c, o, 0);
  EXPECT_EQ(a.weights, 4.0 * 111050496);
  EXPECT_EQ(a.gradients, 4.0 * 111050496);
  EXPECT_EQ(a.moments, 8.0 * 111050496);
  EXPECT_EQ(a.weights_bf16, 0);
  // A block keeps ln1, ln2, res2, atty [N, C], qkv [N, 3C], fch and fch_gelu [N, F], lse [N, H] and
  // four LayerNorm statistics [N]: N·(7C + 2F + H + 4) floats.
  const int64_t N = 2048;
  const RowShape r = row_shape(o.layout, 1, 2048);
  EXPECT_EQ(block_activation_sizes(c, Shard::full(c), r).total(), N * (7 * C + 2 * F + 12 + 4));
  // The slot: L blocks, L+1 residual streams [N, C], ln_f statistics, the stage's two gradients.
  EXPECT_EQ(a.activations, 4.0 * double(L * N * (7 * C + 2 * F + 16) + (L + 1) * N * C + 2 * N + 2 * N * C));
  EXPECT_EQ(a.logits, 4.0 * double(N * V + 2 * N) + 20.0 * N);
  // tp = 2: the vocabulary padded to a multiple of 256 (50432) and split; blocks split by heads.
  o.layout.tp = 2;
  const int64_t Vl = 50432 / 2;
  const int64_t block = 2 * C /*ln1*/ + C * 3 * C / 2 + 3 * C / 2 + C / 2 * C + C + 2 * C /*ln2*/ + C * F / 2 + F / 2 +
                        F / 2 * C + C;
  EXPECT_EQ(rank_memory(c, o, 0).weights, 4.0 * double(Vl * C + P * C + L * block + 2 * C));
}

TEST(MemoryAccount, RecomputeKeepsLess) {
  const ModelConfig c = *preset("1.3B");
  MemoryOptions o;
  o.batch = 1, o.seq = 2048;
  const double none = rank_memory(c, o, 0).activations;
  o.recompute = Recompute::Selective;
  const double sel = rank_memory(c, o, 0).activations;
  o.recompute = Recompute::Full;
  const double full = rank_memory(c, o, 0).activations;
  EXPECT_LT(sel, none);
  EXPECT_LT(full, sel);
  // Full: every block's input (L+1 residual streams), ln_f's statistics, the stage's two
  // gradients, plus one block's working set.
  const int64_t N = 2048, C = 2048, F = 8192, L = 24;
  EXPECT_EQ(full, 4.0 * double((L + 1) * N * C + 2 * N + 2 * N * C + N * (7 * C + 2 * F + 16 + 4)));
  EXPECT_EQ(recompute_from_name("selective"), Recompute::Selective);
  EXPECT_THROW(recompute_from_name("some"), Error);
}

TEST(MemoryAccount, BatchThatDoesNotSplitIsRejected) {
  MemoryOptions o;
  o.layout.dp = 2, o.batch = 3, o.seq = 16;
  EXPECT_THROW(rank_memory(tiny(), o, 0), Error);
}

}  // namespace
}  // namespace wafer
