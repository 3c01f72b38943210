// kernels/cpu/rows_matmul_bf16.cpp: rows_matmul's bf16 weights on AVX512-BF16 (see
// rows_matmul.cpp for the scheme): bf16 dot products (vdpbf16ps) over the weights as they are,
// the activations rounded to bf16 once per call. The head's outputs are 16 lanes of vdpbf16ps
// (a pair of products per lane per instruction, c ascending in steps of 32), then tree16's
// fixed tree: twice the multiply-adds of an fp32 FMA per instruction and no conversion of the
// weights, whose rows [v, 0..C) are already pairs along c.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/lane_sums.h"
#include "kernels/cpu/rows_matmul_parts.h"

namespace wafer::rows_bf16 {

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
  if constexpr (NR == 4 && VR == 4) {  // the same 16 trees, done together
    store_tree16_4x4(out + v, V, acc, scale);
    return;
  }
#pragma GCC unroll 16  // indexed by constants, so the accumulators stay in registers (not spilled)
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int k = 0; k < VR; ++k) out[r * V + v + k] = scale * tree16(acc[r][k]);
}

void head_rows(float* out, const uint16_t* x16, const uint16_t* w, int64_t N, int64_t C, int64_t V, int64_t v0,
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
// Each output: per chunk of input rows, 0, then one vdpbf16ps per pair of rows in ascending c
// (an odd last row paired with zeros); the chunks' partials added in order, then + bias, for
// any number of rows: what makes it batch-invariant.

// The products of input rows (c, c + 1) with the columns [j, j + 64) ∩ [0, OC) as the 4 pair
// registers lo, hi of each 32-column group (m: the groups' column masks).
[[WAFER_AVX512BF16]] inline void bf16_row_pairs(__m512bh* wp, const uint16_t* w0, int64_t OC, bool pair,
                                                const __mmask32* m) {
#pragma GCC unroll 2
  for (int g = 0; g < 2; ++g) {
    const __m512i a = _mm512_maskz_loadu_epi16(m[g], w0 + 32 * g);
    const __m512i b = _mm512_maskz_loadu_epi16(pair ? m[g] : __mmask32(0), w0 + OC + 32 * g);
    wp[2 * g] = (__m512bh)_mm512_unpacklo_epi16(a, b);
    wp[2 * g + 1] = (__m512bh)_mm512_unpackhi_epi16(a, b);
  }
}

// The four pair registers of input rows (c, c + 1), columns [j0, j0 + 64), built from W[C, OC]
// as it is (rows OC apart).
struct RowPairsOfW {
  const uint16_t* w;
  int64_t C, OC, j0;
  __mmask32 m[2];
  RowPairsOfW(const uint16_t* w_, int64_t C_, int64_t OC_, int64_t j0_) : w(w_), C(C_), OC(OC_), j0(j0_) {
    m[0] = lane_mask32(OC - j0), m[1] = lane_mask32(OC - j0 - 32);
  }
  [[WAFER_AVX512BF16, gnu::always_inline]] void operator()(__m512bh* wp, int64_t c) const {
    bf16_row_pairs(wp, w + c * OC + j0, OC, c + 1 < C, m);
  }
};

// The same registers read from the panels (pack_panels): one contiguous 256-byte run per pair,
// the strip's pairs one after another.
struct RowPairsOfPanel {
  const uint16_t* strip;
  [[WAFER_AVX512BF16, gnu::always_inline]] void operator()(__m512bh* wp, int64_t c) const {
    const uint16_t* p = strip + (c / 2) * kPanelPairElems;
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) wp[k] = (__m512bh)_mm512_loadu_si512(p + 32 * k);
  }
};

template <int R, typename Pairs>
[[WAFER_AVX512BF16]] void fwd_tile_bf16dp(float* out, const uint16_t* x16, int64_t Cp, const Pairs& pairs,
                                          const float* bias, int64_t C, int64_t OC, int64_t j0) {
  const __mmask32 m[2] = {lane_mask32(OC - j0), lane_mask32(OC - j0 - 32)};
  for (int64_t c0 = 0; c0 < C; c0 += kChunkRows) {
    const int64_t c1 = std::min(C, c0 + kChunkRows);
    __m512 acc[R][4];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
      for (int k = 0; k < 4; ++k) acc[r][k] = _mm512_setzero_ps();
    for (int64_t c = c0; c < c1; c += 2) {
      __m512bh wp[4];
      pairs(wp, c);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        // One row's (x[c], x[c+1]) at a time, not bf16_x_pairs: all six at once beside the 24
        // accumulators compiled to more stack accesses (137 against 124). Rows are padded to an
        // even length.
        uint32_t xp;
        std::memcpy(&xp, x16 + r * Cp + c, 4);
        const __m512bh xb = (__m512bh)_mm512_set1_epi32(int32_t(xp));
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k) acc[r][k] = _mm512_dpbf16_ps(acc[r][k], xb, wp[k]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
      for (int g = 0; g < 2; ++g) {
        __m512 v[2];
        bf16_group_in_order(v, acc[r][2 * g], acc[r][2 * g + 1]);
        for (int h = 0; h < 2; ++h) {
          const __mmask16 mk = __mmask16(m[g] >> (16 * h));
          float* o = out + r * OC + j0 + 32 * g + 16 * h;
          if (c0 > 0) v[h] = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, o), v[h]);
          if (bias && c1 == C) v[h] = _mm512_add_ps(v[h], _mm512_maskz_loadu_ps(mk, bias + j0 + 32 * g + 16 * h));
          _mm512_mask_storeu_ps(o, mk, v[h]);
        }
      }
  }
}

void fwd_rows(float* out, const uint16_t* x16, int64_t Cp, const uint16_t* w, const float* bias, int64_t N, int64_t C,
              int64_t OC, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; j += 64)
    in_row_tiles<6>(N, [&](auto r, int64_t n) {
      fwd_tile_bf16dp<r.value>(out + n * OC, x16 + n * Cp, Cp, RowPairsOfW(w, C, OC, j), bias, C, OC, j);
    });
}

int64_t panel_elems(int64_t C, int64_t OC) { return (C + (C & 1)) * ((OC + 63) / 64 * 64); }

[[WAFER_AVX512BF16]] void pack_strip(uint16_t* strip, const uint16_t* w, int64_t C, int64_t OC, int64_t j) {
  const RowPairsOfW pairs(w, C, OC, j);
  for (int64_t c = 0; c < C; c += 2, strip += kPanelPairElems) {
    __m512bh wp[4];
    pairs(wp, c);
    for (int k = 0; k < 4; ++k) _mm512_storeu_si512(strip + 32 * k, (__m512i)wp[k]);
  }
}

void pack_panels(uint16_t* panels, const uint16_t* w, int64_t C, int64_t OC) {
  for (int64_t j = 0; j < OC; j += 64, panels += (C + (C & 1)) / 2 * kPanelPairElems) pack_strip(panels, w, C, OC, j);
}

void panel_rows(float* out, const uint16_t* x16, int64_t Cp, const uint16_t* panels, const float* bias, int64_t N,
                int64_t C, int64_t OC, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; j += 64) {
    const RowPairsOfPanel pairs{panels + (j / 64) * (Cp / 2) * kPanelPairElems};
    in_row_tiles<6>(N, [&](auto r, int64_t n) {
      fwd_tile_bf16dp<r.value>(out + n * OC, x16 + n * Cp, Cp, pairs, bias, C, OC, j);
    });
  }
}

// (x[r, c], x[r, c + 1]) in every lane, for rows r < R of x16 (rows Cp apart).
template <int R>
[[WAFER_AVX512BF16]] inline void bf16_x_pairs(__m512bh* xb, const uint16_t* x16, int64_t Cp, int64_t c) {
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    uint32_t xp;
    std::memcpy(&xp, x16 + r * Cp + c, 4);
    xb[r] = (__m512bh)_mm512_set1_epi32(int32_t(xp));
  }
}

// Few rows, as fwd_stream_rows_avx512: input rows [c0, c1) of a chunk swept a pair of rows at a
// time into the partial part[R, OCp] (OCp = OC rounded up to 64), each group's columns in lo, hi
// order.
template <int R>
[[WAFER_AVX512BF16]] void fwd_stream_rows_bf16dp(float* part, int64_t OCp, const uint16_t* x16, int64_t Cp,
                                                 const uint16_t* w, int64_t C, int64_t OC, int64_t c0, int64_t c1) {
  int64_t c = c0;
  // Two pairs of rows per pass over the columns: each partial is loaded and stored half as often
  // (the same vdpbf16ps chain per element, pair c before pair c + 2).
  for (; c + 4 <= c1; c += 4) {
    __m512bh xa[R], xb[R];
    bf16_x_pairs<R>(xa, x16, Cp, c), bf16_x_pairs<R>(xb, x16, Cp, c + 2);
    for (int64_t j = 0; j < OC; j += 64) {
      const __mmask32 m[2] = {lane_mask32(OC - j), lane_mask32(OC - j - 32)};
      __m512bh wa[4], wb[4];
      bf16_row_pairs(wa, w + c * OC + j, OC, true, m);
      bf16_row_pairs(wb, w + (c + 2) * OC + j, OC, c + 3 < C, m);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r)
        for (int k = 0; k < 4; ++k) {
          float* o = part + r * OCp + j + 16 * k;
          _mm512_storeu_ps(o, _mm512_dpbf16_ps(_mm512_dpbf16_ps(_mm512_loadu_ps(o), xa[r], wa[k]), xb[r], wb[k]));
        }
    }
  }
  for (; c < c1; c += 2) {
    __m512bh xb[R];
    bf16_x_pairs<R>(xb, x16, Cp, c);
    for (int64_t j = 0; j < OC; j += 64) {
      const __mmask32 m[2] = {lane_mask32(OC - j), lane_mask32(OC - j - 32)};
      __m512bh wp[4];
      bf16_row_pairs(wp, w + c * OC + j, OC, c + 1 < C, m);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r)
        for (int k = 0; k < 4; ++k) {
          float* o = part + r * OCp + j + 16 * k;
          _mm512_storeu_ps(o, _mm512_dpbf16_ps(_mm512_loadu_ps(o), xb[r], wp[k]));
        }
    }
  }
}

void stream_chunk(float* part, int64_t OCp, const uint16_t* x16, int64_t Cp, const uint16_t* w, int64_t N, int64_t C,
                  int64_t OC, int64_t c0, int64_t c1) {
  std::fill(part, part + N * OCp, 0.0f);
  for (int64_t s = c0; s < c1; s += kStreamSubRows)  // as fwd_stream_chunk_avx512
    in_row_tiles<4>(N, [&](auto r, int64_t n) {
      fwd_stream_rows_bf16dp<r.value>(part + n * OCp, OCp, x16 + n * Cp, Cp, w, C, OC, s,
                                      std::min(c1, s + kStreamSubRows));
    });
}

// out[n, j] for the 64-column blocks [j0, j1): the partials added in chunk order, back in column
// order, + bias.
[[WAFER_AVX512BF16]] void stream_combine(float* out, const float* parts, int64_t OCp, int64_t chunks, int64_t N,
                                         int64_t OC, const float* bias, int64_t j0, int64_t j1) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = j0; j < j1; j += 32) {
      __m512 lo = _mm512_loadu_ps(parts + n * OCp + j), hi = _mm512_loadu_ps(parts + n * OCp + j + 16);
      for (int64_t k = 1; k < chunks; ++k) {
        lo = _mm512_add_ps(lo, _mm512_loadu_ps(parts + (k * N + n) * OCp + j));
        hi = _mm512_add_ps(hi, _mm512_loadu_ps(parts + (k * N + n) * OCp + j + 16));
      }
      __m512 v[2];
      bf16_group_in_order(v, lo, hi);
      const __mmask32 mg = lane_mask32(OC - j);
      for (int h = 0; h < 2; ++h) {
        const __mmask16 mk = __mmask16(mg >> (16 * h));
        if (bias) v[h] = _mm512_add_ps(v[h], _mm512_maskz_loadu_ps(mk, bias + j + 16 * h));
        _mm512_mask_storeu_ps(out + n * OC + j + 16 * h, mk, v[h]);
      }
    }
}

bool dot_products() {
  static const bool has = __builtin_cpu_supports("avx512bf16") != 0;
  return has && kernel_isa() >= Isa::Avx512;
}

}  // namespace wafer::rows_bf16
