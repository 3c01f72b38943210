// kernels/cpu/quant_matmul_amx.cpp: quant_matmul's q8_0 weights on AMX int8 tiles, for many
// activation rows (prefill). One tdpbssd takes 16 activation rows × one block of 32 values and
// the same block of 16 weight rows, and gives the 16 × 16 exact int32 block sums that the
// AVX512-VNNI path computes one row pair at a time. The float part is then the other paths'
// to the letter, vectorized over the 16 weight rows instead of over 16 blocks: block b adds
// (d_w·d_x)·isum into lane b mod 16 of each output's 16 partial sums, the lanes end in the fixed
// tree k += k+8, k+4, k+2, then 0 + 1, and out = scale·y (+ bias). No fused multiply-adds
// (fp-contract=off), so the bits are every path's.
//
// Tiles: tmm0 the block sums (16 × 16 int32), tmm1 the activations (16 rows × 32 bytes), tmm2
// the weights as the tile's B operand (8 rows of 4 values × 16 weight rows, packed per call).
#pragma GCC optimize("fp-contract=off")
#include "kernels/cpu/quant_matmul_amx.h"

// GCC 12 reports its own AVX-512 intrinsics' _mm512_undefined_*() as maybe-uninitialized (GCC
// PR 105593), as in quant_matmul.cpp.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/amx_tiles.h"
#include "kernels/cpu/lane_sums.h"

namespace wafer::quant_amx {

#define WAFER_AMX_INT8 gnu::target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512dq,f16c")

namespace {

constexpr int64_t kBlockBytes = 34;  // q8_0: fp16 scale, 32 int8 values

[[WAFER_AMX_INT8]] void configure_tiles() {
  TileConfig cfg;
  cfg.shape(0, 16, 64);  // block sums [16 activation rows][16 weight rows]
  cfg.shape(1, 16, 32);  // activations [16 rows][32 values]
  cfg.shape(2, 8, 64);   // weights [8 groups of 4 values][16 rows × 4]
  _tile_loadconfig(&cfg);
}

// Weight rows [r0, r0 + 16) ∩ [0, rows) as tiles: tiles[b] = block b as [8][16][4] (value
// 4k + j of row n at [k][n][j]), rows past the end zero; dw[b][n] their scales.
[[WAFER_AMX_INT8]] void pack_weight_rows(int8_t* tiles, float* dw, const uint8_t* w, int64_t rows, int64_t nb,
                                         int64_t r0) {
  const int64_t rb = nb * kBlockBytes, valid = std::min<int64_t>(16, rows - r0);
  std::memset(tiles, 0, size_t(nb * 512));
  std::fill(dw, dw + nb * 16, 0.0f);
  for (int64_t n = 0; n < valid; ++n) {
    const uint8_t* row = w + (r0 + n) * rb;
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = row + b * kBlockBytes;
      uint16_t h;
      std::memcpy(&h, blk, 2);
      dw[b * 16 + n] = f16_to_f32(h);
      for (int k = 0; k < 8; ++k) std::memcpy(tiles + b * 512 + k * 64 + n * 4, blk + 2 + 4 * k, 4);
    }
  }
}

// out rows [m0, m0 + mrows) × weight rows [r0, r0 + 16) ∩ [0, rows).
[[WAFER_AMX_INT8]] void tile_rows(float* out, const int8_t* tiles, const float* dw, const Activations& a, int64_t m0,
                                  int64_t mrows, int64_t rows, int64_t r0, int64_t nb, const float* bias, float scale) {
  alignas(64) float acc[16][16][16];  // [lane][activation row][weight row]
  alignas(64) int32_t sums[16][16];   // [activation row][weight row]
  std::memset(acc, 0, sizeof acc);
  const int8_t* q = a.q + m0 * a.q_stride;
  for (int64_t b = 0; b < nb; ++b) {
    _tile_zero(0);
    _tile_loadd(1, q + 32 * b, a.q_stride);
    _tile_loadd(2, tiles + b * 512, 64);
    _tile_dpbssd(0, 1, 2);
    _tile_stored(0, sums, 64);
    const __m512 dwb = _mm512_loadu_ps(dw + b * 16);
    float(*lane)[16] = acc[b & 15];
    for (int64_t m = 0; m < mrows; ++m) {
      const __m512 s = _mm512_mul_ps(dwb, _mm512_set1_ps(a.d[(m0 + m) * a.d_stride + b]));
      const __m512 t = _mm512_mul_ps(s, _mm512_cvtepi32_ps(_mm512_load_si512(sums[m])));
      _mm512_store_ps(lane[m], _mm512_add_ps(_mm512_load_ps(lane[m]), t));
    }
  }
  // The VNNI path adds its last partial group of 16 blocks to all 16 lanes, +0 to the lanes past
  // nb: the same here (it can turn a lane's -0 into +0).
  for (int k = int(nb % 16); nb % 16 && k < 16; ++k)
    for (int64_t m = 0; m < mrows; ++m)
      _mm512_store_ps(acc[k][m], _mm512_add_ps(_mm512_load_ps(acc[k][m]), _mm512_setzero_ps()));
  const __mmask16 valid = lane_mask(rows - r0);
  const __m512 sv = _mm512_set1_ps(scale);
  const __m512 bv = bias ? _mm512_maskz_loadu_ps(valid, bias + r0) : _mm512_setzero_ps();
  for (int64_t m = 0; m < mrows; ++m) {
    __m512 v[16];
    for (int k = 0; k < 16; ++k) v[k] = _mm512_load_ps(acc[k][m]);
    for (int k = 0; k < 8; ++k) v[k] = _mm512_add_ps(v[k], v[k + 8]);
    for (int k = 0; k < 4; ++k) v[k] = _mm512_add_ps(v[k], v[k + 4]);
    for (int k = 0; k < 2; ++k) v[k] = _mm512_add_ps(v[k], v[k + 2]);
    __m512 y = _mm512_mul_ps(sv, _mm512_add_ps(v[0], v[1]));
    if (bias) y = _mm512_add_ps(y, bv);
    _mm512_mask_storeu_ps(out + (m0 + m) * rows + r0, valid, y);
  }
}

}  // namespace

[[WAFER_AMX_INT8]] void q8_0_matmul(float* out, const uint8_t* w, int64_t rows, int64_t nb, const Activations& a,
                                    int64_t N, const float* bias, float scale) {
  const int64_t groups = (rows + 15) / 16;
#pragma omp parallel
  {
    configure_tiles();
    std::vector<int8_t> tiles(size_t(nb * 512));
    std::vector<float> dw(size_t(nb * 16));
#pragma omp for schedule(static)
    for (int64_t g = 0; g < groups; ++g) {
      pack_weight_rows(tiles.data(), dw.data(), w, rows, nb, 16 * g);
      for (int64_t m0 = 0; m0 < N; m0 += 16)
        tile_rows(out, tiles.data(), dw.data(), a, m0, std::min<int64_t>(16, N - m0), rows, 16 * g, nb, bias, scale);
    }
    _tile_release();
  }
}

}  // namespace wafer::quant_amx
