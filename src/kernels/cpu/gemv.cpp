// kernels/cpu/gemv.cpp: decode is bound by reading the weights, so each thread streams one
// contiguous block of the matrix:
//   W[C, OC]: thread t takes rows [r0, r1) and accumulates x[r]·W[r, :] into its own partial
//             y (OC floats, in L1/L2), four rows per pass; the partials are summed at the end.
//   W[V, C]:  thread t takes rows [v0, v1); each is a dot product with x (x stays in L1).
// bf16 weights widen to fp32 by a 16-bit shift. The per-thread loops exist for AVX-512
// (intrinsics), AVX2+FMA and the baseline (the same portable loop compiled for each), picked by
// kernel_isa() at run time.
#include "kernels/cpu/gemv.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/cpu_isa.h"

namespace wafer {

namespace {

// ---- portable loops (compiled for AVX2+FMA and for the baseline) ----

inline float widen(float v) { return v; }
inline float widen(uint16_t v) { return bf16_to_f32(v); }

// acc[0, n) += Σ_r x[r] · w[r·ld + j] over `rows` rows.
template <typename W>
[[gnu::always_inline]] inline void accumulate_rows_portable(float* acc, const float* x, const W* w, int64_t ld,
                                                            int64_t rows, int64_t n) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const W *w0 = w + r * ld, *w1 = w0 + ld, *w2 = w1 + ld, *w3 = w2 + ld;
    const float x0 = x[r], x1 = x[r + 1], x2 = x[r + 2], x3 = x[r + 3];
#pragma omp simd
    for (int64_t j = 0; j < n; ++j)
      acc[j] += x0 * widen(w0[j]) + x1 * widen(w1[j]) + x2 * widen(w2[j]) + x3 * widen(w3[j]);
  }
  for (; r < rows; ++r) {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) acc[j] += x[r] * widen(w[r * ld + j]);
  }
}

// y[v] = scale · Σ_c w[v·C + c] · x[c] for v in [v0, v1).
template <typename W>
[[gnu::always_inline]] inline void dot_rows_portable(float* y, const float* x, const W* w, int64_t C, int64_t v0,
                                                     int64_t v1, float scale) {
  for (int64_t v = v0; v < v1; ++v) {
    const W* wr = w + v * C;
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < C; ++c) s += widen(wr[c]) * x[c];
    y[v] = scale * s;
  }
}

template <typename W>
[[gnu::target("avx2,fma")]] void accumulate_rows_avx2(float* acc, const float* x, const W* w, int64_t ld, int64_t rows,
                                                      int64_t n) {
  accumulate_rows_portable(acc, x, w, ld, rows, n);
}
template <typename W>
void accumulate_rows_generic(float* acc, const float* x, const W* w, int64_t ld, int64_t rows, int64_t n) {
  accumulate_rows_portable(acc, x, w, ld, rows, n);
}
template <typename W>
[[gnu::target("avx2,fma")]] void dot_rows_avx2(float* y, const float* x, const W* w, int64_t C, int64_t v0, int64_t v1,
                                               float scale) {
  dot_rows_portable(y, x, w, C, v0, v1, scale);
}
template <typename W>
void dot_rows_generic(float* y, const float* x, const W* w, int64_t C, int64_t v0, int64_t v1, float scale) {
  dot_rows_portable(y, x, w, C, v0, v1, scale);
}

// ---- AVX-512 ----

#define WAFER_AVX512 gnu::target("avx512f,avx512bw,avx512vl,avx512dq,fma")

[[WAFER_AVX512]] inline __m512 load16(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
[[WAFER_AVX512]] inline __m512 load16(const uint16_t* p, __mmask16 m) {
  const __m256i h = _mm256_maskz_loadu_epi16(m, p);
  // The maskz forms: GCC 12 warns that the unmasked ones read an uninitialised register.
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xffff, _mm512_maskz_cvtepu16_epi32(0xffff, h), 16));
}
// Σ of v's 16 lanes (_mm512_reduce_add_ps trips GCC 12's uninitialised-register warning).
[[WAFER_AVX512]] inline float hsum(__m512 v) {
  const __m256 s8 = _mm256_add_ps(_mm512_maskz_extractf32x8_ps(0xff, v, 0), _mm512_maskz_extractf32x8_ps(0xff, v, 1));
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s4, _mm_movehdup_ps(s4)));
}
inline __mmask16 tail_mask(int64_t left) { return left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1); }

template <typename W>
[[WAFER_AVX512]] void accumulate_rows_avx512(float* acc, const float* x, const W* w, int64_t ld, int64_t rows,
                                             int64_t n) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const W *w0 = w + r * ld, *w1 = w0 + ld, *w2 = w1 + ld, *w3 = w2 + ld;
    const __m512 x0 = _mm512_set1_ps(x[r]), x1 = _mm512_set1_ps(x[r + 1]), x2 = _mm512_set1_ps(x[r + 2]),
                 x3 = _mm512_set1_ps(x[r + 3]);
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 m = tail_mask(n - j);
      if (r + 8 <= rows)  // the next four rows at the same columns
        for (const W* p : {w0, w1, w2, w3}) _mm_prefetch(reinterpret_cast<const char*>(p + 4 * ld + j), _MM_HINT_T0);
      __m512 a = _mm512_maskz_loadu_ps(m, acc + j);
      a = _mm512_fmadd_ps(x0, load16(w0 + j, m), a);
      a = _mm512_fmadd_ps(x1, load16(w1 + j, m), a);
      a = _mm512_fmadd_ps(x2, load16(w2 + j, m), a);
      a = _mm512_fmadd_ps(x3, load16(w3 + j, m), a);
      _mm512_mask_storeu_ps(acc + j, m, a);
    }
  }
  for (; r < rows; ++r) {
    const __m512 xr = _mm512_set1_ps(x[r]);
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 m = tail_mask(n - j);
      _mm512_mask_storeu_ps(acc + j, m, _mm512_fmadd_ps(xr, load16(w + r * ld + j, m), _mm512_maskz_loadu_ps(m, acc + j)));
    }
  }
}

template <typename W>
[[WAFER_AVX512]] void dot_rows_avx512(float* y, const float* x, const W* w, int64_t C, int64_t v0, int64_t v1,
                                      float scale) {
  int64_t v = v0;
  for (; v + 4 <= v1; v += 4) {  // four rows share each load of x
    const W *w0 = w + v * C, *w1 = w0 + C, *w2 = w1 + C, *w3 = w2 + C;
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int64_t c = 0; c < C; c += 16) {
      const __mmask16 m = tail_mask(C - c);
      // The next group's four rows at the same columns: the stream stays one group ahead.
      for (const W* p : {w0, w1, w2, w3}) _mm_prefetch(reinterpret_cast<const char*>(p + 4 * C + c), _MM_HINT_T0);
      const __m512 xc = _mm512_maskz_loadu_ps(m, x + c);
      s0 = _mm512_fmadd_ps(load16(w0 + c, m), xc, s0);
      s1 = _mm512_fmadd_ps(load16(w1 + c, m), xc, s1);
      s2 = _mm512_fmadd_ps(load16(w2 + c, m), xc, s2);
      s3 = _mm512_fmadd_ps(load16(w3 + c, m), xc, s3);
    }
    y[v] = scale * hsum(s0), y[v + 1] = scale * hsum(s1);
    y[v + 2] = scale * hsum(s2), y[v + 3] = scale * hsum(s3);
  }
  for (; v < v1; ++v) {
    __m512 s = _mm512_setzero_ps();
    for (int64_t c = 0; c < C; c += 16) {
      const __mmask16 m = tail_mask(C - c);
      s = _mm512_fmadd_ps(load16(w + v * C + c, m), _mm512_maskz_loadu_ps(m, x + c), s);
    }
    y[v] = scale * hsum(s);
  }
}

// ---- threading ----

template <typename W>
void gemv_forward_impl(float* y, const float* x, const W* w, const float* bias, int64_t C, int64_t OC) {
  const Isa isa = kernel_isa();
  const auto accumulate = isa == Isa::Avx512 ? accumulate_rows_avx512<W>
                          : isa == Isa::Avx2 ? accumulate_rows_avx2<W>
                                             : accumulate_rows_generic<W>;
  const int nt = std::max(1, std::min(omp_get_max_threads(), int(C / 64)));  // small matrices: fewer threads
  thread_local std::vector<float> scratch;  // the calling thread's; workers write through `partial`
  scratch.assign(size_t(nt) * size_t(OC), 0.0f);
  float* partial = scratch.data();  // [nt, OC]
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
    const int64_t r0 = C * t / n, r1 = C * (t + 1) / n;
    accumulate(partial + int64_t(t) * OC, x + r0, w + r0 * OC, OC, r1 - r0, OC);
  }
  for (int64_t o = 0; o < OC; ++o) {
    float s = bias ? bias[o] : 0.0f;
    for (int t = 0; t < nt; ++t) s += partial[int64_t(t) * OC + o];
    y[o] = s;
  }
}

template <typename W>
void gemv_transposed_impl(float* y, const float* x, const W* w, int64_t C, int64_t V, float scale) {
  const Isa isa = kernel_isa();
  const auto dot = isa == Isa::Avx512 ? dot_rows_avx512<W> : isa == Isa::Avx2 ? dot_rows_avx2<W> : dot_rows_generic<W>;
#pragma omp parallel
  {
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
    dot(y, x, w, C, V * t / n, V * (t + 1) / n, scale);
  }
}

}  // namespace

void gemv_forward(float* y, const float* x, const float* w, const uint16_t* w16, const float* bias, int64_t C,
                  int64_t OC) {
  if (w16)
    gemv_forward_impl(y, x, w16, bias, C, OC);
  else
    gemv_forward_impl(y, x, w, bias, C, OC);
}

void gemv_transposed(float* y, const float* x, const float* w, const uint16_t* w16, int64_t C, int64_t V,
                     float scale) {
  if (w16)
    gemv_transposed_impl(y, x, w16, C, V, scale);
  else
    gemv_transposed_impl(y, x, w, C, V, scale);
}

}  // namespace wafer
