// train/pipeline.h: runs one step's micro-batches through this rank's pipeline stage in the
// order of a schedule (parallel/pipeline_schedule.h), moving activations forward and their
// gradients back over the pp group point to point. With one stage it is the plain loop over
// micro-batches: forward, backward, next.
#pragma once
#include <vector>

#include "model/forward.h"
#include "parallel/pipeline_schedule.h"

namespace wafer {

struct PipelineStats {
  double loss_sum = 0;  // Σ loss over this rank's counted rows (last stage; 0 elsewhere)
  double busy_s = 0;    // seconds in this stage's forward and backward computations
  double wall_s = 0;    // seconds for the whole schedule
};

// mbs: this rank's rows of each micro-batch. Gradients accumulate (+=) into `grads`, each
// counted row weighted by loss_scale. Micro-batch i uses activation slot i % pipeline_slots(...).
PipelineStats run_pipeline(ForwardPass& fp, Group& pp, PipeSchedule schedule, const std::vector<LocalBatch>& mbs,
                           float loss_scale, const ModelWeights& grads);

}  // namespace wafer
