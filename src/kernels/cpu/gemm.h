// kernels/cpu/gemm.h: the one GEMM every dense layer goes through, in fp32 (OpenBLAS sgemm) or
// in bf16 (oneDNN matmul on AVX512-BF16 or AMX: bf16 operands, fp32 accumulation and output).
// Both libraries run on libgomp's thread pool, the same one as our own kernels.
#pragma once
#include <cstdint>
#include <string>

namespace wafer {

enum class Precision { F32, BF16 };

// "fp32" or "bf16"; throws naming the value otherwise.
Precision parse_precision(const std::string& s);
const char* precision_name(Precision p);

// True when bf16 GEMMs run on bf16 hardware here (AVX512-BF16 or AMX, as oneDNN sees it, so
// ONEDNN_MAX_CPU_ISA can turn it off). Without it, bf16 would be emulated slower than fp32.
bool bf16_gemm_supported();
// The instruction set oneDNN dispatches to, e.g. "avx512_core_bf16".
std::string gemm_isa_name();
// `wanted`, or F32 with one warning on stderr when bf16 is wanted but bf16_gemm_supported() is false.
Precision usable_precision(Precision wanted);

// One operand of a GEMM, row-major with leading dimension ld, transposed when `trans`: fp32
// values and, where the caller keeps one (weights), a bf16 copy of the same values so the bf16
// path does not convert them on every call. Either pointer may be null when unused.
struct GemmOperand {
  const float* f32 = nullptr;
  const uint16_t* bf16 = nullptr;
  int64_t ld = 0;
  bool trans = false;
};

// C[M, N] = alpha · op(A)[M, K] · op(B)[K, N] + beta · C (ldc: C's leading dimension).
// Under BF16 an operand without a bf16 copy is rounded to bf16 into scratch first.
void gemm(Precision p, int64_t M, int64_t N, int64_t K, float alpha, const GemmOperand& A, const GemmOperand& B,
          float beta, float* C, int64_t ldc);

// dst[n] = bf16(src[n]), round to nearest even (parallel, vectorised).
void convert_to_bf16(uint16_t* dst, const float* src, int64_t n);

}  // namespace wafer
