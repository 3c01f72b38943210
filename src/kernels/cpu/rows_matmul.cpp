// kernels/cpu/rows_matmul.cpp: the serving GEMMs, each output element's arithmetic fixed
// whatever the batch (see rows_matmul.h). Threads split the output columns (or vocabulary rows)
// into fixed blocks, so an element is always computed whole by one thread: the thread count and
// N change who computes it, never how. Masked loads handle column tails with the same fused
// multiply-add per lane, so a tail element's sequence of operations equals a full block's.
// AVX-512 has intrinsics: register tiles of up to 6 rows × 64 columns, or for up to 4 rows
// (decode) a contiguous sweep of each thread's columns; both apply the same operations to each
// element, so which one ran never shows in the bits (tested). Other CPUs run a
// portable loop (the same per-element operations, compiled for AVX2+FMA or the baseline).
#include "kernels/cpu/rows_matmul.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/lane_sums.h"

namespace wafer {

namespace {

// ---- portable loops ----

template <typename W>
[[gnu::always_inline]] inline void fwd_rows_portable(float* out, const float* x, const W* w, const float* bias,
                                                     int64_t N, int64_t C, int64_t OC, int64_t j0, int64_t j1) {
  std::vector<float> acc(size_t(j1 - j0));
  for (int64_t n = 0; n < N; ++n) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int64_t c = 0; c < C; ++c) {
      const float xc = x[n * C + c];
      const W* wr = w + c * OC + j0;
      for (int64_t j = 0; j < j1 - j0; ++j) acc[size_t(j)] = std::fma(xc, weight_to_f32(wr[j]), acc[size_t(j)]);
    }
    for (int64_t j = j0; j < j1; ++j) out[n * OC + j] = acc[size_t(j - j0)] + (bias ? bias[j] : 0.0f);
  }
}

template <typename W>
[[gnu::always_inline]] inline void head_rows_portable(float* out, const float* x, const W* w, int64_t N, int64_t C,
                                                      int64_t V, int64_t v0, int64_t v1, float scale) {
  for (int64_t v = v0; v < v1; ++v)
    for (int64_t n = 0; n < N; ++n) {
      float s[16] = {};
      for (int64_t c = 0; c < C; ++c) s[c % 16] = std::fma(weight_to_f32(w[v * C + c]), x[n * C + c], s[c % 16]);
      out[n * V + v] = scale * tree16(s);
    }
}

template <typename W>
[[gnu::target("avx2,fma")]] void fwd_rows_avx2(float* out, const float* x, const W* w, const float* bias, int64_t N,
                                               int64_t C, int64_t OC, int64_t j0, int64_t j1) {
  fwd_rows_portable(out, x, w, bias, N, C, OC, j0, j1);
}
template <typename W>
void fwd_rows_generic(float* out, const float* x, const W* w, const float* bias, int64_t N, int64_t C, int64_t OC,
                      int64_t j0, int64_t j1) {
  fwd_rows_portable(out, x, w, bias, N, C, OC, j0, j1);
}
template <typename W>
[[gnu::target("avx2,fma")]] void head_rows_avx2(float* out, const float* x, const W* w, int64_t N, int64_t C, int64_t V,
                                                int64_t v0, int64_t v1, float scale) {
  head_rows_portable(out, x, w, N, C, V, v0, v1, scale);
}
template <typename W>
void head_rows_generic(float* out, const float* x, const W* w, int64_t N, int64_t C, int64_t V, int64_t v0, int64_t v1,
                       float scale) {
  head_rows_portable(out, x, w, N, C, V, v0, v1, scale);
}

// ---- AVX-512 ----

#define WAFER_AVX512 gnu::target("avx512f,avx512bw,avx512vl,avx512dq,fma")

[[WAFER_AVX512]] inline __m512 load16(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
[[WAFER_AVX512]] inline __m512 load16(const uint16_t* p, __mmask16 m) {
  const __m256i h = _mm256_maskz_loadu_epi16(m, p);
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xffff, _mm512_maskz_cvtepu16_epi32(0xffff, h), 16));
}

// out rows [0, R) × columns [j0, j0 + 64) ∩ [0, OC): 4R accumulators in registers.
template <int R, typename W>
[[WAFER_AVX512]] void fwd_tile_avx512(float* out, const float* x, const W* w, const float* bias, int64_t C,
                                      int64_t OC, int64_t j0) {
  __mmask16 m[4];
  for (int k = 0; k < 4; ++k) m[k] = lane_mask(OC - j0 - 16 * k);
  __m512 acc[R][4];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < 4; ++k) acc[r][k] = _mm512_setzero_ps();
  const W* wc = w + j0;
  for (int64_t c = 0; c < C; ++c, wc += OC) {
    _mm_prefetch(reinterpret_cast<const char*>(wc + 8 * OC), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(wc + 8 * OC + 32), _MM_HINT_T0);
    const __m512 w0 = load16(wc, m[0]), w1 = load16(wc + 16, m[1]), w2 = load16(wc + 32, m[2]),
                 w3 = load16(wc + 48, m[3]);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 xb = _mm512_set1_ps(x[r * C + c]);
      acc[r][0] = _mm512_fmadd_ps(xb, w0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(xb, w1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(xb, w2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(xb, w3, acc[r][3]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < 4; ++k) {
      __m512 v = acc[r][k];
      if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m[k], bias + j0 + 16 * k));
      _mm512_mask_storeu_ps(out + r * OC + j0 + 16 * k, m[k], v);
    }
}

// Rows [0, N) in tiles of at most Max (4 or 6): tile(std::integral_constant<int, R>{}, first row)
// for each, R the tile's rows (a compile-time constant, so its accumulators are registers).
template <int Max, typename Tile>
inline void in_row_tiles(int64_t N, const Tile& tile) {
  static_assert(Max == 4 || Max == 6);
  for (int64_t n = 0; n < N; n += Max) switch (std::min<int64_t>(Max, N - n)) {
      case 6: if constexpr (Max == 6) tile(std::integral_constant<int, 6>{}, n); break;
      case 5: if constexpr (Max == 6) tile(std::integral_constant<int, 5>{}, n); break;
      case 4: tile(std::integral_constant<int, 4>{}, n); break;
      case 3: tile(std::integral_constant<int, 3>{}, n); break;
      case 2: tile(std::integral_constant<int, 2>{}, n); break;
      default: tile(std::integral_constant<int, 1>{}, n); break;
    }
}

// Vocabulary rows [v0, v1) in groups of 4, then one at a time: group(std::integral_constant<int,
// VR>{}, first row).
template <typename Group>
inline void in_vocab_groups(int64_t v0, int64_t v1, const Group& group) {
  int64_t v = v0;
  for (; v + 4 <= v1; v += 4) group(std::integral_constant<int, 4>{}, v);
  for (; v < v1; ++v) group(std::integral_constant<int, 1>{}, v);
}

template <typename W>
void fwd_rows_avx512(float* out, const float* x, const W* w, const float* bias, int64_t N, int64_t C, int64_t OC,
                     int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; j += 64)
    in_row_tiles<6>(N, [&](auto r, int64_t n) { fwd_tile_avx512<r.value>(out + n * OC, x + n * C, w, bias, C, OC, j); });
}

// Few rows (decode): the thread's columns [j0, j1) of each weight row are read in one
// contiguous sweep, c outer, accumulating in `out` itself. The same operations per element as
// fwd_tile_avx512 (0, then one fused multiply-add per c in ascending order, then + bias), so a
// row's bits do not depend on which of the two loops ran it.
template <int R, typename W>
[[WAFER_AVX512]] void fwd_stream_avx512(float* out, const float* x, const W* w, const float* bias, int64_t C,
                                        int64_t OC, int64_t j0, int64_t j1) {
  const int64_t n = j1 - j0;
  for (int r = 0; r < R; ++r) std::fill(out + r * OC + j0, out + r * OC + j1, 0.0f);
  for (int64_t c = 0; c < C; ++c) {
    const W* wr = w + c * OC + j0;
    __m512 xb[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) xb[r] = _mm512_set1_ps(x[r * C + c]);
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 m = lane_mask(n - j);
      const __m512 wv = load16(wr + j, m);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        float* o = out + r * OC + j0 + j;
        _mm512_mask_storeu_ps(o, m, _mm512_fmadd_ps(xb[r], wv, _mm512_maskz_loadu_ps(m, o)));
      }
    }
  }
  if (bias)
    for (int r = 0; r < R; ++r)
      for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = lane_mask(n - j);
        float* o = out + r * OC + j0 + j;
        _mm512_mask_storeu_ps(o, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, o), _mm512_maskz_loadu_ps(m, bias + j0 + j)));
      }
}

template <typename W>
void fwd_stream_rows_avx512(float* out, const float* x, const W* w, const float* bias, int64_t N, int64_t C,
                            int64_t OC, int64_t j0, int64_t j1) {
  WAFER_ASSERT(N <= 4);  // one tile of all N rows
  in_row_tiles<4>(N, [&](auto r, int64_t) { fwd_stream_avx512<r.value>(out, x, w, bias, C, OC, j0, j1); });
}

// out rows [0, NR) × vocabulary rows [v, v + VR): NR·VR accumulators of 16 lanes over c.
template <int NR, int VR, typename W>
[[WAFER_AVX512]] void head_tile_avx512(float* out, const float* x, const W* w, int64_t C, int64_t V, int64_t v,
                                       float scale) {
  __m512 acc[NR][VR];
#pragma GCC unroll 16
  for (int r = 0; r < NR; ++r)
    for (int k = 0; k < VR; ++k) acc[r][k] = _mm512_setzero_ps();
  for (int64_t c = 0; c < C; c += 16) {
    const __mmask16 m = lane_mask(C - c);
    __m512 wv[VR];
#pragma GCC unroll 4
    for (int k = 0; k < VR; ++k) wv[k] = load16(w + (v + k) * C + c, m);
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, x + r * C + c);
#pragma GCC unroll 4
      for (int k = 0; k < VR; ++k) acc[r][k] = _mm512_fmadd_ps(wv[k], xv, acc[r][k]);
    }
  }
#pragma GCC unroll 16  // indexed by constants, so the accumulators stay in registers (not spilled)
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int k = 0; k < VR; ++k) out[r * V + v + k] = scale * tree16(acc[r][k]);
}

template <typename W>
void head_rows_avx512(float* out, const float* x, const W* w, int64_t N, int64_t C, int64_t V, int64_t v0, int64_t v1,
                      float scale) {
  in_vocab_groups(v0, v1, [&](auto vr, int64_t v) {
    in_row_tiles<4>(N, [&](auto nr, int64_t n) {
      head_tile_avx512<nr.value, vr.value>(out + n * V, x + n * C, w, C, V, v, scale);
    });
  });
}

// ---- AVX512-BF16: the head over bf16 weights by bf16 dot products ----
// The activations are rounded to bf16 once per call (round to nearest even), then each output is
// 16 lanes of vdpbf16ps (a pair of products per lane per instruction, c ascending in steps of 32),
// then tree16's fixed tree. Twice the multiply-adds of an fp32 FMA per instruction and no
// conversion of the weights: the weight rows [v, 0..C) are already pairs along c.

#define WAFER_AVX512BF16 gnu::target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")

template <int NR, int VR>
[[WAFER_AVX512BF16]] void head_tile_bf16dp(float* out, const uint16_t* x16, const uint16_t* w, int64_t C, int64_t V,
                                           int64_t v, float scale) {
  __m512 acc[NR][VR];
#pragma GCC unroll 16
  for (int r = 0; r < NR; ++r)
    for (int k = 0; k < VR; ++k) acc[r][k] = _mm512_setzero_ps();
  for (int64_t c = 0; c < C; c += 32) {
    const __mmask32 m = lane_mask32(C - c);
    __m512bh wv[VR];
#pragma GCC unroll 4
    for (int k = 0; k < VR; ++k) {
      _mm_prefetch(reinterpret_cast<const char*>(w + (v + VR + k) * C + c), _MM_HINT_T0);  // the next rows
      wv[k] = (__m512bh)_mm512_maskz_loadu_epi16(m, w + (v + k) * C + c);
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(m, x16 + r * C + c);
#pragma GCC unroll 4
      for (int k = 0; k < VR; ++k) acc[r][k] = _mm512_dpbf16_ps(acc[r][k], xv, wv[k]);
    }
  }
#pragma GCC unroll 16  // indexed by constants, so the accumulators stay in registers (not spilled)
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int k = 0; k < VR; ++k) out[r * V + v + k] = scale * tree16(acc[r][k]);
}

void head_rows_bf16dp(float* out, const uint16_t* x16, const uint16_t* w, int64_t N, int64_t C, int64_t V, int64_t v0,
                      int64_t v1, float scale) {
  in_vocab_groups(v0, v1, [&](auto vr, int64_t v) {
    in_row_tiles<4>(N, [&](auto nr, int64_t n) {
      head_tile_bf16dp<nr.value, vr.value>(out + n * V, x16 + n * C, w, C, V, v, scale);
    });
  });
}

// The block matrices, W[C, OC] in Conv1D's layout: rows c and c+1 interleaved on the fly
// (vpunpck{l,h}wd within each 128-bit lane) give 16 (w[c, o], w[c+1, o]) pairs per register, so
// one vdpbf16ps takes two input rows at once. Within a 32-column group, "lo" holds columns
// 8k + 0..3 and "hi" 8k + 4..7 of each lane k; the columns are put back in order at the store.
// Each output: 0, then one vdpbf16ps per pair of input rows in ascending c (an odd last row
// paired with zeros), then + bias, for any number of rows: what makes it batch-invariant.
template <int R>
[[WAFER_AVX512BF16]] void fwd_tile_bf16dp(float* out, const uint16_t* x16, int64_t Cp, const uint16_t* w,
                                          const float* bias, int64_t C, int64_t OC, int64_t j0) {
  const __mmask32 m[2] = {lane_mask32(OC - j0), lane_mask32(OC - j0 - 32)};
  __m512 acc[R][4];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < 4; ++k) acc[r][k] = _mm512_setzero_ps();
  for (int64_t c = 0; c < C; c += 2) {
    const uint16_t* w0 = w + c * OC + j0;
    const bool pair = c + 1 < C;
    __m512bh wp[4];
#pragma GCC unroll 2
    for (int g = 0; g < 2; ++g) {
      const __m512i a = _mm512_maskz_loadu_epi16(m[g], w0 + 32 * g);
      const __m512i b = _mm512_maskz_loadu_epi16(pair ? m[g] : __mmask32(0), w0 + OC + 32 * g);
      wp[2 * g] = (__m512bh)_mm512_unpacklo_epi16(a, b);
      wp[2 * g + 1] = (__m512bh)_mm512_unpackhi_epi16(a, b);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      uint32_t xp;
      std::memcpy(&xp, x16 + r * Cp + c, 4);  // (x[c], x[c+1]); the row is padded to an even length
      const __m512bh xb = (__m512bh)_mm512_set1_epi32(int32_t(xp));
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) acc[r][k] = _mm512_dpbf16_ps(acc[r][k], xb, wp[k]);
    }
  }
  // lo = columns {0-3, 8-11, 16-19, 24-27}, hi = {4-7, 12-15, 20-23, 28-31} of a group.
  const __m512i first = _mm512_set_epi32(23, 22, 21, 20, 7, 6, 5, 4, 19, 18, 17, 16, 3, 2, 1, 0);
  const __m512i second = _mm512_set_epi32(31, 30, 29, 28, 15, 14, 13, 12, 27, 26, 25, 24, 11, 10, 9, 8);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < 2; ++g) {
      const __m512 lo = acc[r][2 * g], hi = acc[r][2 * g + 1];
      __m512 v[2] = {_mm512_permutex2var_ps(lo, first, hi), _mm512_permutex2var_ps(lo, second, hi)};
      for (int h = 0; h < 2; ++h) {
        const __mmask16 mk = __mmask16(m[g] >> (16 * h));
        float* o = out + r * OC + j0 + 32 * g + 16 * h;
        if (bias) v[h] = _mm512_add_ps(v[h], _mm512_maskz_loadu_ps(mk, bias + j0 + 32 * g + 16 * h));
        _mm512_mask_storeu_ps(o, mk, v[h]);
      }
    }
}

void fwd_rows_bf16dp(float* out, const uint16_t* x16, int64_t Cp, const uint16_t* w, const float* bias, int64_t N,
                     int64_t C, int64_t OC, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; j += 64)
    in_row_tiles<6>(N, [&](auto r, int64_t n) {
      fwd_tile_bf16dp<r.value>(out + n * OC, x16 + n * Cp, Cp, w, bias, C, OC, j);
    });
}

bool bf16_dot_products() {
  static const bool has = __builtin_cpu_supports("avx512bf16") != 0;
  return has && kernel_isa() == Isa::Avx512;
}

// ---- threading: fixed blocks of the output, independent of N ----

constexpr int64_t kColBlock = 64;   // rows_matmul columns per block
constexpr int64_t kVocabBlock = 64; // rows_matmul_transposed vocabulary rows per block
constexpr int64_t kStreamRows = 4;  // up to this many rows: fwd_stream_avx512

// f(b0, b1) for each block [b0, b1) of [0, n) cut every `block`, the blocks shared among threads.
template <typename F>
void in_fixed_blocks(int64_t n, int64_t block, const F& f) {
  const int64_t nb = (n + block - 1) / block;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < nb; ++b) f(b * block, std::min(n, (b + 1) * block));
}

// x[N, C] rounded to bf16 (nearest even), each row padded with zeros to Cp >= C columns.
std::vector<uint16_t> rows_to_bf16(const float* x, int64_t N, int64_t C, int64_t Cp) {
  std::vector<uint16_t> x16(static_cast<size_t>(N * Cp), 0);
  if (Cp == C)
    convert_to_bf16(x16.data(), x, N * C);
  else
    for (int64_t n = 0; n < N; ++n) convert_to_bf16(x16.data() + n * Cp, x + n * C, C);
  return x16;
}

template <typename W>
void rows_matmul_impl(float* out, const float* x, const W* w, const float* bias, int64_t N, int64_t C, int64_t OC) {
  if constexpr (std::is_same_v<W, uint16_t>) {
    if (bf16_dot_products()) {  // every N through the same tiles, the rows padded to an even width
      const int64_t Cp = C + (C & 1);
      const std::vector<uint16_t> x16 = rows_to_bf16(x, N, C, Cp);
      in_fixed_blocks(OC, kColBlock, [&](int64_t j0, int64_t j1) {
        fwd_rows_bf16dp(out, x16.data(), Cp, w, bias, N, C, OC, j0, j1);
      });
      return;
    }
  }
  const Isa isa = kernel_isa();
  const auto rows = isa == Isa::Avx512 ? fwd_rows_avx512<W> : isa == Isa::Avx2 ? fwd_rows_avx2<W> : fwd_rows_generic<W>;
  if (isa == Isa::Avx512 && N <= kStreamRows) {  // decode: one contiguous column range per thread
#pragma omp parallel
    {
      const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads(), vecs = (OC + 15) / 16;
      const int64_t j0 = std::min(OC, vecs * t / nt * 16), j1 = std::min(OC, vecs * (t + 1) / nt * 16);
      if (j1 > j0) fwd_stream_rows_avx512<W>(out, x, w, bias, N, C, OC, j0, j1);
    }
    return;
  }
  in_fixed_blocks(OC, kColBlock, [&](int64_t j0, int64_t j1) { rows(out, x, w, bias, N, C, OC, j0, j1); });
}

template <typename W>
void rows_head_impl(float* out, const float* x, const W* w, int64_t N, int64_t C, int64_t V, float scale) {
  if constexpr (std::is_same_v<W, uint16_t>) {
    if (bf16_dot_products()) {
      const std::vector<uint16_t> x16 = rows_to_bf16(x, N, C, C);
      in_fixed_blocks(V, kVocabBlock, [&](int64_t v0, int64_t v1) {
        head_rows_bf16dp(out, x16.data(), w, N, C, V, v0, v1, scale);
      });
      return;
    }
  }
  const Isa isa = kernel_isa();
  const auto rows =
      isa == Isa::Avx512 ? head_rows_avx512<W> : isa == Isa::Avx2 ? head_rows_avx2<W> : head_rows_generic<W>;
  in_fixed_blocks(V, kVocabBlock, [&](int64_t v0, int64_t v1) { rows(out, x, w, N, C, V, v0, v1, scale); });
}

}  // namespace

void rows_matmul(float* out, const float* inp, WeightView w, const float* bias, int64_t N, int64_t C, int64_t OC) {
  WAFER_CHECK(N >= 0 && C > 0 && OC > 0, "[rows_matmul] expected positive sizes, found N=", N, " C=", C, " OC=", OC);
  if (N == 0) return;
  if (w.quant)  // batch-invariant too: each row's products do not depend on the other rows
    matmul_forward(out, inp, w, bias, N, C, OC);
  else if (w.bf16)
    rows_matmul_impl(out, inp, w.bf16, bias, N, C, OC);
  else
    rows_matmul_impl(out, inp, w.f32, bias, N, C, OC);
}

void rows_matmul_transposed(float* out, const float* inp, WeightView w, int64_t N, int64_t C, int64_t V, float scale) {
  WAFER_CHECK(N >= 0 && C > 0 && V > 0, "[rows_matmul] expected positive sizes, found N=", N, " C=", C, " V=", V);
  if (N == 0) return;
  if (w.quant)
    matmul_forward_transposed(out, inp, w, N, C, V, scale);
  else if (w.bf16)
    rows_head_impl(out, inp, w.bf16, N, C, V, scale);
  else
    rows_head_impl(out, inp, w.f32, N, C, V, scale);
}

}  // namespace wafer
