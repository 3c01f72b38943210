// kernels/cpu/bandwidth.h: the streaming-read probe behind `wafer bench --ceilings`' memory
// bandwidth (and so the planner's `this` machine): every byte of a buffer read once.
#pragma once
#include <cstdint>

namespace wafer {

// Σ p[0, n) over all threads, n a multiple of 1024, at the memory's pace (16 independent lanes
// per thread, so the adds never wait on each other).
float sum_all(const float* p, int64_t n);

}  // namespace wafer
