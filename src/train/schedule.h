// train/schedule.h: the learning-rate schedule of the Cerebras-GPT runs: linear warmup from 0 to
// the peak, then linear or cosine decay to final_ratio · peak at the last step.
#pragma once
#include <cstdint>
#include <string>

namespace wafer {

enum class Decay { Linear, Cosine };

struct LrSchedule {
  double peak = 6e-4;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  Decay decay = Decay::Linear;
  double final_ratio = 0.1;

  // LR for the optimizer step with 0-based index `step`:
  //   step < warmup:  peak · (step + 1) / warmup
  //   else: p = (step - warmup) / max(1, total - 1 - warmup) in [0, 1];
  //         linear: peak · (1 - (1 - r)·p);  cosine: peak · (r + (1 - r)·(1 + cos πp)/2)
  double lr(int64_t step) const;
  std::string describe() const;
};

Decay decay_from_name(const std::string& s);

}  // namespace wafer
