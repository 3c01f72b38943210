// kernels/cpu/rows_matmul.h: batch-invariant dense layers for serving. Each output element is
// computed with one fixed sequence of fp32 operations that depends on C (and the ISA picked at
// start-up) but never on N, on which other rows share the call, or on the thread count:
//   rows_matmul:            out[n, o] = ((p_0 + p_1) + ...) + bias[o], where chunk k's partial
//                           p_k = ((0 + x[n,c0]·w[c0,o]) + x[n,c0+1]·w[c0+1,o]) + ... over its
//                           128 input rows c0 = 128k .. (one fused multiply-add per c ascending;
//                           bf16 weights on AVX512-BF16: one bf16 dot product per pair of rows;
//                           on AMX, where C is a multiple of 32: one tile sum per 32 rows);
//   rows_matmul_transposed: out[n, v] = scale · hsum16(lane sums), lane l summing c ≡ l (mod 16)
//                           by fused multiply-adds in ascending c, then a fixed pairwise tree.
// So a request's rows come out bit-identical whether it runs alone or among 15 others (OpenBLAS
// sgemm and the decode gemv make no such promise across N). Not for training: no backward.
#pragma once
#include <cstdint>

#include "kernels/cpu/matmul.h"

namespace wafer {

// out[N, OC] = inp[N, C] · w[C, OC] + bias[OC] (HF Conv1D layout, or its panels below; bias may
// be null).
void rows_matmul(float* out, const float* inp, WeightView w, const float* bias, int64_t N, int64_t C, int64_t OC);
// out[N, V] = scale · inp[N, C] · wᵀ, w[V, C] (the LM head).
void rows_matmul_transposed(float* out, const float* inp, WeightView w, int64_t N, int64_t C, int64_t V, float scale);

// The serving layout of a weight W[C, OC] (WeightView::f32_panels, bf16_panels): strips of 64
// output columns (zeros past OC), each strip's input rows in order. A tile then reads its strip
// as one contiguous run, which the hardware prefetcher follows; in Conv1D's layout the tile's
// rows lie OC apart and cross a page every row or two (read at 8-11 GB/s where the panels read
// at 15-30). fp32: each row the strip's 64 values. bf16 (AVX512-BF16 only): each pair of rows
// (c, c + 1) as 64 (w[c, o], w[c + 1, o]) pairs in the order the bf16 dot products take them,
// zeros past C. Same operations per element as the plain layout, so the same bits.
bool rows_panels_supported(Precision p);  // fp32: the AVX-512 kernels in use; bf16: also AVX512-BF16
// Elements of W's panels: C (rounded up to even for bf16) × OC rounded up to 64.
int64_t rows_panel_elems(Precision p, int64_t C, int64_t OC);
// panels[rows_panel_elems(C, OC)] = W[C, OC] rearranged (panels and w must not overlap).
void pack_rows_panels(float* panels, const float* w, int64_t C, int64_t OC);
void pack_rows_panels(uint16_t* panels, const uint16_t* w, int64_t C, int64_t OC);

}  // namespace wafer
