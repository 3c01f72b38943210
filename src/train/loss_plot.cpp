// train/loss_plot.cpp
#include "train/loss_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/file.h"

namespace wafer {

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
  for (int k = 0; k <= 5; ++k) {  // grid and tick labels
    double y = y0 + (y1 - y0) * k / 5.0, x = x0 + (x1 - x0) * k / 5.0;
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n",
                  left, py(y), W - right, py(y), left - 6, py(y) + 4, y);
    s += buf;
    std::snprintf(buf, sizeof buf, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0f</text>\n", px(x),
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
