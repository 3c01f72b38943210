// kernels/cpu/rows_matmul.cpp: the serving GEMMs, each output element's arithmetic fixed
// whatever the batch (see rows_matmul.h). rows_matmul sums each output in chunks of 128 input
// rows, the chunks' partials added in order; two loops compute those partials with the same
// operations per element:
//   up to 6 rows × 64 columns in registers (tiles), threads splitting the columns into fixed
//   blocks of 64, so an element is always computed whole by one thread;
//   up to 8 rows (decode): threads split the chunks, each chunk a contiguous block of the
//   weights read once in order into a partial in memory, then split the columns to add the
//   partials up. Reading each row's share of the columns, as the tiles do, reached half the
//   bandwidth with one row; the streams read at gemv's.
// A server's weights are panels (rows_matmul.h), in which a tile's strip is contiguous: the
// tiles alone then serve every row count, at the streams' bandwidth and better.
// The thread count and N change who computes an element, never how. Masked loads handle column
// tails with the same fused multiply-add per lane, so a tail element's sequence of operations
// equals a full block's. AVX-512 has intrinsics (and AVX512-BF16 bf16 dot products for bf16
// weights); other CPUs run a portable loop (the same per-element operations, compiled for
// AVX2+FMA or the baseline). Where the CPU has AMX bf16 tiles, bf16 weights take them instead
// (rows_matmul_amx.cpp), for every N: the tiles' own sums, fixed just the same.
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
#include "kernels/cpu/rows_matmul_parts.h"

namespace wafer {

namespace {

// ---- portable loops ----

template <typename W>
[[gnu::always_inline]] inline void fwd_rows_portable(float* out, const float* x, const W* w, const float* bias,
                                                     int64_t N, int64_t C, int64_t OC, int64_t j0, int64_t j1) {
  std::vector<float> acc(size_t(j1 - j0)), total(size_t(j1 - j0));
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c0 = 0; c0 < C; c0 += kChunkRows) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t c = c0; c < std::min(C, c0 + kChunkRows); ++c) {
        const float xc = x[n * C + c];
        const W* wr = w + c * OC + j0;
        for (int64_t j = 0; j < j1 - j0; ++j) acc[size_t(j)] = std::fma(xc, weight_to_f32(wr[j]), acc[size_t(j)]);
      }
      for (size_t j = 0; j < acc.size(); ++j) total[j] = c0 == 0 ? acc[j] : total[j] + acc[j];
    }
    for (int64_t j = j0; j < j1; ++j) out[n * OC + j] = bias ? total[size_t(j - j0)] + bias[j] : total[size_t(j - j0)];
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

// out rows [0, R) × columns [j0, j0 + 64) ∩ [0, OC): 4R accumulators in registers, one chunk of
// input rows at a time; each chunk's partial is added into `out` in chunk order, then the bias.
// wj: the strip's first row (w + j0 in Conv1D's layout, rows ld = OC apart; or a panel's strip,
// rows 64 apart).
template <int R, typename W>
[[WAFER_AVX512]] void fwd_tile_avx512(float* out, const float* x, const W* wj, int64_t ld, const float* bias, int64_t C,
                                      int64_t OC, int64_t j0) {
  __mmask16 m[4];
  for (int k = 0; k < 4; ++k) m[k] = lane_mask(OC - j0 - 16 * k);
  for (int64_t c0 = 0; c0 < C; c0 += kChunkRows) {
    __m512 acc[R][4];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
      for (int k = 0; k < 4; ++k) acc[r][k] = _mm512_setzero_ps();
    const int64_t c1 = std::min(C, c0 + kChunkRows);
    const W* wc = wj + c0 * ld;
    for (int64_t c = c0; c < c1; ++c, wc += ld) {
      if (ld != 64) {  // rows a page apart: the prefetcher does not follow them
        _mm_prefetch(reinterpret_cast<const char*>(wc + 8 * ld), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(wc + 8 * ld + 32), _MM_HINT_T0);
      }
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
        float* o = out + r * OC + j0 + 16 * k;
        __m512 v = c0 == 0 ? acc[r][k] : _mm512_add_ps(_mm512_maskz_loadu_ps(m[k], o), acc[r][k]);
        if (bias && c1 == C) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m[k], bias + j0 + 16 * k));
        _mm512_mask_storeu_ps(o, m[k], v);
      }
  }
}

template <typename W>
void fwd_rows_avx512(float* out, const float* x, const W* w, const float* bias, int64_t N, int64_t C, int64_t OC,
                     int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; j += 64)
    in_row_tiles<6>(N, [&](auto r, int64_t n) {
      fwd_tile_avx512<r.value>(out + n * OC, x + n * C, w + j, OC, bias, C, OC, j);
    });
}

// The same tiles over fp32 panels: strip j / 64 is C rows of 64 columns, one after another.
void fwd_panel_rows_avx512(float* out, const float* x, const float* panels, const float* bias, int64_t N, int64_t C,
                           int64_t OC, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; j += 64)
    in_row_tiles<6>(N, [&](auto r, int64_t n) {
      fwd_tile_avx512<r.value>(out + n * OC, x + n * C, panels + (j / 64) * C * 64, 64, bias, C, OC, j);
    });
}

// Few rows (decode), the weights read as a stream: a thread takes whole chunks of input rows,
// which are contiguous blocks of W, and sweeps input rows [c0, c1) of one in order into R rows
// of that chunk's partial, part[R, OC] (0, then one fused multiply-add per c ascending: the
// tile's partial, element for element). Walking every row's share of columns instead, as the
// tiles do, read the weights at half the bandwidth with two threads. fwd_stream_combine_avx512
// then adds the partials in chunk order.
template <int R, typename W>
[[WAFER_AVX512]] void fwd_stream_rows_avx512(float* part, const float* x, const W* w, int64_t C, int64_t OC,
                                             int64_t c0, int64_t c1) {
  int64_t c = c0;
  // Two input rows per pass over the columns: each partial is loaded and stored half as often,
  // the same fused multiply-adds in the same order (row c before row c + 1).
  for (; c + 2 <= c1; c += 2) {
    const W* wr = w + c * OC;
    __m512 xa[R], xb[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) xa[r] = _mm512_set1_ps(x[r * C + c]), xb[r] = _mm512_set1_ps(x[r * C + c + 1]);
    for (int64_t j = 0; j < OC; j += 16) {
      const __mmask16 m = lane_mask(OC - j);
      const __m512 wa = load16(wr + j, m), wb = load16(wr + OC + j, m);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        float* o = part + r * OC + j;
        _mm512_mask_storeu_ps(o, m, _mm512_fmadd_ps(xb[r], wb, _mm512_fmadd_ps(xa[r], wa, _mm512_maskz_loadu_ps(m, o))));
      }
    }
  }
  for (; c < c1; ++c) {
    const W* wr = w + c * OC;
    __m512 xa[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) xa[r] = _mm512_set1_ps(x[r * C + c]);
    for (int64_t j = 0; j < OC; j += 16) {
      const __mmask16 m = lane_mask(OC - j);
      const __m512 wa = load16(wr + j, m);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        float* o = part + r * OC + j;
        _mm512_mask_storeu_ps(o, m, _mm512_fmadd_ps(xa[r], wa, _mm512_maskz_loadu_ps(m, o)));
      }
    }
  }
}

// The partial part[N, OC] of input rows [c0, c1) (one chunk) for all N rows: 32 input rows at a
// time, so that block of W is still in L2 when the next 4 rows of x meet it.
template <typename W>
void fwd_stream_chunk_avx512(float* part, const float* x, const W* w, int64_t N, int64_t C, int64_t OC, int64_t c0,
                             int64_t c1) {
  std::fill(part, part + N * OC, 0.0f);
  for (int64_t s = c0; s < c1; s += kStreamSubRows)
    in_row_tiles<4>(N, [&](auto r, int64_t n) {
      fwd_stream_rows_avx512<r.value>(part + n * OC, x + n * C, w, C, OC, s, std::min(c1, s + kStreamSubRows));
    });
}

// out[n, j] for j in [j0, j1) = ((part_0 + part_1) + ...) + bias: the tile's order.
[[WAFER_AVX512]] void fwd_stream_combine_avx512(float* out, const float* parts, int64_t chunks, int64_t N, int64_t OC,
                                                const float* bias, int64_t j0, int64_t j1) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = j0; j < j1; j += 16) {
      const __mmask16 m = lane_mask(j1 - j);
      __m512 v = _mm512_maskz_loadu_ps(m, parts + n * OC + j);
      for (int64_t k = 1; k < chunks; ++k) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, parts + (k * N + n) * OC + j));
      if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + j));
      _mm512_mask_storeu_ps(out + n * OC + j, m, v);
    }
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
  if constexpr (NR == 4 && VR == 4) {  // the same 16 trees, done together
    store_tree16_4x4(out + v, V, acc, scale);
    return;
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

// ---- threading: fixed blocks of the output, independent of N ----

constexpr int64_t kColBlock = 64;   // rows_matmul columns per block
constexpr int64_t kVocabBlock = 64; // rows_matmul_transposed vocabulary rows per block
constexpr int64_t kStreamRows = 8;  // up to this many rows: the chunk streams

// f(b0, b1) for each block [b0, b1) of [0, n) cut every `block`, the blocks shared among threads.
template <typename F>
void in_fixed_blocks(int64_t n, int64_t block, const F& f) {
  const int64_t nb = (n + block - 1) / block;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < nb; ++b) f(b * block, std::min(n, (b + 1) * block));
}

// x[N, C] rounded to bf16 (nearest even), each row padded with zeros to Cp >= C columns, and
// zero rows after them up to Np >= N.
std::vector<uint16_t> rows_to_bf16(const float* x, int64_t N, int64_t C, int64_t Cp, int64_t Np = 0) {
  std::vector<uint16_t> x16(static_cast<size_t>(std::max(N, Np) * Cp), 0);
  if (Cp == C)
    convert_to_bf16(x16.data(), x, N * C);
  else
    for (int64_t n = 0; n < N; ++n) convert_to_bf16(x16.data() + n * Cp, x + n * C, C);
  return x16;
}

// Few rows (decode): threads split the chunks of input rows, each sweeping its contiguous block
// of W into that chunk's partials (`chunk(part, c0, c1)`, part [N, ld]), then, after a barrier,
// the columns, adding the partials up (`combine(parts, chunks, j0, j1)` for the blocks of
// `block` columns [j0, j1) ⊂ [0, ld)). The partials live in a buffer of the calling thread,
// reused from call to call (decode makes a hundred calls a token).
template <typename Chunk, typename Combine>
void stream_in_chunks(int64_t N, int64_t C, int64_t ld, int64_t block, const Chunk& chunk, const Combine& combine) {
  thread_local std::vector<float> buffer;
  const int64_t chunks = (C + kChunkRows - 1) / kChunkRows;
  if (buffer.size() < size_t(chunks * N * ld)) buffer.resize(size_t(chunks * N * ld));
  float* parts = buffer.data();
#pragma omp parallel
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    for (int64_t k = chunks * t / nt; k < chunks * (t + 1) / nt; ++k)
      chunk(parts + k * N * ld, k * kChunkRows, std::min(C, (k + 1) * kChunkRows));
#pragma omp barrier
    const int64_t blocks = (ld + block - 1) / block;
    const int64_t b0 = blocks * t / nt, b1 = blocks * (t + 1) / nt;
    if (b1 > b0) combine(parts, chunks, b0 * block, std::min(ld, b1 * block));
  }
}

template <typename W>
void rows_matmul_impl(float* out, const float* x, const W* w, const float* bias, int64_t N, int64_t C, int64_t OC) {
  if constexpr (std::is_same_v<W, uint16_t>) {
    if (rows_amx::tiles(C)) {
      rows_amx::plain_matmul(out, rows_to_bf16(x, N, C, C, (N + 15) / 16 * 16).data(), w, bias, N, C, OC);
      return;
    }
    if (rows_bf16::dot_products()) {  // the rows padded to an even width for the pairs
      const int64_t Cp = C + (C & 1);
      const std::vector<uint16_t> x16 = rows_to_bf16(x, N, C, Cp);
      if (N <= kStreamRows) {
        const int64_t OCp = (OC + 63) / 64 * 64;
        stream_in_chunks(
            N, C, OCp, 64,
            [&](float* part, int64_t c0, int64_t c1) {
              rows_bf16::stream_chunk(part, OCp, x16.data(), Cp, w, N, C, OC, c0, c1);
            },
            [&](const float* parts, int64_t chunks, int64_t j0, int64_t j1) {
              rows_bf16::stream_combine(out, parts, OCp, chunks, N, OC, bias, j0, j1);
            });
        return;
      }
      in_fixed_blocks(OC, kColBlock, [&](int64_t j0, int64_t j1) {
        rows_bf16::fwd_rows(out, x16.data(), Cp, w, bias, N, C, OC, j0, j1);
      });
      return;
    }
  }
  const Isa isa = kernel_isa();
  const auto rows = isa >= Isa::Avx512 ? fwd_rows_avx512<W> : isa == Isa::Avx2 ? fwd_rows_avx2<W> : fwd_rows_generic<W>;
  if (isa >= Isa::Avx512 && N <= kStreamRows) {
    stream_in_chunks(
        N, C, OC, 16,
        [&](float* part, int64_t c0, int64_t c1) {
          fwd_stream_chunk_avx512(part, x, w, N, C, OC, c0, c1);
        },
        [&](const float* parts, int64_t chunks, int64_t j0, int64_t j1) {
          fwd_stream_combine_avx512(out, parts, chunks, N, OC, bias, j0, j1);
        });
    return;
  }
  in_fixed_blocks(OC, kColBlock, [&](int64_t j0, int64_t j1) { rows(out, x, w, bias, N, C, OC, j0, j1); });
}

void check_panels_supported(Precision p) {
  WAFER_CHECK(rows_panels_supported(p), "[rows_matmul] ",
              p == Precision::BF16 ? "bf16 panels need AVX512-BF16 and" : "fp32 panels need",
              " the AVX-512 kernels; found ", isa_name(kernel_isa()));
}

void rows_matmul_panels(float* out, const float* x, const float* panels, const float* bias, int64_t N, int64_t C,
                        int64_t OC) {
  check_panels_supported(Precision::F32);
  in_fixed_blocks(OC, kColBlock, [&](int64_t j0, int64_t j1) {
    fwd_panel_rows_avx512(out, x, panels, bias, N, C, OC, j0, j1);
  });
}

void rows_matmul_panels(float* out, const float* x, const uint16_t* panels, const float* bias, int64_t N, int64_t C,
                        int64_t OC) {
  check_panels_supported(Precision::BF16);
  if (rows_amx::tiles(C)) {
    rows_amx::panel_matmul(out, rows_to_bf16(x, N, C, C, (N + 15) / 16 * 16).data(), panels, bias, N, C, OC);
    return;
  }
  const int64_t Cp = C + (C & 1);
  const std::vector<uint16_t> x16 = rows_to_bf16(x, N, C, Cp);
  in_fixed_blocks(OC, kColBlock, [&](int64_t j0, int64_t j1) {
    rows_bf16::panel_rows(out, x16.data(), Cp, panels, bias, N, C, OC, j0, j1);
  });
}

template <typename W>
void rows_head_impl(float* out, const float* x, const W* w, int64_t N, int64_t C, int64_t V, float scale) {
  if constexpr (std::is_same_v<W, uint16_t>) {
    if (rows_amx::tiles(C)) {
      rows_amx::head(out, rows_to_bf16(x, N, C, C).data(), w, N, C, V, scale);
      return;
    }
    if (rows_bf16::dot_products()) {
      const std::vector<uint16_t> x16 = rows_to_bf16(x, N, C, C);
      in_fixed_blocks(V, kVocabBlock, [&](int64_t v0, int64_t v1) {
        rows_bf16::head_rows(out, x16.data(), w, N, C, V, v0, v1, scale);
      });
      return;
    }
  }
  const Isa isa = kernel_isa();
  const auto rows =
      isa >= Isa::Avx512 ? head_rows_avx512<W> : isa == Isa::Avx2 ? head_rows_avx2<W> : head_rows_generic<W>;
  in_fixed_blocks(V, kVocabBlock, [&](int64_t v0, int64_t v1) { rows(out, x, w, N, C, V, v0, v1, scale); });
}

}  // namespace

void rows_matmul(float* out, const float* inp, WeightView w, const float* bias, int64_t N, int64_t C, int64_t OC) {
  WAFER_CHECK(N >= 0 && C > 0 && OC > 0, "[rows_matmul] expected positive sizes, found N=", N, " C=", C, " OC=", OC);
  if (N == 0) return;
  if (w.quant)  // batch-invariant too: each row's products do not depend on the other rows
    matmul_forward(out, inp, w, bias, N, C, OC);
  else if (w.bf16_panels)
    rows_matmul_panels(out, inp, w.bf16_panels, bias, N, C, OC);
  else if (w.f32_panels)
    rows_matmul_panels(out, inp, w.f32_panels, bias, N, C, OC);
  else if (w.bf16)
    rows_matmul_impl(out, inp, w.bf16, bias, N, C, OC);
  else
    rows_matmul_impl(out, inp, w.f32, bias, N, C, OC);
}

void rows_matmul_transposed(float* out, const float* inp, WeightView w, int64_t N, int64_t C, int64_t V, float scale) {
  WAFER_CHECK(N >= 0 && C > 0 && V > 0, "[rows_matmul] expected positive sizes, found N=", N, " C=", C, " V=", V);
  WAFER_CHECK(!w.bf16_panels && !w.f32_panels, "[rows_matmul] the head is never held in panels");
  if (N == 0) return;
  if (w.quant)
    matmul_forward_transposed(out, inp, w, N, C, V, scale);
  else if (w.bf16)
    rows_head_impl(out, inp, w.bf16, N, C, V, scale);
  else
    rows_head_impl(out, inp, w.f32, N, C, V, scale);
}

bool rows_panels_supported(Precision p) {
  return p == Precision::BF16 ? rows_bf16::dot_products() : kernel_isa() >= Isa::Avx512;
}

int64_t rows_panel_elems(Precision p, int64_t C, int64_t OC) {
  return p == Precision::BF16 ? rows_bf16::panel_elems(C, OC) : C * ((OC + 63) / 64 * 64);
}

void pack_rows_panels(uint16_t* panels, const uint16_t* w, int64_t C, int64_t OC) {
  check_panels_supported(Precision::BF16);
  rows_bf16::pack_panels(panels, w, C, OC);
}

void pack_rows_panels(float* panels, const float* w, int64_t C, int64_t OC) {
  check_panels_supported(Precision::F32);
  for (int64_t j = 0; j < OC; j += 64)
    for (int64_t c = 0; c < C; ++c, panels += 64) {
      const int64_t n = std::min<int64_t>(64, OC - j);
      std::copy(w + c * OC + j, w + c * OC + j + n, panels);
      std::fill(panels + n, panels + 64, 0.0f);
    }
}

}  // namespace wafer
