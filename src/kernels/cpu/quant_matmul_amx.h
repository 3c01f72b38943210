// kernels/cpu/quant_matmul_amx.h: quant_matmul's AMX int8 path (q8_0 weights, many rows), the
// same bits as its other paths. Not a public header: see quant_matmul.h.
#pragma once
#include <cstdint>

namespace wafer::quant_amx {

// Activation rows quantized for q8_0 weights (quant_matmul.cpp's ActRows): q [N16, q_stride]
// int8 in natural order, zero rows after row N up to N16 = N rounded up to 16, 64-byte aligned
// rows; d [N, d_stride] fp32 scales per block of 32.
struct Activations {
  const int8_t* q = nullptr;
  int64_t q_stride = 0;
  const float* d = nullptr;
  int64_t d_stride = 0;
};

// Where amx_int8() (cpu_isa.h): out[N, rows] = scale · (x · Wᵀ) + bias (bias may be null), W[rows]
// q8_0 rows of nb blocks.
void q8_0_matmul(float* out, const uint8_t* w, int64_t rows, int64_t nb, const Activations& a, int64_t N,
                 const float* bias, float scale);

}  // namespace wafer::quant_amx
