// kernels/cpu/rows_matmul_amx.cpp: rows_matmul's bf16 weights on AMX tiles. A tile
// multiply-add (tdpbf16ps) takes 16 rows × 32 inputs of activations and 16 pairs of weight rows
// × 16 columns, and adds 16 × 16 dot products of 32 into fp32 accumulators: 16 times the work
// of a vdpbf16ps for about 16 times its cost, where a serving step's 16 rows had used one
// sixteenth of each vdpbf16ps.
//
// Batch invariance: an output element's sums are the tile's, over c ascending in steps of 32,
// whatever the other rows of its tile hold; rows past N are zeros and their outputs dropped.
// The tile arithmetic is not the dot products' (measured: 40% of elements differ in the last
// bits), so where tiles exist every N takes them, and no element's path depends on N.
//
// Tile registers (one configuration, loaded by each thread when it starts its share; oneDNN's
// GEMMs load their own between our calls): all eight 16 rows × 64 bytes.
//   block matrices: tmm0-3 the accumulators of a strip's 64 columns (in the lo, hi order of the
//                   panels' pair registers), tmm4 the activations, tmm5-6 the weights;
//   head:           tmm0-3 the accumulators of 64 vocabulary rows × 16 tokens, tmm4 the
//                   activations as pairs, tmm5-6 16 vocabulary rows of weights each.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/cpu/amx_tiles.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/lane_sums.h"
#include "kernels/cpu/rows_matmul_parts.h"

namespace wafer::rows_amx {

#define WAFER_AMX gnu::target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")

namespace {

constexpr int64_t kTileRows = 16;                // rows of activations (or vocabulary rows) per tile
constexpr int64_t kTileDepth = 32;               // inputs per tile multiply-add
constexpr int kPairBytes = kPanelPairElems * 2;  // a panel's stride from one pair of rows to the next

[[WAFER_AMX]] void configure_tiles() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.shape(t, kTileRows, 64);
  _tile_loadconfig(&cfg);
}

// f(b) for the blocks b < nb, split among threads as in_fixed_blocks does, inside a parallel
// region whose threads configure the tiles first and release them at the end.
template <typename F>
[[WAFER_AMX]] void in_tile_blocks(int64_t nb, const F& f) {
#pragma omp parallel
  {
    configure_tiles();
#pragma omp for schedule(static)
    for (int64_t b = 0; b < nb; ++b) f(b);
    _tile_release();
  }
}

// out[rows, OC] columns [j, j + 64) ∩ [0, OC) = x16[16, C] · the strip + bias (rows <= 16 of the
// 16 kept; x16 rows C apart).
[[WAFER_AMX]] void strip_tile(float* out, const uint16_t* x16, const uint16_t* strip, const float* bias, int64_t rows,
                              int64_t C, int64_t OC, int64_t j) {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t c = 0; c < C; c += kTileDepth) {
    const uint16_t* p = strip + (c / 2) * kPanelPairElems;  // 16 pairs of rows, 256 bytes apart
    _tile_loadd(4, x16 + c, C * 2);
    _tile_loadd(5, p, kPairBytes);
    _tile_dpbf16ps(0, 4, 5);
    _tile_loadd(6, p + 32, kPairBytes);
    _tile_dpbf16ps(1, 4, 6);
    _tile_loadd(5, p + 64, kPairBytes);
    _tile_dpbf16ps(2, 4, 5);
    _tile_loadd(6, p + 96, kPairBytes);
    _tile_dpbf16ps(3, 4, 6);
  }
  alignas(64) float acc[4][kTileRows][16];  // [pair register][row][its 16 columns]
  _tile_stored(0, acc[0], 64);
  _tile_stored(1, acc[1], 64);
  _tile_stored(2, acc[2], 64);
  _tile_stored(3, acc[3], 64);
  const __mmask32 m[2] = {lane_mask32(OC - j), lane_mask32(OC - j - 32)};
  for (int64_t r = 0; r < rows; ++r)
    for (int g = 0; g < 2; ++g) {
      __m512 v[2];
      bf16_group_in_order(v, _mm512_load_ps(acc[2 * g][r]), _mm512_load_ps(acc[2 * g + 1][r]));
      for (int h = 0; h < 2; ++h) {
        const __mmask16 mk = __mmask16(m[g] >> (16 * h));
        const int64_t o = j + 32 * g + 16 * h;
        if (bias) v[h] = _mm512_add_ps(v[h], _mm512_maskz_loadu_ps(mk, bias + o));
        _mm512_mask_storeu_ps(out + r * OC + o, mk, v[h]);
      }
    }
}

// The strip at columns [j, j + 64) against every row tile (the strip stays in L2 between them).
void strip_rows(float* out, const uint16_t* x16, const uint16_t* strip, const float* bias, int64_t N, int64_t C,
                int64_t OC, int64_t j) {
  for (int64_t n = 0; n < N; n += kTileRows)
    strip_tile(out + n * OC, x16 + n * C, strip, bias, std::min(kTileRows, N - n), C, OC, j);
}

// xb[G, C / 2, 16, 2]: token group g's rows of x16[N, C] as a tile's pairs, (x[16g + t, c],
// x[16g + t, c + 1]) at [g, c / 2, t], zeros past N.
std::vector<uint16_t> activations_as_pairs(const uint16_t* x16, int64_t N, int64_t C) {
  const int64_t groups = (N + kTileRows - 1) / kTileRows;
  std::vector<uint16_t> xb(size_t(groups * C * kTileRows), 0);
  for (int64_t n = 0; n < N; ++n) {
    uint16_t* g = xb.data() + (n / kTileRows) * C * kTileRows + (n % kTileRows) * 2;
    for (int64_t c = 0; c < C; c += 2) g[c * kTileRows] = x16[n * C + c], g[c * kTileRows + 1] = x16[n * C + c + 1];
  }
  return xb;
}

// out[rows, V] vocabulary rows [v, v + 16T) = scale · the token group xb_g · w[v .., C]ᵀ.
template <int T>
[[WAFER_AMX]] void head_tile(float* out, const uint16_t* xb_g, const uint16_t* w, int64_t rows, int64_t C, int64_t V,
                             int64_t v, float scale) {
  static_assert(T == 1 || T == 4);
  _tile_zero(0);
  if constexpr (T == 4) {
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  const uint16_t* wv = w + v * C;
  for (int64_t c = 0; c < C; c += kTileDepth) {
    _tile_loadd(4, xb_g + c * kTileRows, 64);
    _tile_loadd(5, wv + c, C * 2);
    _tile_dpbf16ps(0, 5, 4);
    if constexpr (T == 4) {
      _tile_loadd(6, wv + 16 * C + c, C * 2);
      _tile_dpbf16ps(1, 6, 4);
      _tile_loadd(5, wv + 32 * C + c, C * 2);
      _tile_dpbf16ps(2, 5, 4);
      _tile_loadd(6, wv + 48 * C + c, C * 2);
      _tile_dpbf16ps(3, 6, 4);
    }
  }
  alignas(64) float acc[4][kTileRows][16];  // [tile][vocabulary row][token]
  _tile_stored(0, acc[0], 64);
  if constexpr (T == 4) {
    _tile_stored(1, acc[1], 64);
    _tile_stored(2, acc[2], 64);
    _tile_stored(3, acc[3], 64);
  }
  const __m512i column = _mm512_set_epi32(240, 224, 208, 192, 176, 160, 144, 128, 112, 96, 80, 64, 48, 32, 16, 0);
  const __m512 s = _mm512_set1_ps(scale);
  for (int i = 0; i < T; ++i)
    for (int64_t t = 0; t < rows; ++t)  // token t's 16 vocabulary rows: column t of the tile
      _mm512_storeu_ps(out + t * V + v + 16 * i, _mm512_mul_ps(s, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xffff,
                                                                                           column, &acc[i][0][t], 4)));
}

}  // namespace

bool tiles(int64_t C) { return kernel_isa() == Isa::Amx && C % kTileDepth == 0; }

void panel_matmul(float* out, const uint16_t* x16, const uint16_t* panels, const float* bias, int64_t N, int64_t C,
                  int64_t OC) {
  in_tile_blocks((OC + 63) / 64, [&](int64_t b) {
    strip_rows(out, x16, panels + b * (C / 2) * kPanelPairElems, bias, N, C, OC, 64 * b);
  });
}

void plain_matmul(float* out, const uint16_t* x16, const uint16_t* w, const float* bias, int64_t N, int64_t C,
                  int64_t OC) {
  in_tile_blocks((OC + 63) / 64, [&](int64_t b) {
    thread_local std::vector<uint16_t> strip;  // one strip's panel: C / 2 pairs of rows
    strip.resize(size_t((C / 2) * kPanelPairElems));
    rows_bf16::pack_strip(strip.data(), w, C, OC, 64 * b);
    strip_rows(out, x16, strip.data(), bias, N, C, OC, 64 * b);
  });
}

void head(float* out, const uint16_t* x16, const uint16_t* w, int64_t N, int64_t C, int64_t V, float scale) {
  const std::vector<uint16_t> xb = activations_as_pairs(x16, N, C);
  constexpr int64_t kBlock = 64;  // vocabulary rows per block: four tiles
  in_tile_blocks((V + kBlock - 1) / kBlock, [&](int64_t b) {
    const int64_t v0 = b * kBlock, v1 = std::min(V, v0 + kBlock);
    for (int64_t n = 0; n < N; n += kTileRows) {
      const uint16_t* xb_g = xb.data() + (n / kTileRows) * C * kTileRows;
      const int64_t rows = std::min(kTileRows, N - n);
      int64_t v = v0;
      if (v1 - v0 == kBlock) {
        head_tile<4>(out + n * V, xb_g, w, rows, C, V, v, scale);
        v = v1;
      }
      for (; v + 16 <= v1; v += 16) head_tile<1>(out + n * V, xb_g, w, rows, C, V, v, scale);
      // The last V mod 16 rows (tiles would read past w): the dot products, as they are for any N.
      if (v < v1) rows_bf16::head_rows(out + n * V, x16 + n * C, w, rows, C, V, v, v1, scale);
    }
  });
}

}  // namespace wafer::rows_amx
