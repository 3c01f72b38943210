// parallel/pipeline_schedule.h: the order in which one pipeline stage runs the forward and
// backward passes of a step's micro-batches. Pure bookkeeping: train/pipeline.cpp executes it,
// receiving each forward's input from the previous stage and each backward's gradient from the
// next one.
//
//   GPipe: every forward, then every backward. A stage keeps all m micro-batches' activations.
//   1F1B:  stage s runs min(p-1-s, m) forwards to fill the pipeline, then alternates one forward
//          and one backward, then drains the backwards. At most p-s micro-batches are in flight,
//          so activation memory is bounded by the depth, not by m.
// Both leave the same bubble: (p-1) idle slots of one forward+backward per stage, a fraction
// (p-1)/m of the useful work.
#pragma once
#include <vector>

#include "parallel/layout.h"

namespace wafer {

struct PipeAction {
  enum Kind { Forward, Backward } kind;
  int micro;  // micro-batch index
};

std::vector<PipeAction> pipeline_schedule(PipeSchedule s, int stages, int stage, int micro_batches);
// Activation slots the schedule needs at most (micro-batch i uses slot i % slots).
int pipeline_slots(PipeSchedule s, int stages, int stage, int micro_batches);
// The ideal bubble, idle time over useful time: (p-1)/m.
double pipeline_bubble_formula(int stages, int micro_batches);

}  // namespace wafer
