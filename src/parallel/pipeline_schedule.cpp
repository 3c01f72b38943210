// parallel/pipeline_schedule.cpp
#include "parallel/pipeline_schedule.h"

#include <algorithm>

namespace wafer {

std::vector<PipeAction> pipeline_schedule(PipeSchedule s, int p, int stage, int m) {
  std::vector<PipeAction> a;
  if (s == PipeSchedule::GPipe) {
    for (int i = 0; i < m; ++i) a.push_back({PipeAction::Forward, i});
    for (int i = 0; i < m; ++i) a.push_back({PipeAction::Backward, i});
    return a;
  }
  const int warmup = std::min(p - 1 - stage, m);
  int f = 0, b = 0;
  for (; f < warmup; ++f) a.push_back({PipeAction::Forward, f});
  for (; f < m; ++f, ++b) {  // steady state: one forward, one backward
    a.push_back({PipeAction::Forward, f});
    a.push_back({PipeAction::Backward, b});
  }
  for (; b < m; ++b) a.push_back({PipeAction::Backward, b});
  return a;
}

int pipeline_slots(PipeSchedule s, int p, int stage, int m) {
  return s == PipeSchedule::GPipe ? m : std::min(p - stage, m);
}

double pipeline_bubble_formula(int p, int m) { return double(p - 1) / double(m); }

}  // namespace wafer
