// kernels/cpu/rows_matmul_parts.h: what rows_matmul.cpp and rows_matmul_bf16.cpp share: the
// chunk of input rows each partial sum covers, the loops over row tiles and vocabulary groups,
// and the bf16 dot-product kernels (AVX512-BF16). Not a public header: see rows_matmul.h.
#pragma once
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

}  // namespace wafer
