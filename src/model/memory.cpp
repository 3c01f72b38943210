// model/memory.cpp: the memory account, one function per component (see memory.h for the
// formulas and where they come from).
#include "model/memory.h"

#include <algorithm>

#include "core/error.h"
#include "parallel/comm.h"
#include "parallel/pipeline_schedule.h"

namespace wafer {

Recompute recompute_from_name(const std::string& s) {
  if (s == "none") return Recompute::None;
  if (s == "selective") return Recompute::Selective;
  if (s == "full") return Recompute::Full;
  fail(str_cat("[memory] expected --recompute none, selective or full, found '", s, "'"));
}

const char* recompute_name(Recompute r) {
  return r == Recompute::None ? "none" : r == Recompute::Selective ? "selective" : "full";
}

int64_t weight_elems(const ModelConfig& c, const Shard& sh) { return shard_parameter_count(c, sh); }

int64_t bf16_copy_elems(const ModelConfig& c, const Shard& sh, Precision p) {
  return p == Precision::BF16 ? weight_elems(c, sh) : 0;
}

int64_t zero_partition(int64_t n, int ranks, int zero) { return zero ? (n + ranks - 1) / ranks : n; }

int64_t gradient_elems(int64_t n, int ranks, int zero) { return zero ? zero_partition(n, ranks, zero) * ranks : n; }

int64_t moment_elems(int64_t n, int ranks, int zero) { return zero_partition(n, ranks, zero); }

RowShape row_shape(const Layout& l, int64_t batch, int64_t T) {
  WAFER_CHECK(batch % l.dp == 0, "[layout] --dp ", l.dp, " splits each micro-batch's sequences, so it must divide ",
              batch, " (the sequences per micro-batch)");
  check_sequence(l, T, "the sequence length");
  RowShape r;
  r.B = batch / l.dp;
  r.chunks = l.cp == 1 ? 1 : 2;
  r.Tc = l.cp == 1 ? T : T / (2 * l.cp);
  r.N = r.chunks * r.B * r.Tc;
  const bool sp = l.sp && l.tp > 1;
  WAFER_CHECK(!sp || r.N % l.tp == 0, "[layout] --sp shards each micro-batch's ", r.N,
              " rows (sequences x tokens per cp rank) over --tp ", l.tp, " ranks, which must divide them");
  r.Ns = sp ? r.N / l.tp : r.N;
  return r;
}

int64_t BlockActivationSizes::total() const {
  return ln1 + ln1_mean + ln1_rstd + qkv + atty + att_lse + res2 + ln2 + ln2_mean + ln2_rstd + fch + fch_gelu;
}

BlockActivationSizes block_activation_sizes(const ModelConfig& c, const Shard& sh, const RowShape& r) {
  const int64_t N = r.N, Ns = r.Ns, C = c.n_embd, Ca = sh.attn_width(c), Fl = sh.ffn(c), Ha = sh.heads(c);
  BlockActivationSizes a;
  a.ln1 = N * C, a.ln1_mean = Ns, a.ln1_rstd = Ns;
  a.qkv = N * 3 * Ca, a.atty = N * Ca, a.att_lse = N * Ha, a.res2 = Ns * C;
  a.ln2 = N * C, a.ln2_mean = Ns, a.ln2_rstd = Ns;
  a.fch = N * Fl, a.fch_gelu = N * Fl;
  return a;
}

BlockActivationSizes kept_block_activations(const BlockActivationSizes& all, Recompute rc) {
  BlockActivationSizes k = all;
  if (rc == Recompute::Selective) k.qkv = k.atty = k.att_lse = 0;  // recomputed from ln1
  if (rc == Recompute::Full) k = {};                                // recomputed from the block's input
  return k;
}

BlockActivationSizes recomputed_block_activations(const BlockActivationSizes& all, Recompute rc) {
  const BlockActivationSizes k = kept_block_activations(all, rc);
  BlockActivationSizes w;
  w.ln1 = all.ln1 - k.ln1, w.ln1_mean = all.ln1_mean - k.ln1_mean, w.ln1_rstd = all.ln1_rstd - k.ln1_rstd;
  w.qkv = all.qkv - k.qkv, w.atty = all.atty - k.atty, w.att_lse = all.att_lse - k.att_lse, w.res2 = all.res2 - k.res2;
  w.ln2 = all.ln2 - k.ln2, w.ln2_mean = all.ln2_mean - k.ln2_mean, w.ln2_rstd = all.ln2_rstd - k.ln2_rstd;
  w.fch = all.fch - k.fch, w.fch_gelu = all.fch_gelu - k.fch_gelu;
  return w;
}

int64_t SlotSizes::floats(const BlockActivationSizes& block) const {
  return blocks * block.total() + resid_count * resid + 2 * lnf_stat + dresid + dinput;
}

SlotSizes slot_sizes(const ModelConfig& c, const Shard& sh, const RowShape& r, bool training) {
  SlotSizes s;
  s.blocks = training ? sh.n_layers() : 1;
  s.resid_count = training ? sh.n_layers() + 1 : 2;
  s.resid = r.Ns * c.n_embd;
  s.lnf_stat = r.Ns;
  s.dresid = s.dinput = training ? r.Ns * c.n_embd : 0;
  return s;
}

int64_t PassScratchSizes::buffer_floats() const {
  return tmp_full + tmp_rows + lnf_full + lnf_rows + dres2 + dfch + dfch_gelu + dln + datty + dqkv + dgather +
         2 * ring_kv + ring_part_out + ring_part_lse + recompute_out;
}

PassScratchSizes pass_scratch_sizes(const ModelConfig& c, const Shard& sh, const Layout& l, const RowShape& r,
                                    Recompute rc) {
  const int64_t N = r.N, Ns = r.Ns, C = c.n_embd, Ca = sh.attn_width(c), Fl = sh.ffn(c), Ha = sh.heads(c);
  const bool sp = l.sp && l.tp > 1;
  PassScratchSizes s;
  s.tmp_full = N * C, s.tmp_rows = Ns * C;
  if (sh.last_stage) {
    s.lnf_rows = Ns * C, s.lnf_full = sp ? N * C : 0;
    s.logits = N * sh.vocab_rows(), s.losses = N, s.ce_rows = N;
  }
  s.dres2 = Ns * C, s.dfch = s.dfch_gelu = N * Fl, s.dln = N * C, s.datty = N * Ca, s.dqkv = N * 3 * Ca;
  s.dgather = sp ? N * C : 0;
  if (l.cp > 1) {  // ring attention: K|V of the rank's rows, with their gradients in the backward
    s.ring_kv = 2 * (N * 2 * Ca);
    s.ring_part_out = r.B * r.Tc * Ca, s.ring_part_lse = r.B * Ha * r.Tc;
  }
  s.recompute_out = rc == Recompute::Full ? Ns * C : 0;
  return s;
}

double MemoryAccount::total() const {
  return weights + weights_bf16 + gradients + moments + activations + logits + buffers;
}

int activation_slots(const MemoryOptions& o, int stage) {
  return pipeline_slots(o.layout.schedule, o.layout.pp, stage, o.micro_batches);
}

MemoryAccount rank_memory(const ModelConfig& c, const MemoryOptions& o, int stage) {
  const Layout& l = o.layout;
  const int64_t T = o.seq > 0 ? o.seq : c.n_positions;
  const auto [begin, end] = stage_blocks(l, c.n_layer, stage);
  const Shard sh = Shard::of(c, 0, l.tp, begin, end, stage == 0, stage == l.pp - 1);
  const RowShape r = row_shape(l, o.batch, T);
  const int replicas = l.dp * l.cp;  // ZeRO-1 shards over the dp×cp ranks of one shard
  const int64_t n = weight_elems(c, sh), part = zero_partition(n, replicas, l.zero);
  MemoryAccount a;
  a.stage = stage;
  a.weights = 4.0 * double(n);
  a.weights_bf16 = 2.0 * double(bf16_copy_elems(c, sh, o.precision));
  a.gradients = 4.0 * double(gradient_elems(n, replicas, l.zero) + (l.zero ? part : 0));
  a.moments = 2 * 4.0 * double(moment_elems(n, replicas, l.zero));

  const BlockActivationSizes all = block_activation_sizes(c, sh, r);
  const SlotSizes slot = slot_sizes(c, sh, r, true);
  const int slots = activation_slots(o, stage);
  // Recomputation adds back one block's working set (the part not kept), live during its backward.
  const int64_t working = recomputed_block_activations(all, o.recompute).total();
  a.activations = 4.0 * double(slots * slot.floats(kept_block_activations(all, o.recompute)) + working);

  const PassScratchSizes s = pass_scratch_sizes(c, sh, l, r, o.recompute);
  // Logits: [N, Vl] (their gradient in place), per-row losses and the loss gradient's weights
  // [N] f32 each, and the vocab-parallel statistics (rowmax f32, sum-exp and target f64).
  a.logits = 4.0 * double(s.logits + 2 * s.losses) + 20.0 * double(s.ce_rows);
  // Buffers: the pass's scratch and a receive buffer per slot for the next stage's gradient
  // (train/pipeline.cpp). ZeRO-1 gathers the parameters in place (one broadcast per owner).
  const int64_t recv = sh.last_stage ? 0 : int64_t(slots) * r.Ns * c.n_embd;
  a.buffers = 4.0 * double(s.buffer_floats() + recv);
  // The gradients' reduction over the dp x cp replicas (all-reduce, or ZeRO-1's reduce-scatter):
  // OpenMPI's nonblocking collectives (libnbc, which parallel/comm issues) receive each call's
  // whole input into a temporary they allocate (nbc_ireduce_scatter_block.c, nbc_iallreduce.c),
  // so a rank that reduces holds a copy of the gradient buffer, or of one chunk of it.
  if (replicas > 1)
    a.buffers += std::min(4.0 * double(gradient_elems(n, replicas, l.zero)), double(comm_chunk_bytes()));
  return a;
}

std::vector<MemoryAccount> stage_memory(const ModelConfig& c, const MemoryOptions& o) {
  std::vector<MemoryAccount> v;
  for (int s = 0; s < o.layout.pp; ++s) v.push_back(rank_memory(c, o, s));
  return v;
}

MemoryAccount peak_memory(const ModelConfig& c, const MemoryOptions& o) {
  std::vector<MemoryAccount> v = stage_memory(c, o);
  return *std::max_element(v.begin(), v.end(),
                           [](const MemoryAccount& a, const MemoryAccount& b) { return a.total() < b.total(); });
}

}  // namespace wafer
