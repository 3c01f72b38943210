// train/train_step.h: one optimizer step: zero the gradients, forward + backward over each
// micro-batch (gradients accumulate, each micro-batch's loss weighted so the total is the mean
// over all counted targets), global-norm clipping, AdamW. The unit the trainer loop and the
// optimizer tests drive.
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

struct StepResult {
  double loss = 0;       // mean cross-entropy over every counted target of the step
  double grad_norm = 0;  // before clipping
  int64_t tokens = 0;    // tokens processed (B·T summed over micro-batches)
};

class TrainStep {
 public:
  TrainStep(Model& m, const AdamWOptions& opt, double clip_norm = 1.0);

  // Loss and gradients only (no update): fills grads(); used by `wafer grads` and by step().
  StepResult compute_grads(const std::vector<Batch>& micro_batches);
  // compute_grads, then clip and update with learning rate `lr`. A non-finite loss or gradient
  // norm throws before the parameters are touched.
  StepResult step(const std::vector<Batch>& micro_batches, double lr);

  // Mean loss over the batches without touching gradients or parameters (validation).
  double eval_loss(const std::vector<Batch>& batches);

  const std::vector<float>& grads() const { return grads_; }
  const ModelWeights& grad_views() const { return gw_; }
  AdamW& optimizer() { return adamw_; }

 private:
  Model& m_;
  ForwardPass pass_;
  std::vector<float> grads_;  // laid out like m_.params
  ModelWeights gw_;
  AdamW adamw_;
  double clip_norm_;
};

// Targets for HF's labels=input_ids convention: targets[b, t] = tokens[b, t+1], the last -1.
Batch batch_from_sequences(const std::vector<std::vector<int32_t>>& seqs);

}  // namespace wafer
