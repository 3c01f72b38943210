// core/format.cpp
#include "core/format.h"

#include <cmath>
#include <cstdio>

namespace wafer {

std::string human_count(double n) {
  static const char* suffix[] = {"", "K", "M", "B", "T"};
  int k = 0;
  double v = n;
  // Round to three significant digits first, so 999,950 reads "1.00M", not "1000K".
  while (k < 4 && std::fabs(v) >= 999.5) v /= 1000, ++k;
  char buf[32];
  const double a = std::fabs(v);
  const char* fmt = k == 0 ? "%.0f%s" : a >= 99.95 ? "%.0f%s" : a >= 9.995 ? "%.1f%s" : "%.2f%s";
  std::snprintf(buf, sizeof buf, fmt, v, suffix[k]);
  return buf;
}

}  // namespace wafer
