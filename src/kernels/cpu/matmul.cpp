// kernels/cpu/matmul.cpp: each dense layer as GEMM calls in the weight's precision; a single row
// goes to the streaming matrix-vector kernels instead (a GEMM would pack the weight first).
#include "kernels/cpu/matmul.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/gemv.h"
#include "kernels/cpu/cpu_isa.h"

namespace wafer {

namespace {
// An activation operand: fp32 only (the bf16 path rounds it into scratch).
GemmOperand act(const float* x, int64_t ld, bool trans = false) { return {x, nullptr, ld, trans}; }
GemmOperand weight(WeightView w, int64_t ld, bool trans = false) { return {w.f32, w.bf16, ld, trans}; }
// The serving panels (rows_matmul.h) have neither an fp32 nor a plain bf16 matrix to read.
void check_not_panels(WeightView w) {
  WAFER_CHECK(!w.bf16_panels && !w.f32_panels,
              "[matmul] this weight is held in rows_matmul's serving panels, which only rows_matmul reads");
}
}  // namespace

void matmul_forward(float* out, const float* inp, WeightView w, const float* bias, int64_t N, int64_t C, int64_t OC) {
  check_not_panels(w);
  if (w.quant) {
    WAFER_CHECK(w.quant->rows == OC && w.quant->cols == C, "[matmul] quantized weight is [", w.quant->rows, ", ",
                w.quant->cols, "], expected [", OC, ", ", C, "]");
    quant_matmul(out, inp, *w.quant, bias, N, 1.0f);
    return;
  }
  if (N == 1) {
    gemv_forward(out, inp, w.f32, w.bf16, bias, C, OC);
    return;
  }
  float beta = 0.0f;
  if (bias) {
    for (int64_t n = 0; n < N; ++n) std::memcpy(out + n * OC, bias, size_t(OC) * sizeof(float));
    beta = 1.0f;
  }
  gemm(w.precision(), N, OC, C, 1.0f, act(inp, C), weight(w, OC), beta, out, OC);
}

void matmul_forward_transposed(float* out, const float* inp, WeightView w, int64_t N, int64_t C, int64_t V,
                               float scale) {
  check_not_panels(w);
  if (w.quant) {
    WAFER_CHECK(w.quant->rows == V && w.quant->cols == C, "[matmul] quantized head is [", w.quant->rows, ", ",
                w.quant->cols, "], expected [", V, ", ", C, "]");
    quant_matmul(out, inp, *w.quant, nullptr, N, scale);
    return;
  }
  if (N == 1) {
    gemv_transposed(out, inp, w.f32, w.bf16, C, V, scale);
    return;
  }
  gemm(w.precision(), N, V, C, scale, act(inp, C), weight(w, C, true), 0.0f, out, V);
}

void matmul_backward(float* dinp, float* dw, float* dbias, const float* dout, const float* inp, WeightView w,
                     int64_t N, int64_t C, int64_t OC) {
  check_not_panels(w);
  if (dinp) gemm(w.precision(), N, C, OC, 1.0f, act(dout, OC), weight(w, OC, true), 1.0f, dinp, C);
  gemm(w.precision(), C, OC, N, 1.0f, act(inp, C, true), act(dout, OC), 1.0f, dw, OC);
  if (dbias) bias_backward(dbias, dout, N, OC);
}

WAFER_KERNEL void bias_backward(float* dbias, const float* dout, int64_t N, int64_t OC) {
  // Each thread owns a strip of columns and walks the rows, so every load is a contiguous run
  // and the strip's sums stay in L1; no two threads share an output.
#pragma omp parallel
  {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t per = ((OC + nt - 1) / nt + 15) / 16 * 16;
    const int64_t o0 = std::min(OC, per * t), o1 = std::min(OC, o0 + per);
    for (int64_t n = 0; n < N; ++n) {
      const float* row = dout + n * OC;
#pragma omp simd
      for (int64_t o = o0; o < o1; ++o) dbias[o] += row[o];
    }
  }
}

void matmul_transposed_backward(float* dinp, float* dw, const float* dout, const float* inp, WeightView w, int64_t N,
                                int64_t C, int64_t V, float scale) {
  check_not_panels(w);
  gemm(w.precision(), N, C, V, scale, act(dout, V), weight(w, C), 1.0f, dinp, C);
  gemm(w.precision(), V, C, N, scale, act(dout, V, true), act(inp, C), 1.0f, dw, C);
}

void matmul_forward_naive(float* out, const float* inp, const float* w, const float* bias, int64_t N, int64_t C,
                          int64_t OC) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < OC; ++o) {
      double acc = bias ? bias[o] : 0.0;
      for (int64_t c = 0; c < C; ++c) acc += double(inp[n * C + c]) * double(w[c * OC + o]);
      out[n * OC + o] = float(acc);
    }
}

}  // namespace wafer
