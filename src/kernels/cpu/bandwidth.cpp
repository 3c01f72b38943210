// kernels/cpu/bandwidth.cpp
#include "kernels/cpu/bandwidth.h"

#include "kernels/cpu/cpu_isa.h"

namespace wafer {

WAFER_KERNEL float sum_all(const float* p, int64_t n) {
  float total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
  for (int64_t block = 0; block < n; block += 1024) {
    float lanes[16] = {0};
    for (int64_t i = block; i < block + 1024; i += 16)
#pragma omp simd
      for (int l = 0; l < 16; ++l) lanes[l] += p[i + l];
    float part = 0;
    for (float v : lanes) part += v;
    total += part;
  }
  return total;
}

}  // namespace wafer
