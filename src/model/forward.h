// model/forward.h: the GPT-2 forward and backward pass of one rank's shard, as a flat list of
// kernel calls per block (llm.c style) with every communication a visible call:
//   tensor parallel   tp.all_reduce after each row-parallel c_proj (or, with sequence
//                     parallelism, tp.all_gather before the column-parallel layers and
//                     tp.reduce_scatter after the row-parallel ones); vocab-parallel embedding
//                     and loss;
//   context parallel  ring_attention_forward / _backward over the cp group;
//   pipeline          a stage runs only its blocks; the caller moves activations between stages
//                     (train/pipeline.cpp), except in the whole-model calls forward() and
//                     forward_loss(), which pass them along the pp group themselves.
// One rank is the layout 1×1×1×1: every group has one member and every collective is a no-op.
//
// Letters as in model/config.h, plus this rank's share: Ca = C/tp, Fl = F/tp, Vl (vocabulary
// rows), Ha = H/tp heads; a micro-batch's rows on this rank N = chunks·B·Tc, and Ns = N/tp rows
// of the residual stream under sequence parallelism (else Ns = N).
#pragma once
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/gelu.h"
#include "model/memory.h"
#include "model/model.h"
#include "parallel/layout.h"
#include "parallel/ring_attention.h"
#include "parallel/vocab_parallel.h"

namespace wafer {

// A rank's rows of a micro-batch [B, T]: the zigzag chunks of its cp rank, chunk-major
// [chunks][B][Tc]; each row carries its token, target (-1 = not counted) and position.
struct LocalBatch {
  int64_t B = 0, Tc = 0, chunks = 1;
  std::vector<int32_t> tokens, targets, positions;
  int64_t rows() const { return chunks * B * Tc; }
};
// tokens/targets: [B, T] (targets may be null: none counted). Positions start at pos0.
LocalBatch local_batch(const int32_t* tokens, const int32_t* targets, int64_t B, int64_t T, int cp_rank, int cp,
                       int64_t pos0 = 0);

// What one block's forward produces and its backward needs.
struct BlockActivations {
  std::vector<float> ln1;        // [N, C]   (gathered over tp under sequence parallelism)
  std::vector<float> ln1_mean;   // [Ns]
  std::vector<float> ln1_rstd;   // [Ns]
  std::vector<float> qkv;        // [N, 3Ca] this rank's heads: Q|K|V
  std::vector<float> atty;       // [N, Ca]  attention output before c_proj
  std::vector<float> att_lse;    // [chunks, B, Ha, Tc] log-sum-exp of each attention row
  std::vector<float> res2;       // [Ns, C]  residual after attention
  std::vector<float> ln2;        // [N, C]
  std::vector<float> ln2_mean;   // [Ns]
  std::vector<float> ln2_rstd;   // [Ns]
  std::vector<float> fch;        // [N, Fl]  c_fc output (pre-GELU)
  std::vector<float> fch_gelu;   // [N, Fl]
};

// One micro-batch's state on this stage from its forward to its backward (a pipeline keeps
// several in flight, one per slot).
struct StageActivations {
  std::vector<BlockActivations> blocks;   // one per block of the stage (training), else one reused
  std::vector<std::vector<float>> resid;  // residual stream [blocks+1][Ns, C] (training), else [2]
  std::vector<float> lnf_mean, lnf_rstd;  // [Ns]
  std::vector<float> dresid;              // [Ns, C] gradient at the blocks' output (last stage)
  std::vector<float> dinput;              // [Ns, C] gradient at the stage's input (to send back)
  double loss_sum = 0;                    // Σ loss over this rank's counted rows (last stage)
};

// A layer's KV cache: K and V of positions [0, Tmax) for each batch row, this rank's heads, in
// fp32, or in bf16 for serving (model/batch_forward; ForwardPass takes fp32 only).
struct LayerKV {
  void* k;       // [B, Tmax, Ca] of `dtype`
  void* v;       // [B, Tmax, Ca] of `dtype`
  int64_t Tmax;
  DType dtype = DType::F32;  // F32 or BF16
  float* k_f32() const { return static_cast<float*>(k); }
  float* v_f32() const { return static_cast<float*>(v); }
};

enum class LogitsRows { All, Last };  // [B, T, V] or only each sequence's last position [B, V]

enum class PassMode { Inference, Training };  // Training keeps every block's activations

class ForwardPass {
 public:
  // Activation slots (one per micro-batch in flight) are added as prepare() first asks for them.
  ForwardPass(const Model& m, const ParallelState& par, PassMode mode);
  explicit ForwardPass(const Model& m, PassMode mode = PassMode::Inference)
      : ForwardPass(m, ParallelState::single(), mode) {}

  // --- Whole-model calls: collective over the tp, cp and pp groups; every rank gets the result.
  // tokens: [B, T] ids in [0, V), positions pos0 .. pos0+T-1 (pos0 + T <= P). With `kv` (one view
  // per block of this stage, or empty), K/V of these positions are written into the cache and
  // attention reads positions [0, pos0+T) from it (cp = 1); without, pos0 must be 0. Returns
  // logits [B, T, V] or [B, V], valid until the next call.
  const float* forward(const int32_t* tokens, int64_t B, int64_t T, int64_t pos0, const std::vector<LayerKV>& kv,
                       LogitsRows rows);
  // Σ next-token cross-entropy against targets [B, T] (-1 = ignored) and the number counted.
  // No gradients; the logits are never gathered.
  std::pair<double, int64_t> forward_loss(const int32_t* tokens, const int32_t* targets, int64_t B, int64_t T);

  // --- Pipeline-stage calls (training): collective over tp and cp only.
  // Sizes slot `slot` for batch `b`; returns the buffer [Ns, C] a non-first stage receives into.
  float* prepare(int slot, const LocalBatch& b);
  int64_t stage_rows(const LocalBatch& b) const;  // Ns
  // This stage's forward. Non-last stages return their output [Ns, C] (valid until the slot's
  // next use). The last stage computes the loss (stage_loss) and returns null; given `grads` it
  // also runs the loss backward through the head, each counted row weighted by `loss_scale`.
  const float* stage_forward(int slot, const LocalBatch& b, float loss_scale, const ModelWeights* grads);
  double stage_loss(int slot) const { return slots_[size_t(slot)].loss_sum; }
  // This stage's backward (+= into grads). dout: [Ns, C], the gradient of the stage's output
  // (ignored on the last stage). Returns the gradient of its input [Ns, C] (non-first stages,
  // valid until the slot's next use), else null.
  const float* stage_backward(int slot, const LocalBatch& b, const float* dout, const ModelWeights& grads);

  const Model& model() const { return m_; }
  // Decoding one row on one rank with quantized weights runs in one parallel region
  // (model/decode_step.cpp), bit-identical to the general path; off, the general path decodes.
  // On unless the environment sets WAFER_DECODE_REGION=0.
  void set_one_region_decode(bool on) { one_region_decode_ = on; }
  int64_t one_region_decode_steps() const { return one_region_steps_; }  // steps it has run
  // Training: what each block keeps from its forward for its backward (model/memory.h). Selective
  // and Full recompute the rest in the backward, one block at a time, into one working block;
  // the recomputation runs the same kernels on the same inputs, so the gradients are bit-identical
  // to keeping everything. Set before the first prepare().
  void set_recompute(Recompute rc) { recompute_ = rc; }
  // Bytes of capacity this pass holds, for the memory account's test (model/memory.h): the activation
  // slots; the scratch and ring buffers; the logits, per-row losses and loss statistics.
  double slot_bytes() const;
  double scratch_bytes() const;
  double logits_bytes() const;

 private:
  bool sp() const { return sp_; }
  void resize_slot(StageActivations& s, const LocalBatch& b);
  void embed(float* x, const LocalBatch& b);
  void embed_backward(const float* dx, const LocalBatch& b, const ModelWeights& grads);
  void block_forward(const LayerWeights& w, BlockActivations& a, float* out, const float* x, const LocalBatch& b,
                     const LayerKV* kv, int64_t pos0);
  void block_backward(const LayerWeights& w, const LayerWeights& g, const BlockActivations& a, const float* x,
                      float* dx, const LocalBatch& b);
  // ln_f and the vocabulary shard of the head: logits_ [n, Vl] for the rows of lnf_full_.
  void head_logits(StageActivations& s, const float* x, const LocalBatch& b, LogitsRows rows);
  // Whole-model calls: this stage's input (embedded, or received from stage p-1), its blocks,
  // and the output [N, C] sent on to stage p+1 (and returned). Collective over tp, cp and pp.
  const float* whole_model_stage(StageActivations& s, const LocalBatch& b, const std::vector<LayerKV>& kv,
                                 int64_t pos0, int tag);
  // The attention part of a block's forward: a.qkv, a.atty, a.att_lse from a.ln1 (all rows).
  void attention_core(const LayerWeights& w, BlockActivations& a, const LocalBatch& b, const LayerKV* kv,
                      int64_t pos0);
  // Block l's backward under recomputation: first rebuilds what the slot did not keep.
  void recompute_then_backward(StageActivations& s, int64_t l, float* dx, const LocalBatch& b,
                               const ModelWeights& grads);
  // Runs the blocks of this stage over slot s (its resid[0] already holds the input).
  const float* run_blocks(StageActivations& s, const LocalBatch& b, const std::vector<LayerKV>& kv, int64_t pos0);
  // model/decode_step.cpp: whether this call is one it takes, and the step itself (the slot
  // sized for the batch b of one row; logits [Vl] into logits_).
  bool decode_in_one_region(const LocalBatch& b, const std::vector<LayerKV>& kv) const;
  void decode_step(StageActivations& s, const LocalBatch& b, const std::vector<LayerKV>& kv, int64_t pos0);
  static bool default_one_region_decode();
  // All rows of x [Ns, C] on every tp rank: a view of x, or gathered into `full` (sequence parallel).
  const float* gather_rows(std::vector<float>& full, const float* x, int64_t Ns);
  // Sums the tp ranks' partial [N, C] into out [Ns, C] (reduce-scatter) or in place (all-reduce).
  const float* reduce_rows(float* partial, float* out, int64_t Ns);

  const Model& m_;
  const ParallelState& par_;
  Group tp_, cp_, pp_;
  PassMode mode_;
  bool sp_;
  GeluForwardFn gelu_;
  GeluBackwardFn gelu_backward_;
  GeluForwardFn gelu_span_;  // serial, for the decode region
  std::vector<StageActivations> slots_;
  Recompute recompute_ = Recompute::None;
  BlockActivations work_;              // the block being recomputed (sized by recomputed_block_activations)
  std::vector<float> recompute_out_;   // [Ns, C] its output under Full (the slot keeps the real one)
  RingScratch ring_;
  VocabParallelStats ce_;
  std::vector<float> tmp_full_, tmp_rows_;    // [N, C], [Ns, C]
  std::vector<float> lnf_full_, lnf_rows_;    // [N, C], [Ns, C]
  std::vector<float> logits_, losses_;        // [n, Vl], [N]
  std::vector<float> gathered_;               // whole-model logits handed back by forward()
  std::vector<float> dres2_, dfch_, dfch_gelu_, dln_, datty_, dqkv_, dgather_;  // backward scratch
  // The decode region's per-thread buffers: a LayerNorm output [C], the quantized activation
  // (at most F values), attention scores [kAttentionRowScratch].
  struct DecodeThread {
    std::vector<float> ln, scores;
    QuantActRow act;
  };
  std::vector<DecodeThread> decode_threads_;
  bool one_region_decode_ = default_one_region_decode();
  int64_t one_region_steps_ = 0;
};

}  // namespace wafer
