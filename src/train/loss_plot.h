// train/loss_plot.h: the loss curve of a run as a self-contained SVG image (no plotting
// library needed): training loss per step as a line, validation loss as points.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace wafer {

// points: (step, loss). Writes `path` atomically.
void write_loss_plot(const std::string& path, const std::vector<std::pair<double, double>>& train,
                     const std::vector<std::pair<double, double>>& val, const std::string& title);

}  // namespace wafer
