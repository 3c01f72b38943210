// train/loss_plot.cpp
#include "train/loss_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>

#include "core/file.h"

namespace wafer {

std::vector<double> axis_ticks(double lo, double hi, int target) {
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return {0, 1};
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * mag;
  for (double m : {1.0, 2.0, 5.0})
    if (m * mag >= raw * (1 - 1e-9)) {
      step = m * mag;
      break;
    }
  const auto first = int64_t(std::floor(lo / step + 1e-9)), last = int64_t(std::ceil(hi / step - 1e-9));
  std::vector<double> ticks;
  for (int64_t k = first; k <= last; ++k) ticks.push_back(double(k) * step);
  if (ticks.size() < 2) ticks.push_back(ticks.back() + step);
  return ticks;
}

void write_loss_plot(const std::string& path, const std::vector<std::pair<double, double>>& train,
                     const std::vector<std::pair<double, double>>& val, const std::string& title) {
  const double W = 800, H = 480, left = 70, right = 20, top = 40, bottom = 50;
  double x0 = 0, x1 = 1, y0 = 1e300, y1 = -1e300;
  for (const auto* pts : {&train, &val})
    for (const auto& [x, y] : *pts) {
      if (!std::isfinite(y)) continue;
      x1 = std::max(x1, x);
      y0 = std::min(y0, y);
      y1 = std::max(y1, y);
    }
  if (y0 > y1) y0 = 0, y1 = 1;
  if (y1 - y0 < 1e-6) y1 = y0 + 1;
  // Axes run from tick to tick, and the ticks are round numbers (8, 9, 10; 0, 50, 100).
  const std::vector<double> yt = axis_ticks(y0, y1), xt = axis_ticks(x0, x1);
  y0 = yt.front(), y1 = yt.back(), x0 = xt.front(), x1 = xt.back();
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * (W - left - right); };
  auto py = [&](double y) { return top + (y1 - y) / (y1 - y0) * (H - top - bottom); };
  std::string s;
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" "
                "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                W, H);
  s += buf;
  std::snprintf(buf, sizeof buf, "<text x=\"%.0f\" y=\"24\" font-size=\"15\">%s</text>\n", left, title.c_str());
  s += buf;
  for (double y : yt) {  // horizontal grid lines and loss labels
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                  left, py(y), W - right, py(y), left - 6, py(y) + 4, y);
    s += buf;
  }
  for (double x : xt) {  // step labels
    std::snprintf(buf, sizeof buf, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", px(x),
                  H - bottom + 18, x);
    s += buf;
  }
  std::snprintf(buf, sizeof buf,
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">step</text>"
                "<text x=\"16\" y=\"%.1f\" transform=\"rotate(-90 16 %.1f)\" text-anchor=\"middle\">loss (nats)</text>\n",
                (W + left) / 2, H - 12, (H) / 2, (H) / 2);
  s += buf;
  s += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"";
  for (const auto& [x, y] : train) {
    if (!std::isfinite(y)) continue;
    std::snprintf(buf, sizeof buf, "%.1f,%.1f ", px(x), py(y));
    s += buf;
  }
  s += "\"/>\n";
  for (const auto& [x, y] : val) {
    std::snprintf(buf, sizeof buf, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#d62728\"/>\n", px(x), py(y));
    s += buf;
  }
  std::snprintf(buf, sizeof buf,
                "<text x=\"%.0f\" y=\"%.0f\" fill=\"#1f77b4\">train</text><text x=\"%.0f\" y=\"%.0f\" "
                "fill=\"#d62728\">validation</text>\n</svg>\n",
                W - right - 130, top + 4, W - right - 80, top + 4);
  s += buf;
  write_file_atomic(path, s);
}

}  // namespace wafer
