// kernels/cpu/embedding.cpp: gathers rows; rows in parallel forward, columns in parallel backward.
#include "kernels/cpu/embedding.h"

#include <algorithm>

#include "core/dtype.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/quant.h"

namespace wafer {

namespace {

// out[n] = scale · (table row tokens[n] - v0), read by row(o, r) into o[C], or 0 outside [0, Vl).
template <typename ReadRow>
void gather_rows(float* out, const int32_t* tokens, int64_t v0, int64_t Vl, int64_t N, int64_t C, float scale,
                 const ReadRow& row) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const int64_t r = int64_t(tokens[n]) - v0;
    float* o = out + n * C;
    if (r < 0 || r >= Vl) {
      std::fill(o, o + C, 0.0f);
      continue;
    }
    row(o, r);
    for (int64_t i = 0; i < C; ++i) o[i] *= scale;
  }
}

template <typename W>
void embedding_rows(float* out, const int32_t* tokens, const W* wte, int64_t v0, int64_t Vl, int64_t N, int64_t C,
                    float scale) {
  gather_rows(out, tokens, v0, Vl, N, C, scale, [&](float* o, int64_t r) {
    const W* te = wte + r * C;
    for (int64_t i = 0; i < C; ++i) o[i] = weight_to_f32(te[i]);
  });
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

void embedding_forward(float* out, const int32_t* tokens, const QuantMatrix& wte, int64_t v0, int64_t Vl, int64_t N,
                       int64_t C, float scale) {
  const size_t row_bytes = size_t(quant_row_bytes(wte.type, C));
  gather_rows(out, tokens, v0, Vl, N, C, scale, [&](float* o, int64_t r) {
    const uint8_t* q = wte.data + size_t(r) * row_bytes;
    switch (wte.type) {
      case QuantType::Q8_0: dequantize_q8_0(o, reinterpret_cast<const BlockQ8_0*>(q), C); break;
      case QuantType::Q4_0: dequantize_q4_0(o, reinterpret_cast<const BlockQ4_0*>(q), C); break;
      case QuantType::Q4_K: dequantize_q4_k(o, reinterpret_cast<const BlockQ4_K*>(q), C); break;
      case QuantType::Q6_K: dequantize_q6_k(o, reinterpret_cast<const BlockQ6_K*>(q), C); break;
    }
  });
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
