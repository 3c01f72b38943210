// kernels/cpu/gelu.cpp: elementwise, in parallel chunks.
#include "kernels/cpu/gelu.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/cpu_isa.h"

namespace wafer {

namespace {
inline float gelu_erf(float x) { return 0.5f * x * (1.0f + fast_erf(x * 0.70710678118654752f)); }
inline float gelu_tanh(float x) {
  const float k = 0.79788456080286536f;  // sqrt(2/pi)
  return 0.5f * x * (1.0f + fast_tanh(k * (x + 0.044715f * x * x * x)));
}

// Serving rows of F cut into blocks of 512 columns, the blocks of all rows shared among the
// threads of one parallel region (a region per row cost 16 forks a layer at 16 serving rows).
constexpr int64_t kRowBlock = 512;
}  // namespace

WAFER_KERNEL void gelu_erf_span(float* out, const float* inp, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gelu_erf(inp[i]);
}

WAFER_KERNEL void gelu_tanh_span(float* out, const float* inp, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gelu_tanh(inp[i]);
}

// Thread t of nt takes [n·t/nt, n·(t+1)/nt) through the span loop that model/decode_step.cpp
// runs on its chunks of c_fc's rows (multiples of 16, as these spans are for the model's widths),
// so both paths put each element through the same vector code.
void gelu_erf_forward(float* out, const float* inp, int64_t n) {
#pragma omp parallel
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads(), i0 = n * t / nt, i1 = n * (t + 1) / nt;
    gelu_erf_span(out + i0, inp + i0, i1 - i0);
  }
}

void gelu_tanh_forward(float* out, const float* inp, int64_t n) {
#pragma omp parallel
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads(), i0 = n * t / nt, i1 = n * (t + 1) / nt;
    gelu_tanh_span(out + i0, inp + i0, i1 - i0);
  }
}

// Both forms in one function, the choice made outside the inner loop: an OpenMP body is cloned
// for each ISA only within its WAFER_KERNEL function (a shared template's would run the
// baseline).
namespace {
WAFER_KERNEL void gelu_rows(float* out, const float* inp, int64_t N, int64_t F, bool tanh_form) {
  const int64_t blocks = (F + kRowBlock - 1) / kRowBlock;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < N * blocks; ++b) {
    const int64_t row = b / blocks * F, j0 = row + b % blocks * kRowBlock, j1 = std::min(row + F, j0 + kRowBlock);
    if (tanh_form)
      for (int64_t j = j0; j < j1; ++j) out[j] = gelu_tanh(inp[j]);
    else
      for (int64_t j = j0; j < j1; ++j) out[j] = gelu_erf(inp[j]);
  }
}
}  // namespace

void gelu_erf_rows_forward(float* out, const float* inp, int64_t N, int64_t F) { gelu_rows(out, inp, N, F, false); }
void gelu_tanh_rows_forward(float* out, const float* inp, int64_t N, int64_t F) { gelu_rows(out, inp, N, F, true); }

// d/dx [x·Φ(x)] = Φ(x) + x·φ(x)
WAFER_KERNEL void gelu_erf_backward(float* dinp, const float* inp, const float* dout, int64_t n) {
  const float inv_sqrt2 = 0.70710678118654752f, inv_sqrt_2pi = 0.39894228040143268f;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float x = inp[i];
    const float cdf = 0.5f * (1.0f + fast_erf(x * inv_sqrt2));
    const float pdf = inv_sqrt_2pi * fast_exp(-0.5f * x * x);
    dinp[i] += dout[i] * (cdf + x * pdf);
  }
}

// With u = k(x + 0.044715x³), t = tanh u: d/dx = 0.5(1 + t) + 0.5x(1 - t²)·k(1 + 3·0.044715x²)
WAFER_KERNEL void gelu_tanh_backward(float* dinp, const float* inp, const float* dout, int64_t n) {
  const float k = 0.79788456080286536f;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float x = inp[i];
    const float t = fast_tanh(k * (x + 0.044715f * x * x * x));
    const float d = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * k * (1.0f + 3.0f * 0.044715f * x * x);
    dinp[i] += dout[i] * d;
  }
}

}  // namespace wafer
