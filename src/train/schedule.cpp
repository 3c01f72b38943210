// train/schedule.cpp
#include "train/schedule.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace wafer {

double LrSchedule::lr(int64_t step) const {
  if (step < warmup_steps) return peak * double(step + 1) / double(warmup_steps);
  const double span = double(std::max<int64_t>(1, total_steps - 1 - warmup_steps));
  const double p = std::min(1.0, double(step - warmup_steps) / span);
  if (decay == Decay::Linear) return peak * (1.0 - (1.0 - final_ratio) * p);
  return peak * (final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + std::cos(M_PI * p)));
}

std::string LrSchedule::describe() const {
  char buf[256];
  std::snprintf(buf, sizeof buf, "peak lr %.3g, linear warmup %lld steps, then %s decay to %.3g x peak at step %lld",
                peak, (long long)warmup_steps, decay == Decay::Linear ? "linear" : "cosine", final_ratio,
                (long long)total_steps);
  return buf;
}

Decay decay_from_name(const std::string& s) {
  if (s == "linear") return Decay::Linear;
  if (s == "cosine") return Decay::Cosine;
  fail(str_cat("[train] expected --decay linear or cosine, found '", s, "'"));
}

}  // namespace wafer
