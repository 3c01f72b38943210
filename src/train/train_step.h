// train/train_step.h: one optimizer step of one rank: zero the gradients, run the step's
// micro-batches through the pipeline (forward + backward; gradients accumulate, each row's loss
// weighted so the total is the mean over all counted targets), sum the gradients over the ranks
// that share them, global-norm clipping, AdamW. One rank is the layout of one: the same calls.
//
// Gradient reductions, in order (each a visible call in train_step.cpp):
//   sequence parallel  tp all-reduce of the LayerNorm and c_proj-bias gradients (each tp rank saw
//                      only its rows);
//   tied head, pp > 1  all-reduce of wte's gradient between the first and last stage;
//   data + context     all-reduce over the dp×cp ranks of one shard, or with ZeRO-1 a
//                      reduce-scatter: each rank then updates its 1/(dp·cp) of the buffer and
//                      the parameters are all-gathered.
#pragma once
#include <cstdint>
#include <vector>

#include "model/forward.h"
#include "train/adamw.h"

namespace wafer {

// One micro-batch: tokens [B, T] and their targets [B, T] (-1 = not counted).
struct Batch {
  int64_t B = 0, T = 0;
  std::vector<int32_t> tokens, targets;
};

// Bytes this rank sent through each kind of parallelism during a step.
struct TrafficBytes {
  uint64_t tp = 0, cp = 0, pp = 0, dp = 0;
};

struct StepResult {
  double loss = 0;       // mean cross-entropy over every counted target of the step
  double grad_norm = 0;  // before clipping
  int64_t tokens = 0;    // tokens processed by the whole job (B·T summed over micro-batches)
  double bubble = 0;     // pipeline idle time over busy time (mean over stages; ideal (p-1)/m)
  double comm_s = 0;     // seconds this rank spent in communication calls
  TrafficBytes bytes;
};

class TrainStep {
 public:
  TrainStep(Model& m, const AdamWOptions& opt, double clip_norm = 1.0);
  // m: this rank's shard (m.shard matches the layout's tp and pp coordinates).
  TrainStep(Model& m, const ParallelState& par, const AdamWOptions& opt, double clip_norm = 1.0);

  // Loss and gradients only (no update), collective. micro_batches are the whole job's (every
  // rank passes the same); each dp rank takes its share of every micro-batch's rows.
  StepResult compute_grads(const std::vector<Batch>& micro_batches);
  // compute_grads, then clip and update with learning rate `lr`. A non-finite loss or gradient
  // norm throws before the parameters are touched.
  StepResult step(const std::vector<Batch>& micro_batches, double lr);

  // Mean loss over the batches without touching gradients or parameters (validation).
  double eval_loss(const std::vector<Batch>& batches);

  // The shard's summed gradient (under ZeRO-1 only this rank's range of it is summed).
  const std::vector<float>& grads() const { return grads_; }
  const ModelWeights& grad_views() const { return gw_; }
  AdamW& optimizer() { return adamw_; }
  const ForwardPass& pass() const { return pass_; }  // the training pass (its buffers, for the memory account's test)
  // The elements [lo, hi) of the shard buffer this rank's AdamW moments cover: all of it, or
  // under ZeRO-1 its partition (the optimizer's m()[0] is element lo).
  std::pair<int64_t, int64_t> moment_range() const;
  // Activation recomputation of the training pass (ForwardPass::set_recompute); before the first step.
  void set_recompute(Recompute rc) { pass_.set_recompute(rc); }

 private:
  double local_grad_sumsq() const;

  Model& m_;
  const ParallelState& par_;
  Group tp_, pp_, dpcp_, embed_, world_;
  ForwardPass pass_, eval_pass_;
  std::vector<float> grads_;  // shard layout, padded to a multiple of the dp×cp ranks
  ModelWeights gw_;
  size_t n_;                  // floats in the shard
  size_t part_;               // ZeRO-1: floats per dp×cp rank; this rank updates [rank·part, (rank+1)·part)
  std::vector<float> grad_part_;
  AdamW adamw_;
  double clip_norm_;
  // Ranges of the shard buffer: counted in the gradient norm (each element of the model once
  // across the job), and summed over tp under sequence parallelism.
  std::vector<std::pair<size_t, size_t>> norm_ranges_, sp_ranges_;
  std::pair<size_t, size_t> wte_range_{0, 0};
};

// Targets for HF's labels=input_ids convention: targets[b, t] = tokens[b, t+1], the last -1.
Batch batch_from_sequences(const std::vector<std::vector<int32_t>>& seqs);

}  // namespace wafer
