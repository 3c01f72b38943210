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

// tree16 of 16 registers at once, lane i of the result = tree16(v[i]): the same additions, in
// the same pairs, done across registers by shuffles (46 instructions where 16 trees take 128).
// (The zero-masked shuffles keep GCC 12 from warning of an undefined source, as load16 below.)
[[gnu::target("avx512f,avx512dq"), gnu::always_inline]] inline __m512 tree16_x16(const __m512 (&v)[16]) {
  constexpr __mmask16 all = 0xffff;
  __m512 t[8], u[4], w[2];
#pragma GCC unroll 8
  for (int m = 0; m < 8; ++m)  // lanes (l, l + 8): t[m] = [v[2m] l < 8 | v[2m+1] l < 8]
    t[m] = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(all, v[2 * m], v[2 * m + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_maskz_shuffle_f32x4(all, v[2 * m], v[2 * m + 1], _MM_SHUFFLE(3, 2, 3, 2)));
#pragma GCC unroll 4
  for (int p = 0; p < 4; ++p)  // (l, l + 4): u[p]'s block j holds register 4p + j's four sums
    u[p] = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(all, t[2 * p], t[2 * p + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_maskz_shuffle_f32x4(all, t[2 * p], t[2 * p + 1], _MM_SHUFFLE(3, 1, 3, 1)));
#pragma GCC unroll 2
  for (int q = 0; q < 2; ++q)  // (l, l + 2): block j = [v[8q + j] 0, 1, v[8q + 4 + j] 0, 1]
    w[q] = _mm512_add_ps(_mm512_maskz_shuffle_ps(all, u[2 * q], u[2 * q + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_maskz_shuffle_ps(all, u[2 * q], u[2 * q + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  // (l, l + 1): block j = [v[j], v[4 + j], v[8 + j], v[12 + j]]
  const __m512 z = _mm512_add_ps(_mm512_maskz_shuffle_ps(all, w[0], w[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_maskz_shuffle_ps(all, w[0], w[1], _MM_SHUFFLE(3, 1, 3, 1)));
  // Back to lane i = v[i]: block j lane m is v[j + 4m].
  const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  return _mm512_maskz_permutexvar_ps(all, order, z);
}

// out[r·ld + k] = scale · tree16(acc[r][k]) for a 4 × 4 tile of lane sums, the trees at once.
[[gnu::target("avx512f,avx512dq"), gnu::always_inline]] inline void store_tree16_4x4(float* out, int64_t ld,
                                                                                    const __m512 (&acc)[4][4],
                                                                                    float scale) {
  // Lane 4r + k of the sums is acc[r][k]'s; each masked store writes row r's four.
  const __m512 sums = _mm512_mul_ps(_mm512_set1_ps(scale), tree16_x16(reinterpret_cast<const __m512(&)[16]>(acc)));
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r) _mm512_mask_storeu_ps(out + r * ld - 4 * r, __mmask16(0xfu << (4 * r)), sums);
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
