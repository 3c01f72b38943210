// kernels/cpu/embedding.cpp: gathers rows; rows in parallel forward, columns in parallel backward.
#include "kernels/cpu/embedding.h"

#include <algorithm>

#include "core/dtype.h"
#include "kernels/cpu/cpu_isa.h"

namespace wafer {

namespace {

template <typename W>
WAFER_KERNEL void embedding_rows(float* out, const int32_t* tokens, const W* wte, int64_t v0, int64_t Vl, int64_t N, int64_t C,
                    float scale) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const int64_t row = int64_t(tokens[n]) - v0;
    float* o = out + n * C;
    if (row < 0 || row >= Vl) {
      std::fill(o, o + C, 0.0f);
      continue;
    }
    const W* te = wte + row * C;
    for (int64_t i = 0; i < C; ++i) o[i] = weight_to_f32(te[i]) * scale;
  }
}
}  // namespace

void embedding_forward(float* out, const int32_t* tokens, const float* wte, int64_t v0, int64_t Vl, int64_t N,
                       int64_t C, float scale) {
  embedding_rows(out, tokens, wte, v0, Vl, N, C, scale);
}

void embedding_forward(float* out, const int32_t* tokens, const uint16_t* wte, int64_t v0, int64_t Vl, int64_t N,
                       int64_t C, float scale) {
  embedding_rows(out, tokens, wte, v0, Vl, N, C, scale);
}

WAFER_KERNEL void position_embedding_forward(float* out, const int32_t* positions, const float* wpe, int64_t N, int64_t C,
                                float scale) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* pe = wpe + int64_t(positions[n]) * C;
    float* o = out + n * C;
    for (int64_t i = 0; i < C; ++i) o[i] += pe[i] * scale;
  }
}

WAFER_KERNEL void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int64_t v0, int64_t Vl, int64_t N,
                        int64_t C, float scale) {
  const int64_t chunk = 64;
#pragma omp parallel for schedule(static)
  for (int64_t c0 = 0; c0 < C; c0 += chunk) {
    const int64_t c1 = std::min(C, c0 + chunk);
    for (int64_t n = 0; n < N; ++n) {
      const int64_t row = int64_t(tokens[n]) - v0;
      if (row < 0 || row >= Vl) continue;
      const float* d = dout + n * C;
      float* te = dwte + row * C;
      for (int64_t i = c0; i < c1; ++i) te[i] += scale * d[i];
    }
  }
}

WAFER_KERNEL void position_embedding_backward(float* dwpe, const float* dout, const int32_t* positions, int64_t N, int64_t C,
                                 float scale) {
  const int64_t chunk = 64;
#pragma omp parallel for schedule(static)
  for (int64_t c0 = 0; c0 < C; c0 += chunk) {
    const int64_t c1 = std::min(C, c0 + chunk);
    for (int64_t n = 0; n < N; ++n) {
      const float* d = dout + n * C;
      float* pe = dwpe + int64_t(positions[n]) * C;
      for (int64_t i = c0; i < c1; ++i) pe[i] += scale * d[i];
    }
  }
}

WAFER_KERNEL void residual_forward(float* out, const float* a, const float* b, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

WAFER_KERNEL void residual_bias_forward(float* out, const float* a, const float* b, const float* bias, int64_t N, int64_t C) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n)
#pragma omp simd
    for (int64_t i = 0; i < C; ++i) out[n * C + i] = a[n * C + i] + b[n * C + i] + bias[i];
}

}  // namespace wafer
