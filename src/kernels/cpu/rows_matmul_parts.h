// kernels/cpu/rows_matmul_parts.h: what rows_matmul.cpp, rows_matmul_bf16.cpp and
// rows_matmul_amx.cpp share: the chunk of input rows each partial sum covers, the loops over row
// tiles and vocabulary groups, the order of a bf16 pair register's columns, and the bf16 kernels
// (AVX512-BF16 dot products, AMX tiles). Not a public header: see rows_matmul.h.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace wafer {

// Input rows per partial sum of rows_matmul (even, so bf16's pairs of rows never straddle two).
constexpr int64_t kChunkRows = 128;
// Input rows of a chunk that the decode streams sweep for every group of 4 rows of x before the
// next ones (even; a block of W that stays in L2).
constexpr int64_t kStreamSubRows = 32;
// bf16 elements of a pair of input rows in a panel: 64 columns × 2 rows, as 4 registers.
constexpr int64_t kPanelPairElems = 128;

// The 32 columns of a 32-column group in order from its bf16 pair registers lo and hi (see
// rows_matmul_bf16.cpp): v[0] columns 0-15, v[1] 16-31.
[[gnu::target("avx512f"), gnu::always_inline]] inline void bf16_group_in_order(__m512* v, __m512 lo, __m512 hi) {
  // lo = columns {0-3, 8-11, 16-19, 24-27}, hi = {4-7, 12-15, 20-23, 28-31} of a group.
  const __m512i first = _mm512_set_epi32(23, 22, 21, 20, 7, 6, 5, 4, 19, 18, 17, 16, 3, 2, 1, 0);
  const __m512i second = _mm512_set_epi32(31, 30, 29, 28, 15, 14, 13, 12, 27, 26, 25, 24, 11, 10, 9, 8);
  v[0] = _mm512_permutex2var_ps(lo, first, hi);
  v[1] = _mm512_permutex2var_ps(lo, second, hi);
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

namespace rows_bf16 {

// AVX512-BF16 is present and the AVX-512 kernels are in use.
bool dot_products();
// out[N, V] vocabulary rows [v0, v1) = scale · x16[N, C] · w[V, C]ᵀ (x16: bf16-rounded rows).
void head_rows(float* out, const uint16_t* x16, const uint16_t* w, int64_t N, int64_t C, int64_t V, int64_t v0,
               int64_t v1, float scale);
// out[N, OC] columns [j0, j1) of x16[N, Cp] · w[C, OC] + bias, in register tiles (rows padded to
// an even Cp >= C with zeros).
void fwd_rows(float* out, const uint16_t* x16, int64_t Cp, const uint16_t* w, const float* bias, int64_t N, int64_t C,
              int64_t OC, int64_t j0, int64_t j1);
// rows_matmul.h's panels of W[C, OC]: their size, and W rearranged into them.
int64_t panel_elems(int64_t C, int64_t OC);
void pack_panels(uint16_t* panels, const uint16_t* w, int64_t C, int64_t OC);
// One strip of them: columns [j, j + 64) of W.
void pack_strip(uint16_t* strip, const uint16_t* w, int64_t C, int64_t OC, int64_t j);
// fwd_rows over the panels: the same operations per element, so the same bits.
void panel_rows(float* out, const uint16_t* x16, int64_t Cp, const uint16_t* panels, const float* bias, int64_t N,
                int64_t C, int64_t OC, int64_t j0, int64_t j1);
// N <= 8 rows: the partial part[N, OCp] of input rows [c0, c1) (one chunk), OCp = OC rounded up
// to 64, each 32-column group's columns in the order of its bf16 pairs.
void stream_chunk(float* part, int64_t OCp, const uint16_t* x16, int64_t Cp, const uint16_t* w, int64_t N, int64_t C,
                  int64_t OC, int64_t c0, int64_t c1);
// out[N, OC] columns [j0, j1) (multiples of 64) = the `chunks` partials parts[chunks, N, OCp]
// added in chunk order, back in column order, + bias.
void stream_combine(float* out, const float* parts, int64_t OCp, int64_t chunks, int64_t N, int64_t OC,
                    const float* bias, int64_t j0, int64_t j1);

}  // namespace rows_bf16

// AMX bf16 tiles (rows_matmul_amx.cpp), where kernel_isa() is Amx and C is a multiple of 32 (one
// tile's depth; every Cerebras-GPT width is). They differ in bits from the dot products above
// (the tiles round their sums their own way), so a machine with them uses them for every N.
namespace rows_amx {

bool tiles(int64_t C);
// out[N, OC] = x16[N16, C] · W + bias, W as bf16 panels (rows_matmul.h) or in Conv1D's layout
// (w[C, OC], each strip packed on the fly); x16: bf16 rows, zeros past row N up to N16 = N
// rounded up to 16.
void panel_matmul(float* out, const uint16_t* x16, const uint16_t* panels, const float* bias, int64_t N, int64_t C,
                  int64_t OC);
void plain_matmul(float* out, const uint16_t* x16, const uint16_t* w, const float* bias, int64_t N, int64_t C,
                  int64_t OC);
// out[N, V] = scale · x16[N, C] · w[V, C]ᵀ (x16 unpadded: the activations are repacked here).
void head(float* out, const uint16_t* x16, const uint16_t* w, int64_t N, int64_t C, int64_t V, float scale);

}  // namespace rows_amx

}  // namespace wafer
