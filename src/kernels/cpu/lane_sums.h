// kernels/cpu/lane_sums.h: what the batch-invariant serving kernels (rows_matmul, attention_rows)
// share, so that "16 lane sums, then a fixed tree" means the same operations in both: the masks
// of a row's tail, and the tree (l, l+8), (l, l+4), (l, l+2), (l, l+1) over an array of lanes
// (the portable paths) or one AVX-512 register, and the masked load of 16 fp32 or bf16 elements
// as fp32 (which the decode gemv uses too).
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace wafer {

// The first `left` of 16 (or 32) lanes: none for left <= 0, all for left >= 16 (32).
inline __mmask16 lane_mask(int64_t left) {
  return left <= 0 ? __mmask16(0) : left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
}
inline __mmask32 lane_mask32(int64_t left) {
  return left <= 0 ? __mmask32(0) : left >= 32 ? __mmask32(0xffffffffu) : __mmask32((1u << left) - 1);
}

// Σ s[0, 16) by the fixed tree (the array is overwritten).
inline float tree16(float* s) {
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) s[l] += s[l + w];
  return s[0];
}

// The same tree over the 16 lanes of a register.
[[gnu::target("avx512f,avx512dq")]] inline float tree16(__m512 v) {
  const __m256 s8 = _mm256_add_ps(_mm512_maskz_extractf32x8_ps(0xff, v, 0), _mm512_maskz_extractf32x8_ps(0xff, v, 1));
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s4, _mm_movehdup_ps(s4)));
}

// 16 elements as fp32, the lanes outside m zero: fp32 as they are, bf16 widened exactly. (The
// zero-masked forms of the widening keep GCC 12 from warning of an uninitialised source.)
[[gnu::target("avx512f,avx512bw,avx512vl")]] inline __m512 load16(const float* p, __mmask16 m) {
  return _mm512_maskz_loadu_ps(m, p);
}
[[gnu::target("avx512f,avx512bw,avx512vl")]] inline __m512 load16(const uint16_t* p, __mmask16 m) {
  const __m256i h = _mm256_maskz_loadu_epi16(m, p);
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xffff, _mm512_maskz_cvtepu16_epi32(0xffff, h), 16));
}

}  // namespace wafer
