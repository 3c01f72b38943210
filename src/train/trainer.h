// train/trainer.h: the training loop of `wafer train`: batches from a Dataset, the LR schedule,
// TrainStep, a progress line, RUN_DIR/metrics.jsonl, RUN_DIR/loss.svg, checkpoints and resume,
// and the final HF export in RUN_DIR/final/.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "model/model.h"
#include "parallel/layout.h"
#include "train/adamw.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/schedule.h"

namespace wafer {

struct TrainOptions {
  std::string run_dir;
  int64_t steps = 100;          // total optimizer steps of the run
  int64_t batch = 4;            // sequences per micro-batch
  int64_t seq = 256;            // tokens per sequence
  int64_t micro_batches = 1;    // gradient accumulation
  LrSchedule schedule;
  AdamWOptions adamw;
  double clip_norm = 1.0;
  uint64_t seed = 1234;
  int64_t checkpoint_every = 0;  // 0 = only at the end
  int64_t stop_at = 0;           // > 0: checkpoint and return after this step (the schedule still spans `steps`)
  int64_t eval_every = 0;        // 0 = only at the end
  int64_t eval_batches = 4;
  double peak_flops = 355e9;     // for MFU: the fp32 sgemm ceiling measured on a 2-core AVX-512 machine
  bool progress = true;
  bool progress_tty = false;     // redraw one line (a terminal) or print every twentieth step (a log)
  std::string tokenizer_dir;     // copied into final/ when set
  Recompute recompute = Recompute::None;  // what the backward recomputes instead of keeping
  int64_t check_replicas = 0;    // > 0: compare replicas' parameter hashes every this many steps and at checkpoints
};

// Runs from step `start_step` (0, or the checkpoint's step when resuming from `resume`, whose
// AdamW moments each rank then reads for its own range) to o.steps. Collective: every rank of the
// layout calls it with its shard `m`; checkpoints and the final export hold whole tensors (so any
// layout can resume them), written by world rank 0 tensor by tensor from every rank's slices;
// rank 0 also writes metrics and plots. Throws on a non-finite loss naming the step; checkpoints
// already written stay intact.
void run_training(Model& m, const ParallelState& par, const Dataset& data, const TrainOptions& o, int64_t start_step,
                  const CheckpointInfo* resume);

}  // namespace wafer
