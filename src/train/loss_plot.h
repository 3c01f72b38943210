// train/loss_plot.h: the loss curve of a run as a self-contained SVG image (no plotting
// library needed): training loss per step as a line, validation loss as points.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace wafer {

// Round tick values covering [lo, hi]: a step of 1, 2 or 5 times a power of ten giving about
// `target` intervals, and the ticks at its multiples from floor(lo/step) to ceil(hi/step).
// The axis then spans the first to the last tick. {0, 1} when the range is empty.
std::vector<double> axis_ticks(double lo, double hi, int target = 5);

// points: (step, loss). Writes `path` atomically.
void write_loss_plot(const std::string& path, const std::vector<std::pair<double, double>>& train,
                     const std::vector<std::pair<double, double>>& val, const std::string& title);

}  // namespace wafer
