// kernels/cpu/gemv.cpp: decode is bound by reading the weights, so each thread streams one
// contiguous block of the matrix strictly in order (measured: 1.3-2× the bandwidth of walking
// four rows side by side, prefetched or not):
//   W[C, OC]: thread t takes rows [r0, r1) and adds x[r]·W[r, :] into its own partial y (OC
//             floats, in L1/L2), eight rows per pass over y; the partials are summed at the end.
//   W[V, C]:  thread t takes rows [v0, v1); each is one dot product with x (x stays in L1).
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
#include "kernels/cpu/lane_sums.h"  // load16

namespace wafer {

namespace {

// ---- portable loops (compiled for AVX2+FMA and for the baseline) ----


// acc[0, n) += Σ_r x[r] · w[r·ld + j] over `rows` rows, each acc[j] taking the rows in order.
// Eight rows per pass over acc, so acc is loaded and stored once per eight rows of weights (one
// row per pass spent more of the L1's bandwidth on acc than on the weights); the bits are those
// of one row per pass.
template <typename W>
[[gnu::always_inline]] inline void accumulate_rows_portable(float* acc, const float* x, const W* w, int64_t ld,
                                                            int64_t rows, int64_t n) {
  int64_t r = 0;
  for (; r + 8 <= rows; r += 8) {
    const W* w0 = w + r * ld;
    const float* xr = x + r;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      float a = acc[j];
      for (int k = 0; k < 8; ++k) a += xr[k] * weight_to_f32(w0[k * ld + j]);
      acc[j] = a;
    }
  }
  for (; r < rows; ++r) {
    const W* wr = w + r * ld;
    const float xr = x[r];
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) acc[j] += xr * weight_to_f32(wr[j]);
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
    for (int64_t c = 0; c < C; ++c) s += weight_to_f32(wr[c]) * x[c];
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

// Σ of v's 16 lanes (_mm512_reduce_add_ps trips GCC 12's uninitialised-register warning).
[[WAFER_AVX512]] inline float hsum(__m512 v) {
  const __m256 s8 = _mm256_add_ps(_mm512_maskz_extractf32x8_ps(0xff, v, 0), _mm512_maskz_extractf32x8_ps(0xff, v, 1));
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s4, _mm_movehdup_ps(s4)));
}
inline __mmask16 tail_mask(int64_t left) { return left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1); }

// Eight rows per pass over acc, as the portable loop: each acc[j] still takes its rows' FMAs in
// row order (the bits of one row per pass) but is loaded and stored once per eight rows. One row
// per pass spent more of the L1's bandwidth on acc than on the weights (bf16: 4 bytes of acc
// loaded and stored per 2-byte weight). Measured on an AMD EPYC Zen 5, 111M decode, three
// alternating rounds: bf16 106-129 tokens/s one row per pass, 119-144 four, 132-179 eight.
template <typename W>
[[WAFER_AVX512]] void accumulate_rows_avx512(float* acc, const float* x, const W* w, int64_t ld, int64_t rows,
                                             int64_t n) {
  constexpr int R = 8;
  int64_t r = 0;
  for (; r + R <= rows; r += R) {
    __m512 xs[R];
    const W* wr[R];
    for (int k = 0; k < R; ++k) xs[k] = _mm512_set1_ps(x[r + k]), wr[k] = w + (r + k) * ld;
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
      __m512 a0 = _mm512_loadu_ps(acc + j), a1 = _mm512_loadu_ps(acc + j + 16);
      for (int k = 0; k < R; ++k) {
        a0 = _mm512_fmadd_ps(xs[k], load16(wr[k] + j, 0xffff), a0);
        a1 = _mm512_fmadd_ps(xs[k], load16(wr[k] + j + 16, 0xffff), a1);
      }
      _mm512_storeu_ps(acc + j, a0), _mm512_storeu_ps(acc + j + 16, a1);
    }
    for (; j < n; j += 16) {
      const __mmask16 m = tail_mask(n - j);
      __m512 a = _mm512_maskz_loadu_ps(m, acc + j);
      for (int k = 0; k < R; ++k) a = _mm512_fmadd_ps(xs[k], load16(wr[k] + j, m), a);
      _mm512_mask_storeu_ps(acc + j, m, a);
    }
  }
  for (; r < rows; ++r) {  // the last rows, one at a time
    const __m512 xr = _mm512_set1_ps(x[r]);
    const W* wr = w + r * ld;
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 m = tail_mask(n - j);
      _mm512_mask_storeu_ps(acc + j, m, _mm512_fmadd_ps(xr, load16(wr + j, m), _mm512_maskz_loadu_ps(m, acc + j)));
    }
  }
}

template <typename W>
[[WAFER_AVX512]] void dot_rows_avx512(float* y, const float* x, const W* w, int64_t C, int64_t v0, int64_t v1,
                                      float scale) {
  for (int64_t v = v0; v < v1; ++v) {  // one row at a time: the matrix is read strictly in order
    const W* wr = w + v * C;
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t c = 0;
    for (; c + 64 <= C; c += 64) {
      s0 = _mm512_fmadd_ps(load16(wr + c, 0xffff), _mm512_loadu_ps(x + c), s0);
      s1 = _mm512_fmadd_ps(load16(wr + c + 16, 0xffff), _mm512_loadu_ps(x + c + 16), s1);
      s2 = _mm512_fmadd_ps(load16(wr + c + 32, 0xffff), _mm512_loadu_ps(x + c + 32), s2);
      s3 = _mm512_fmadd_ps(load16(wr + c + 48, 0xffff), _mm512_loadu_ps(x + c + 48), s3);
    }
    for (; c < C; c += 16) {
      const __mmask16 m = tail_mask(C - c);
      s0 = _mm512_fmadd_ps(load16(wr + c, m), _mm512_maskz_loadu_ps(m, x + c), s0);
    }
    y[v] = scale * hsum(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
  }
}

// ---- threading ----

template <typename W>
void gemv_forward_impl(float* y, const float* x, const W* w, const float* bias, int64_t C, int64_t OC) {
  const Isa isa = kernel_isa();
  const auto accumulate = isa >= Isa::Avx512 ? accumulate_rows_avx512<W>
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
  const auto dot = isa >= Isa::Avx512 ? dot_rows_avx512<W> : isa == Isa::Avx2 ? dot_rows_avx2<W> : dot_rows_generic<W>;
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
