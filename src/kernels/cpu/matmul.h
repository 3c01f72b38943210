// kernels/cpu/matmul.h: dense layers on the GEMM of kernels/cpu/gemm.h (fp32 or bf16) and, for
// one row (decoding), the matrix-vector kernels of gemv.h. Weights in HF Conv1D layout [in, out],
// so out = inp · w + b needs no transpose; the LM head multiplies by wteᵀ.
#pragma once
#include <cstdint>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/quant_matmul.h"

namespace wafer {

// A weight matrix as a layer reads it: fp32 values and, under bf16 precision, a bf16 copy. With
// the copy, every GEMM of the layer (forward and both backward products) runs in bf16 with fp32
// accumulation into fp32 outputs and gradients; without it, in fp32. A bf16-only model (inference
// with its fp32 matrices released) never reads `f32`.
// With `quant` (inference with --precision q8_0|q4_0|q4_k) the forward products read the
// quantized rows alone (kernels/cpu/quant_matmul: W[OC, C], the transpose of [C, OC]); there is
// no backward on them.
struct WeightView {
  const float* f32 = nullptr;
  const uint16_t* bf16 = nullptr;
  const QuantMatrix* quant = nullptr;
  // Serving only: the weights rearranged for rows_matmul (rows_matmul.h), which alone reads them;
  // f32 and bf16 are then null.
  const float* f32_panels = nullptr;
  const uint16_t* bf16_panels = nullptr;
  WeightView(const float* w) : f32(w) {}  // NOLINT: an fp32 matrix is a view without a copy
  WeightView(const float* w, const uint16_t* w16) : f32(w), bf16(w16) {}
  WeightView(const float* w, const uint16_t* w16, const QuantMatrix* q) : f32(w), bf16(w16), quant(q) {}
  static WeightView panels(const float* p) {
    WeightView v(nullptr);
    v.f32_panels = p;
    return v;
  }
  static WeightView panels(const uint16_t* p) {
    WeightView v(nullptr);
    v.bf16_panels = p;
    return v;
  }
  Precision precision() const { return bf16 || bf16_panels ? Precision::BF16 : Precision::F32; }
};

// out[N, OC] = inp[N, C] · w[C, OC] + bias[OC] (bias may be null).
void matmul_forward(float* out, const float* inp, WeightView w, const float* bias, int64_t N, int64_t C, int64_t OC);
// out[N, V] = scale · inp[N, C] · wᵀ, w[V, C] (the tied or untied LM head).
void matmul_forward_transposed(float* out, const float* inp, WeightView w, int64_t N, int64_t C, int64_t V,
                               float scale);
// Backward of matmul_forward, accumulating (+=): dinp[N, C] += dout · wᵀ, dw[C, OC] += inpᵀ · dout,
// dbias[OC] += Σ_n dout. dinp or dbias may be null when not needed.
void matmul_backward(float* dinp, float* dw, float* dbias, const float* dout, const float* inp, WeightView w,
                     int64_t N, int64_t C, int64_t OC);
// dbias[OC] += Σ_n dout[n, OC] (a bias added apart from its matmul).
void bias_backward(float* dbias, const float* dout, int64_t N, int64_t OC);
// Backward of matmul_forward_transposed (+=): dinp[N, C] += scale · dout · w, dw[V, C] += scale · doutᵀ · inp.
void matmul_transposed_backward(float* dinp, float* dw, const float* dout, const float* inp, WeightView w, int64_t N,
                                int64_t C, int64_t V, float scale);
// Reference loops for tests: out[N, OC] = inp · w + bias.
void matmul_forward_naive(float* out, const float* inp, const float* w, const float* bias, int64_t N, int64_t C,
                          int64_t OC);

}  // namespace wafer
