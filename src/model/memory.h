// model/memory.h: the memory account: what one rank of a training job holds, component by
// component (weights, their bf16 copy, gradients, AdamW moments, activations, logits,
// communication and scratch buffers), in bytes. One function per component, each with its formula.
// The element counts below are what the real allocations are sized with (Model::params and
// params_bf16, TrainStep's gradient buffer, AdamW's moments, ForwardPass's activation slots and
// scratch), so the printed prediction (`wafer info --layout`, `wafer plan`) and the process cannot
// drift apart. Not counted: the binary, libraries, thread stacks, per-thread attention tiles,
// oneDNN's bf16 operand scratch and the token shards' mapped pages (a constant the planner adds).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "model/config.h"
#include "model/parameters.h"
#include "parallel/layout.h"

namespace wafer {

// Activation recomputation. Only None is implemented by the trainer today; the account already
// models the other two as the plan for that implementation:
//   Selective: a block keeps everything but its attention internals (qkv, atty, lse), which the
//              backward recomputes from ln1 one block at a time (one block's worth is live).
//   Full:      a block keeps only its input (the residual stream); the backward reruns the
//              block's forward, so one block's whole working set is live at a time.
enum class Recompute { None, Selective, Full };
Recompute recompute_from_name(const std::string& s);  // "none" | "selective" | "full"
const char* recompute_name(Recompute r);

// --- Element counts that size the real buffers -------------------------------------------------

// fp32 master weights of a shard: shard_parameter_count (Model::params).
//   Vl·C [wte: first stage, or last when tied] + P·C [wpe: first] + Ls·(C·3Ca + 3Ca + Ca·C + C·Fl +
//   Fl + Fl·C + 5C) [blocks] + 2C [ln_f: last] (+ Vl·C untied head: last)
int64_t weight_elems(const ModelConfig& c, const Shard& sh);
// The bf16 copy the GEMMs read (Model::params_bf16): weight_elems under BF16, else 0.
int64_t bf16_copy_elems(const ModelConfig& c, const Shard& sh, Precision p);
// ZeRO-1 (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training Trillion
// Parameter Models", stage Pos): each of `ranks` replicas updates ceil(n / ranks) floats of the
// shard buffer; without ZeRO every replica updates all n.
int64_t zero_partition(int64_t n, int ranks, int zero);
// The gradient buffer (TrainStep::grads_): n floats, padded under ZeRO to ranks·part so the
// reduce-scatter hands every rank an equal piece.
int64_t gradient_elems(int64_t n, int ranks, int zero);
// One AdamW moment, m or v (AdamW::m_, v_): zero_partition floats.
int64_t moment_elems(int64_t n, int ranks, int zero);

// A micro-batch's rows on one rank (as ForwardPass sees a LocalBatch).
struct RowShape {
  int64_t B = 1, Tc = 1, chunks = 1;  // sequences, tokens per chunk, cp chunks (1 or 2)
  int64_t N = 1;                      // rows = chunks·B·Tc
  int64_t Ns = 1;                     // rows of the residual stream: N/tp under sequence parallelism
};
// This rank's rows of a micro-batch of `batch` sequences of T tokens (batch/dp sequences, 2 zigzag
// chunks of T/(2cp) under cp > 1, N/tp residual rows under sp with tp > 1).
RowShape row_shape(const Layout& l, int64_t batch, int64_t T);

// What one block keeps from its forward for its backward (BlockActivations), in floats.
// Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models",
// section 4.1) count s·b·h·(34 + 5·a·s/h) bytes per layer in fp16 with the T×T scores stored;
// wafer keeps fp32, never stores the scores (FlashAttention: one lse per row and head instead),
// and no dropout masks:
//   ln1, ln2 [N, C]; qkv [N, 3Ca]; atty [N, Ca]; lse [N·Ha]; res2 [Ns, C]; fch, fch_gelu [N, Fl];
//   four LayerNorm statistics [Ns].
struct BlockActivationSizes {
  int64_t ln1 = 0, ln1_mean = 0, ln1_rstd = 0, qkv = 0, atty = 0, att_lse = 0, res2 = 0;
  int64_t ln2 = 0, ln2_mean = 0, ln2_rstd = 0, fch = 0, fch_gelu = 0;
  int64_t total() const;
};
// Every buffer of a block (Recompute::None: what resize_slot allocates); `kept` drops what a
// recompute mode does not keep between forward and backward.
BlockActivationSizes block_activation_sizes(const ModelConfig& c, const Shard& sh, const RowShape& r);
BlockActivationSizes kept_block_activations(const BlockActivationSizes& all, Recompute rc);
// The rest: what the backward recomputes, one block at a time, into one working block of the
// pass (ForwardPass::work_): nothing, the attention internals, or the whole block.
BlockActivationSizes recomputed_block_activations(const BlockActivationSizes& all, Recompute rc);

// The rest of one activation slot (StageActivations) in floats: the residual stream at each block
// boundary [Ls+1][Ns, C] (inference: two ping-pong buffers), ln_f's statistics [Ns] each, and in
// training the gradients at the stage's output and input [Ns, C] each.
struct SlotSizes {
  int64_t blocks = 0;       // BlockActivations held (training: Ls, inference: 1)
  int64_t resid_count = 0;  // residual buffers (training: Ls+1, inference: 2)
  int64_t resid = 0;        // each, floats
  int64_t lnf_stat = 0;     // lnf_mean, lnf_rstd each
  int64_t dresid = 0, dinput = 0;
  int64_t floats(const BlockActivationSizes& block) const;
};
SlotSizes slot_sizes(const ModelConfig& c, const Shard& sh, const RowShape& r, bool training);

// ForwardPass's scratch (in floats, except the loss statistics) and the ring-attention buffers,
// sized once per training micro-batch shape.
struct PassScratchSizes {
  int64_t tmp_full = 0, tmp_rows = 0;  // [N, C], [Ns, C]: c_proj partial sums, gathered rows
  int64_t lnf_full = 0, lnf_rows = 0;  // [N, C] (sp only), [Ns, C]
  int64_t logits = 0, losses = 0;      // [N, Vl], [N] (last stage)
  int64_t dres2 = 0, dfch = 0, dfch_gelu = 0, dln = 0, datty = 0, dqkv = 0, dgather = 0;  // backward
  int64_t ring_kv = 0;                 // each of the two travelling K|V(|dK|dV) blocks (cp > 1)
  int64_t ring_part_out = 0, ring_part_lse = 0;
  int64_t ce_rows = 0;                 // vocab-parallel loss stats: rowmax f32, sumexp and target f64
  int64_t recompute_out = 0;           // [Ns, C]: a fully recomputed block's output (Recompute::Full)
  int64_t buffer_floats() const;       // everything but logits, losses, ce (counted as logits)
};
PassScratchSizes pass_scratch_sizes(const ModelConfig& c, const Shard& sh, const Layout& l, const RowShape& r,
                                    Recompute rc = Recompute::None);

// --- The account --------------------------------------------------------------------------------

struct MemoryOptions {
  Layout layout;              // tp pp cp dp, sp, zero, schedule, stage_layers
  int64_t batch = 1;          // sequences per micro-batch, the whole job's (each dp rank takes batch/dp)
  int64_t seq = 0;            // tokens per sequence T (0: the model's context)
  int micro_batches = 1;      // per optimizer step
  Precision precision = Precision::F32;
  Recompute recompute = Recompute::None;
};

// Bytes on one rank (every rank of a pipeline stage holds the same).
struct MemoryAccount {
  int stage = 0;
  double weights = 0;       // 4 B × weight_elems
  double weights_bf16 = 0;  // 2 B × bf16_copy_elems
  double gradients = 0;     // 4 B × gradient_elems (+ ZeRO's summed piece)
  double moments = 0;       // 2 × 4 B × moment_elems
  double activations = 0;   // slots × (blocks kept + residual stream + ln_f stats + stage gradients)
  double logits = 0;        // last stage: [N, Vl] logits (their gradient in place), losses, loss stats
  double buffers = 0;       // scratch, ring blocks, pipeline receive buffers, the gradient reduction's temporary
  double total() const;
};

// Activation slots the schedule keeps on `stage` (1F1B: min(p - stage, m); GPipe: m).
int activation_slots(const MemoryOptions& o, int stage);
// The account of a rank of pipeline stage `stage`. Throws when the batch does not split over
// the layout (dp not dividing the sequences, T not splitting into 2·cp chunks, sp rows).
MemoryAccount rank_memory(const ModelConfig& c, const MemoryOptions& o, int stage);
// The account of every stage, and the largest.
std::vector<MemoryAccount> stage_memory(const ModelConfig& c, const MemoryOptions& o);
MemoryAccount peak_memory(const ModelConfig& c, const MemoryOptions& o);

}  // namespace wafer
