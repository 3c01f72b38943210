// kernels/cpu/quant_matmul.cpp: x · Wᵀ with q8_0 / q4_0 / q4_K / q6_K weights (llama.cpp's scheme).
//
// 1. Each row of x is quantized once per call to int8 with fp32 scales (ActRows below), in an
//    order that lets a 64-byte load meet the weight bytes it multiplies, plus the sum of every 32
//    quantized values (16 for q6_K; the q4_0 and q6_K offsets and the q4_K mins are applied
//    through those sums).
// 2. Per weight block the dot product is an exact int32 (any ISA gets the same integer):
//      q8_0:  Σ w·x                         (AVX: |w| times x with w's sign, as u8 · s8)
//      q4_0:  Σ q·x - 8·Σx, q in [0, 15]    (the nibbles are already u8)
//      q4_K:  sumi = Σ_s sc[s]·Σ q·x over sub-block s, summ = Σ_s m[s]·Σx over s
//      q6_K:  sumi = Σ_s sc[s]·Σ q·x - 32·Σ_s sc[s]·Σx over the 16 sub-blocks, q in [0, 63]
// 3. The float part is the same operations in the same order on every path, without fused
//    multiply-adds (fp-contract=off below), so the paths agree bit for bit:
//      q8_0, q4_0: block b adds (d_w·d_x)·isum into lane b mod 16 of 16 partial sums (one AVX-512
//                  register), which end in a fixed tree: lane k += lane k+8, k+4, k+2, k+1.
//      q4_K:       one scalar sum over super-blocks in order of d_x·(d·sumi - dmin·summ).
//      q6_K:       the same of d_x·(d·sumi).
// Paths: AVX512-VNNI (vpdpbusd, vpdpwssd), AVX2 (vpmaddubsw + vpmaddwd), and portable C, picked
// from kernel_isa(). Threads split the weight rows; each streams its share once per tile of rows.
// With N ≥ 4 the AVX-512 and AVX2 kernels take 4 activation rows per pass over a weight row (the
// weight side, unpacking and scales, done once), each row computed with the same operations as
// alone.
#pragma GCC optimize("fp-contract=off")
#include "kernels/cpu/quant_matmul.h"

// GCC 12 reports its own AVX-512 intrinsics' _mm512_undefined_*() as maybe-uninitialized
// (a false positive, GCC PR 105593); the warning is silenced inside the header only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_matmul_amx.h"

namespace wafer {

namespace {

// ---- quantized activations ----

// Activation rows quantized for one weight type, row n at q + n·q_stride etc. Layouts of q:
//   q8_0: natural order.
//   q4_0: per group of 4 blocks (128 bytes): values 0-15 of the 4 blocks, then values 16-31, so
//         one 64-byte load meets the low nibbles of 4 blocks' qs and the next one the high ones.
//   q4_K: per super-block the 8 sub-blocks of 32 in order 0 2 1 3 4 6 5 7, the order of the low
//         and high nibbles of qs[0, 64) and qs[64, 128).
//   q6_K: natural order (the low and high nibbles of ql[0, 64) are values 0-63 and 64-127).
// q and d are zero-padded to whole groups of 16 blocks (q8_0, q4_0) so 16 lanes can be loaded.
struct ActRows {
  int64_t q_stride = 0, d_stride = 0, s_stride = 0;
  int8_t* q = nullptr;   // [N, q_stride]
  float* d = nullptr;    // [N, d_stride]: scale per block of 32 (q8_0, q4_0) or 256 (q4_K, q6_K)
  int32_t* s = nullptr;  // [N, s_stride]: Σ q over each 32 values (q6_K: 16) in natural order
};

constexpr int kQ4KPos[8] = {0, 2, 1, 3, 4, 6, 5, 7};  // position of sub-block s (self-inverse)

int64_t act_block(QuantType t) { return t == QuantType::Q4_K || t == QuantType::Q6_K ? 256 : 32; }
int64_t act_sum_span(QuantType t) { return t == QuantType::Q6_K ? 16 : 32; }  // values per entry of s
int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Byte offset in an activation row of value c (natural index).
inline int64_t act_index(QuantType t, int64_t c) {
  if (t == QuantType::Q8_0 || t == QuantType::Q6_K) return c;
  if (t == QuantType::Q4_0) {
    const int64_t b = c / 32, j = c % 32;
    return 128 * (b / 4) + (j >= 16 ? 64 : 0) + 16 * (b % 4) + (j & 15);
  }
  return 256 * (c / 256) + 32 * kQ4KPos[(c / 32) % 8] + c % 32;
}

void act_strides(QuantType t, int64_t cols, ActRows* a) {
  const int64_t nb = cols / act_block(t);
  const bool super = act_block(t) == 256;
  a->q_stride = super ? cols : 32 * round_up(nb, 16);
  a->d_stride = super ? nb : round_up(nb, 16);
  a->s_stride = super ? cols / act_sum_span(t) : round_up(nb, 16);
}

// One row: d = max|x| / 127 per block, q = round(x / d) with ties away from zero (std::roundf,
// as ggml), written branch-free: truncate, then step by one where the exact remainder is ≥ 1/2.
WAFER_KERNEL void quantize_act_row(QuantType t, const float* x, int64_t cols, int8_t* q, float* d, int32_t* s,
                                   const ActRows& a) {
  std::memset(q, 0, size_t(a.q_stride));
  std::fill(d, d + a.d_stride, 0.0f);
  std::fill(s, s + a.s_stride, 0);
  const int64_t blk = act_block(t), span = act_sum_span(t);
  for (int64_t b = 0; b < cols / blk; ++b) {
    float amax = 0;  // the vector loops below give the scalar loops' values: max, truncation and compares are exact
#pragma omp simd reduction(max : amax)
    for (int64_t j = 0; j < blk; ++j) amax = std::max(amax, std::fabs(x[b * blk + j]));
    const float db = amax / 127, id = db != 0 ? 1.0f / db : 0.0f;
    d[b] = db;
    for (int64_t c = b * blk; c < (b + 1) * blk; c += 16) {  // 16 values stay side by side in every layout
      int8_t* dst = q + act_index(t, c);
      int32_t sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int j = 0; j < 16; ++j) {
        const float v = x[c + j] * id;  // |v| <= 127
        int i = int(v);
        const float frac = v - float(i);  // exact
        i += int(frac >= 0.5f) - int(frac <= -0.5f);
        dst[j] = int8_t(i);
        sum += i;
      }
      s[c / span] += sum;
    }
  }
}

// ---- shared pieces ----

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The 8 six-bit scales and mins of a q4_K block (q4_k_scale_min for all s at once, four bytes
// per word): bytes 0-3 of sc/m are s = 0..3, bytes 4-7 are s = 4..7.
inline void q4_k_unpack(const uint8_t* scales, uint32_t sc[2], uint32_t m[2]) {
  const uint32_t u0 = load_u32(scales), u1 = load_u32(scales + 4), u2 = load_u32(scales + 8);
  sc[0] = u0 & 0x3f3f3f3fu;
  m[0] = u1 & 0x3f3f3f3fu;
  sc[1] = (u2 & 0x0f0f0f0fu) | (((u0 >> 6) & 0x03030303u) << 4);
  m[1] = ((u2 >> 4) & 0x0f0f0f0fu) | (((u1 >> 6) & 0x03030303u) << 4);
}

// The q4_K super-block term, identical on every path.
[[gnu::always_inline]] inline float q4_k_term(float dx, float d, float dmin, int32_t sumi, int32_t summ) {
  return dx * (d * float(sumi) - dmin * float(summ));
}

// The fixed tree over 16 lane sums: k += k+8, k += k+4, k += k+2, then 0 + 1.
inline float lanes_sum(float* acc) {
  for (int k = 0; k < 8; ++k) acc[k] += acc[k + 8];
  for (int k = 0; k < 4; ++k) acc[k] += acc[k + 4];
  for (int k = 0; k < 2; ++k) acc[k] += acc[k + 2];
  return acc[0] + acc[1];
}

// A row dot product: weight row w (nb blocks), one activation row (q, d, s).
using RowDot = float (*)(const uint8_t* w, const int8_t* q, const float* d, const int32_t* s, int64_t nb);
// Several at once: y[k] = the dot product of weight row w with activation row n0 + k, k < R (the
// kernel's row count: 4 in pick_dot4, 1 through one_row_avx2 and one_row_avx512).
using RowDot4 = void (*)(float* y, const uint8_t* w, const ActRows& a, int64_t n0, int64_t nb);

// One activation row (q, d, s) as ActRows, for a RowDot4 kernel of R = 1 (one_row_* below).
inline ActRows single_row(const int8_t* q, const float* d, const int32_t* s) {
  ActRows a;
  a.q = const_cast<int8_t*>(q), a.d = const_cast<float*>(d), a.s = const_cast<int32_t*>(s);
  return a;
}

// The cache lines of the `bytes` of weights 2 KiB past p, fetched while these are summed. A
// thread's weight rows are contiguous, so this runs on into its next rows. Decode on an Intel
// Xeon with AMX (2026-12-02, 111M, alternating runs): q8_0 145-153 -> 166-178 tokens/s, q4_0
// 177-188 -> 234-274, q4_k 179-180 -> 193-199; the rows of 768 inputs were read at 16.5 GB/s
// before, 19.4-20.6 after. On an AMD EPYC without AMX (2026-12-06, three alternating rounds of
// 5 repeats, off / on) it is within the noise: q8_0 269-304 / 270-299, q4_0 277-394 / 328-358,
// q4_k 279-369 / 276-362; 1 KiB and 4 KiB distances were worse there on every format (2026-12-02). On
// an AMD EPYC with AVX2 only (Zen 3, 2026-12-07, the AVX2 kernels: 111M's matrices alone, best of
// four alternating rounds, off / on) q4_0 305 / 320 tokens/s, q8_0 203 / 209. One distance for
// every machine keeps one code path.
inline void prefetch_ahead(const uint8_t* p, int64_t bytes) {
  for (int64_t k = 0; k < bytes; k += 64) _mm_prefetch(reinterpret_cast<const char*>(p + 2048 + k), _MM_HINT_T0);
}

// ---- portable C ----

float dot_q8_0_generic(const uint8_t* w, const int8_t* q, const float* d, const int32_t*, int64_t nb) {
  float acc[16] = {};
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = w + 34 * b;
    const int8_t* x = q + 32 * b;
    int32_t isum = 0;
    for (int j = 0; j < 32; ++j) isum += int8_t(blk[2 + j]) * x[j];
    acc[b & 15] += (f16_to_f32(load_u16(blk)) * d[b]) * float(isum);
  }
  return lanes_sum(acc);
}

float dot_q4_0_generic(const uint8_t* w, const int8_t* q, const float* d, const int32_t* s, int64_t nb) {
  float acc[16] = {};
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = w + 18 * b;
    const int8_t* lo = q + 128 * (b / 4) + 16 * (b % 4);  // values 0-15; 16-31 at lo + 64
    int32_t isum = 0;
    for (int j = 0; j < 16; ++j) isum += (blk[2 + j] & 15) * lo[j] + (blk[2 + j] >> 4) * lo[64 + j];
    isum -= 8 * s[b];
    acc[b & 15] += (f16_to_f32(load_u16(blk)) * d[b]) * float(isum);
  }
  return lanes_sum(acc);
}

float dot_q4_k_generic(const uint8_t* w, const int8_t* q, const float* d, const int32_t* s, int64_t nb) {
  float acc = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = w + 144 * b;
    const int8_t* x = q + 256 * b;
    int32_t sumi = 0, summ = 0;
    for (int sb = 0; sb < 8; ++sb) {
      uint8_t sc, m;
      q4_k_scale_min(sb, blk + 4, &sc, &m);
      const uint8_t* qs = blk + 16 + 32 * (sb / 2);
      const int shift = 4 * (sb % 2);
      const int8_t* xs = x + 32 * kQ4KPos[sb];
      int32_t isum = 0;
      for (int l = 0; l < 32; ++l) isum += ((qs[l] >> shift) & 15) * xs[l];
      sumi += sc * isum;
      summ += m * s[8 * b + sb];
    }
    acc += q4_k_term(d[b], f16_to_f32(load_u16(blk)), f16_to_f32(load_u16(blk + 2)), sumi, summ);
  }
  return acc;
}

// The q6_K super-block term, identical on every path.
[[gnu::always_inline]] inline float q6_k_term(float dx, float d, int32_t sumi) { return dx * (d * float(sumi)); }

// The six-bit value i (0..255) of a q6_K block, in [0, 63] (the layout in quant.h).
inline int q6_k_value(const uint8_t* blk, int i) {
  const int h = i / 128, k = i % 128 / 32, l = i % 32;
  const int ql = blk[64 * h + 32 * (k % 2) + l], qh = blk[128 + 32 * h + l];
  return (k >= 2 ? ql >> 4 : ql & 15) | ((qh >> (2 * k)) & 3) << 4;
}

float dot_q6_k_generic(const uint8_t* w, const int8_t* q, const float* d, const int32_t* s, int64_t nb) {
  float acc = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = w + 210 * b;
    const int8_t* x = q + 256 * b;
    const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
    int32_t sumi = 0;
    for (int sb = 0; sb < 16; ++sb) {
      int32_t isum = 0;
      for (int l = 0; l < 16; ++l) isum += q6_k_value(blk, 16 * sb + l) * x[16 * sb + l];
      sumi += sc[sb] * (isum - 32 * s[16 * b + sb]);
    }
    acc += q6_k_term(d[b], f16_to_f32(load_u16(blk + 208)), sumi);
  }
  return acc;
}

// ---- AVX2 ----

#define WAFER_QAVX2 gnu::target("avx2,fma,f16c")

// [Σp[0], ..., Σp[7]]: the int32 lane sums of 8 vectors.
[[WAFER_QAVX2]] inline __m256i hsum8_epi32(const __m256i* p) {
  const __m256i h0 = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
  const __m256i h1 = _mm256_hadd_epi32(_mm256_hadd_epi32(p[4], p[5]), _mm256_hadd_epi32(p[6], p[7]));
  return _mm256_add_epi32(_mm256_permute2x128_si256(h0, h1, 0x20), _mm256_permute2x128_si256(h0, h1, 0x31));
}
[[WAFER_QAVX2]] inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// lanes_sum of the 16 lanes lo (0-7) and hi (8-15), the same additions in registers.
[[WAFER_QAVX2]] inline float lanes_sum_avx2(__m256 lo, __m256 hi) {
  const __m256 s8 = _mm256_add_ps(lo, hi);                                                 // k += k + 8
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));  // k += k + 4
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));                                 // k += k + 2
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));                               // 0 + 1
}

// Eight int32 partial sums of one block's integer dot product.
[[WAFER_QAVX2]] inline __m256i block_q8_0_avx2(const uint8_t* blk, const int8_t* x) {
  const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  // |w| ≤ 128 as u8 times ±x: pairs stay within int16 (2 · 128 · 127 < 2^15).
  const __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(v, w));
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}
[[WAFER_QAVX2]] inline __m256i block_q4_0_avx2(const uint8_t* blk, const int8_t* lo) {
  const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
  const __m256i w = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(qs, 4), qs), _mm256_set1_epi8(15));
  const __m256i x = _mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(lo + 64)),
                                     _mm_loadu_si128(reinterpret_cast<const __m128i*>(lo)));
  return _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1));
}

// Σ q·x of 8 q4_0 blocks (the first at a multiple of 4) with each of R activation rows (row r at
// x + r·xs), two blocks per register: the low parts of blocks 2j and 2j + 1 lie side by side in
// the grouped activations, and so do the high parts. Each int16 lane of lo + hi sums 4 products
// ≤ 15 · 127, so 4 lanes still fit int16 (30,480): two word-wise horizontal adds before the one
// widening vpmaddwd. The nibbles are unpacked once for all R.
template <int R>
[[WAFER_QAVX2]] inline void sums8_q4_0_avx2(__m256i* isum, const uint8_t* w, const int8_t* x, int64_t xs) {
  const __m256i m4 = _mm256_set1_epi8(15);
  __m256i h[R][2];
  for (int j = 0; j < 4; j += 2) {
    __m256i p[R][2];
    for (int k = 0; k < 2; ++k) {
      const uint8_t* blk = w + 36 * (j + k) + 2;
      const __m256i v = _mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 18)),
                                         _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk)));
      const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
      for (int r = 0; r < R; ++r) {
        const int8_t* xl = x + r * xs + 128 * (j / 2) + 32 * k;
        p[r][k] = _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xl))),
                                   _mm256_maddubs_epi16(hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xl + 64))));
      }
    }
    for (int r = 0; r < R; ++r) h[r][j / 2] = _mm256_hadd_epi16(p[r][0], p[r][1]);  // lane h of p: block 2(j + k) + h
  }
  for (int r = 0; r < R; ++r) {
    const __m256i s = _mm256_madd_epi16(_mm256_hadd_epi16(h[r][0], h[r][1]), _mm256_set1_epi16(1));
    isum[r] = _mm256_permutevar8x32_epi32(s, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));  // element 4h + j: block 2j + h
  }
}

// Σ w·x of 8 consecutive q8_0 blocks with each of R activation rows; |w| once for all R.
template <int R>
[[WAFER_QAVX2]] inline void sums8_q8_0_avx2(__m256i* isum, const uint8_t* w, const int8_t* x, int64_t xs) {
  __m256i h[R][4];  // hadd pairs of blocks (2k, 2k + 1)
  for (int k = 0; k < 8; k += 2) {
    __m256i p[R][2];
    for (int i = 0; i < 2; ++i) {
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 34 * (k + i) + 2));
      const __m256i aw = _mm256_abs_epi8(wv);
      for (int r = 0; r < R; ++r) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + r * xs + 32 * (k + i)));
        // |w| ≤ 128 as u8 times ±x: pairs stay within int16 (2 · 128 · 127 < 2^15).
        p[r][i] = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(v, wv)), _mm256_set1_epi16(1));
      }
    }
    for (int r = 0; r < R; ++r) h[r][k / 2] = _mm256_hadd_epi32(p[r][0], p[r][1]);
  }
  for (int r = 0; r < R; ++r) {  // hsum8_epi32's tree, its first level done above
    const __m256i h0 = _mm256_hadd_epi32(h[r][0], h[r][1]), h1 = _mm256_hadd_epi32(h[r][2], h[r][3]);
    isum[r] = _mm256_add_epi32(_mm256_permute2x128_si256(h0, h1, 0x20), _mm256_permute2x128_si256(h0, h1, 0x31));
  }
}

// The fp16 scales of 8 blocks kStride bytes apart, as fp32, gathered word by word into a
// register: eight 2-byte stores read back as one 16-byte load miss store forwarding, which on an
// AMD EPYC (Zen 3) stalled long enough to take 45% of the q8_0 kernel's time.
template <int kStride>
[[WAFER_QAVX2]] inline __m256 scales8_avx2(const uint8_t* w) {
  // two chains of four inserts (the word index must be a constant at every optimization level)
  __m128i lo = _mm_cvtsi32_si128(load_u16(w)), hi = _mm_cvtsi32_si128(load_u16(w + 4 * kStride));
  lo = _mm_insert_epi16(lo, load_u16(w + kStride), 1);
  hi = _mm_insert_epi16(hi, load_u16(w + 5 * kStride), 1);
  lo = _mm_insert_epi16(lo, load_u16(w + 2 * kStride), 2);
  hi = _mm_insert_epi16(hi, load_u16(w + 6 * kStride), 2);
  lo = _mm_insert_epi16(lo, load_u16(w + 3 * kStride), 3);
  hi = _mm_insert_epi16(hi, load_u16(w + 7 * kStride), 3);
  return _mm256_cvtph_ps(_mm_unpacklo_epi64(lo, hi));
}

// Integer sums of blocks [i0, i0 + 8) (those < nb; the others 0, as their scales) with each of
// R activation rows (row r at q + r·qs, its block sums at s + r·ss), and the blocks' fp16 scales
// as fp32; i0 is a multiple of 8.
template <bool kQ8, int R>
[[WAFER_QAVX2]] inline void sums8_avx2(__m256i* isum, __m256* dw, const uint8_t* w, const int8_t* q, int64_t qs,
                                       const int32_t* s, int64_t ss, int64_t i0, int64_t nb) {
  constexpr int kStride = kQ8 ? 34 : 18;
  if (i0 + 8 <= nb) {
    if constexpr (kQ8)
      sums8_q8_0_avx2<R>(isum, w + 34 * i0, q + 32 * i0, qs);
    else
      sums8_q4_0_avx2<R>(isum, w + 18 * i0, q + 32 * i0, qs);
    *dw = scales8_avx2<kStride>(w + kStride * i0);
  } else {  // the end of a row whose length is not a multiple of 256
    alignas(16) uint16_t dh[8] = {};
    for (int k = 0; k < 8 && i0 + k < nb; ++k) dh[k] = load_u16(w + kStride * (i0 + k));
    *dw = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(dh)));
    for (int r = 0; r < R; ++r) {
      __m256i p[8];
      for (int k = 0; k < 8; ++k) {
        const int64_t i = i0 + k;
        const int8_t* qr = q + r * qs;
        p[k] = _mm256_setzero_si256();
        if (i < nb)
          p[k] = kQ8 ? block_q8_0_avx2(w + 34 * i, qr + 32 * i)
                     : block_q4_0_avx2(w + 18 * i, qr + 128 * (i / 4) + 16 * (i % 4));
      }
      isum[r] = hsum8_epi32(p);
    }
  }
  if (!kQ8)
    for (int r = 0; r < R; ++r)
      isum[r] = _mm256_sub_epi32(isum[r], _mm256_slli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + r * ss + i0)), 3));
}

// acc[r] += (d_w · d_x) · isum for blocks [i0, i0 + 8) and activation row r < R of a (rows n0 ..):
// lanes i0 mod 16 .. of each row's 16 partial sums.
template <bool kQ8, int R>
[[WAFER_QAVX2]] inline void add8_avx2(__m256* acc, const uint8_t* w, const ActRows& a, int64_t n0, int64_t i0,
                                      int64_t nb) {
  __m256i isum[R];
  __m256 dw;
  sums8_avx2<kQ8, R>(isum, &dw, w, a.q + n0 * a.q_stride, a.q_stride, a.s + n0 * a.s_stride, a.s_stride, i0, nb);
  for (int r = 0; r < R; ++r) {
    const __m256 scale = _mm256_mul_ps(dw, _mm256_loadu_ps(a.d + (n0 + r) * a.d_stride + i0));
    acc[r] = _mm256_add_ps(acc[r], _mm256_mul_ps(scale, _mm256_cvtepi32_ps(isum[r])));
  }
}

// y[r] = the dot product of weight row w with activation row r < R of a (rows n0 ..), each
// computed exactly as alone. Blocks go eight at a time, so a row of 768 values (24 blocks) costs
// no empty half-group.
template <bool kQ8, int R>
[[WAFER_QAVX2]] void dot_q80_q40_avx2(float* y, const uint8_t* w, const ActRows& a, int64_t n0, int64_t nb) {
  constexpr int kStride = kQ8 ? 34 : 18;
  __m256 acc[2][R];  // lanes 0-7, 8-15 of each row
  for (int r = 0; r < R; ++r) acc[0][r] = acc[1][r] = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 16 <= nb; b += 16) {
    prefetch_ahead(w + kStride * b, 16 * kStride);
    add8_avx2<kQ8, R>(acc[0], w, a, n0, b, nb);
    add8_avx2<kQ8, R>(acc[1], w, a, n0, b + 8, nb);
  }
  for (; b < nb; b += 8) {
    prefetch_ahead(w + kStride * b, 8 * kStride);
    add8_avx2<kQ8, R>(acc[(b / 8) % 2], w, a, n0, b, nb);
  }
  for (int r = 0; r < R; ++r) y[r] = lanes_sum_avx2(acc[0][r], acc[1][r]);
}

// y[r] = the dot product of q4_K weight row w with activation row r < R of a (rows n0 ..), each
// computed exactly as alone; the nibbles and scales of a super-block are unpacked once for all R.
template <int R>
[[WAFER_QAVX2]] void dot_q4_k_avx2(float* y, const uint8_t* w, const ActRows& a, int64_t n0, int64_t nb) {
  const __m256i m4 = _mm256_set1_epi8(15);
  float acc[R] = {};
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = w + 144 * b;
    if (b % 4 == 0) prefetch_ahead(blk, 4 * 144);
    const int8_t* x = a.q + n0 * a.q_stride + 256 * b;
    uint32_t scw[2], mw[2];
    q4_k_unpack(blk + 4, scw, mw);
    uint8_t sc[8], m[8];
    std::memcpy(sc, scw, 8);
    std::memcpy(m, mw, 8);
    __m256i isum[R];
    for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
    for (int g = 0; g < 4; ++g) {  // qs group g: sub-block 2g in the low nibbles, 2g + 1 in the high
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16 + 32 * g));
      const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
      const __m256i sc_lo = _mm256_set1_epi16(sc[2 * g]), sc_hi = _mm256_set1_epi16(sc[2 * g + 1]);
      for (int r = 0; r < R; ++r) {
        const int8_t* xr = x + r * a.q_stride;
        const __m256i xl = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + 32 * kQ4KPos[2 * g]));
        const __m256i xh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + 32 * kQ4KPos[2 * g + 1]));
        // pairs ≤ 2 · 15 · 128 in int16, then times the scale (≤ 63) into int32
        isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(_mm256_maddubs_epi16(lo, xl), sc_lo));
        isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(_mm256_maddubs_epi16(hi, xh), sc_hi));
      }
    }
    const float dw = _cvtsh_ss(load_u16(blk)), dmin = _cvtsh_ss(load_u16(blk + 2));
    for (int r = 0; r < R; ++r) {
      const int32_t* sr = a.s + (n0 + r) * a.s_stride + 8 * b;
      int32_t summ = 0;
      for (int sb = 0; sb < 8; ++sb) summ += m[sb] * sr[sb];
      acc[r] += q4_k_term(a.d[(n0 + r) * a.d_stride + b], dw, dmin, hsum_epi32(isum[r]), summ);
    }
  }
  for (int r = 0; r < R; ++r) y[r] = acc[r];
}

// y[r] = the dot product of q6_K weight row w with activation row r < R of a (rows n0 ..), each
// computed exactly as alone; the six-bit values of a super-block are assembled once for all R.
template <int R>
[[WAFER_QAVX2]] void dot_q6_k_avx2(float* y, const uint8_t* w, const ActRows& a, int64_t n0, int64_t nb) {
  const __m256i m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(3);
  float acc[R] = {};
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = w + 210 * b;
    if (b % 4 == 0) prefetch_ahead(blk, 4 * 210);
    const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
    const int8_t* x = a.q + n0 * a.q_stride + 256 * b;
    __m256i isum[R];
    for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * h));
      const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * h + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h));
      // q6[k]: values 128h + 32k + l (l < 32), a low nibble and its two high bits (bits ≤ 3 stay
      // inside their byte through the 16-bit shifts)
      const __m256i q6[4] = {
          _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4)),
          _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4))};
      for (int k = 0; k < 4; ++k) {
        const int sb = 8 * h + 2 * k;  // values 0-15 of q6[k] are sub-block sb, 16-31 sb + 1
        const __m256i scv = _mm256_set_m128i(_mm_set1_epi16(sc[sb + 1]), _mm_set1_epi16(sc[sb]));
        for (int r = 0; r < R; ++r) {
          const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + r * a.q_stride + 128 * h + 32 * k));
          // pairs ≤ 2 · 63 · 127 in int16, then times the scale (|sc| ≤ 128) into int32
          isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(_mm256_maddubs_epi16(q6[k], xv), scv));
        }
      }
    }
    const float dw = _cvtsh_ss(load_u16(blk + 208));
    for (int r = 0; r < R; ++r) {
      const int32_t* sr = a.s + (n0 + r) * a.s_stride + 16 * b;
      int32_t offset = 0;
      for (int sb = 0; sb < 16; ++sb) offset += sc[sb] * sr[sb];
      acc[r] += q6_k_term(a.d[(n0 + r) * a.d_stride + b], dw, hsum_epi32(isum[r]) - 32 * offset);
    }
  }
  for (int r = 0; r < R; ++r) y[r] = acc[r];
}

// A kernel of R = 1 as a RowDot, the kernel inlined: the adapter needs the kernel's own target,
// as an adapter without one (a call into the kernel per row) ran the kernels 10% slower on one
// thread of the Zen 3 (2026-12-07, 768 x 768 matrices in L2, every format).
template <RowDot4 kKernel>
[[WAFER_QAVX2, gnu::flatten]] float one_row_avx2(const uint8_t* w, const int8_t* q, const float* d, const int32_t* s,
                                                 int64_t nb) {
  float y;
  kKernel(&y, w, single_row(q, d, s), 0, nb);
  return y;
}

// ---- AVX-512 with VNNI ----

#define WAFER_QVNNI gnu::target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")

[[WAFER_QVNNI]] inline __m512i load64(const void* p) { return _mm512_loadu_si512(p); }


// Block sums in natural order from q[m] whose 128-bit lane k holds 4 partial sums of block
// 4m + k: a 4 × 4 transpose-and-add within each lane, then one permute.
[[WAFER_QVNNI]] inline __m512i reduce_4x4(const __m512i* q) {
  const __m512i t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(q[0], q[1]), _mm512_unpackhi_epi32(q[0], q[1]));
  const __m512i t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(q[2], q[3]), _mm512_unpackhi_epi32(q[2], q[3]));
  const __m512i u = _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
  // u element 4k + m is block 4m + k
  return _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), u);
}

// The fp16 scales of 16 blocks, as fp32 (a vpgatherdd is slower on Zen 4 than either of these).
// q8_0: 16 scalar loads (measured faster than register loads and word permutes).
[[WAFER_QVNNI]] inline __m512 scales16_q8_0(const uint8_t* w) {
  alignas(32) uint16_t h[16];
  for (int k = 0; k < 16; ++k) h[k] = load_u16(w + 34 * k);
  return _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(h)));
}
// q4_0: block k's d is 16-bit word 9k of the 288 bytes: k < 8 in bytes [0, 128), 8 <= k < 15 in
// [128, 256), k = 15 (word 135) in [256, 288). Register loads (L1 hits) and word permutes.
[[WAFER_QVNNI]] inline __m512 scales16_q4_0(const uint8_t* w) {
  alignas(64) static constexpr int16_t kIdx[32] = {0, 9, 18, 27, 36, 45, 54, 63, 8, 17, 26, 35, 44, 53, 62, 7};
  const __m512i idx = _mm512_load_si512(kIdx);
  const __m512i lo = _mm512_permutex2var_epi16(load64(w), idx, load64(w + 64));
  const __m512i mid = _mm512_permutex2var_epi16(load64(w + 128), idx, load64(w + 192));
  const __m512i hi = _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 256)));
  __m512i v = _mm512_mask_blend_epi16(0x7f00, lo, mid);
  v = _mm512_mask_permutexvar_epi16(v, 0x8000, idx, hi);
  return _mm512_cvtph_ps(_mm512_castsi512_si256(v));
}

// Integer sums of 16 q8_0 blocks with each of R activation rows (row r at x + r·xs): two blocks
// per register, |w| · (x with w's sign) by vpdpbusd; the weight side is prepared once for all R.
template <int R>
[[WAFER_QVNNI]] inline void sums16_q8_0(__m512i* isum, const uint8_t* w, const int8_t* x, int64_t xs) {
  __m512i q[R][4];
  for (int m = 0; m < 4; ++m) {
    __m512i aw[2];
    __mmask64 neg[2];
    for (int h = 0; h < 2; ++h) {
      const uint8_t* blk = w + 34 * (4 * m + 2 * h);
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 36));
      const __m512i wv = _mm512_inserti64x4(_mm512_zextsi256_si512(w0), w1, 1);
      aw[h] = _mm512_abs_epi8(wv);
      neg[h] = _mm512_movepi8_mask(wv);
    }
    for (int r = 0; r < R; ++r) {
      __m512i p[2];
      for (int h = 0; h < 2; ++h) {
        const __m512i xv = load64(x + r * xs + 32 * (4 * m + 2 * h));
        const __m512i sx = _mm512_mask_sub_epi8(xv, neg[h], _mm512_setzero_si512(), xv);
        p[h] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), aw[h], sx);
      }
      // p[h] lanes: [blk.lo, blk.hi, blk+1.lo, blk+1.hi] → q[m] lanes: blocks 4m .. 4m + 3
      q[r][m] = _mm512_add_epi32(_mm512_shuffle_i32x4(p[0], p[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_i32x4(p[0], p[1], _MM_SHUFFLE(3, 1, 3, 1)));
    }
  }
  for (int r = 0; r < R; ++r) isum[r] = reduce_4x4(q[r]);
}

// Integer sums of 16 q4_0 blocks: four blocks' qs per register against the grouped activations.
template <int R>
[[WAFER_QVNNI]] inline void sums16_q4_0(__m512i* isum, const uint8_t* w, const int8_t* x, int64_t xs, const int32_t* s,
                                        int64_t ss) {
  const __m512i m4 = _mm512_set1_epi8(15);
  __m512i q[R][4];
  for (int m = 0; m < 4; ++m) {
    const uint8_t* blk = w + 18 * 4 * m + 2;
    __m512i v = _mm512_zextsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk)));
    v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 18)), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 36)), 2);
    v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 54)), 3);
    const __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    for (int r = 0; r < R; ++r) {
      const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, load64(x + r * xs + 128 * m));
      q[r][m] = _mm512_dpbusd_epi32(p, hi, load64(x + r * xs + 128 * m + 64));
    }
  }
  for (int r = 0; r < R; ++r)
    isum[r] = _mm512_sub_epi32(reduce_4x4(q[r]), _mm512_slli_epi32(_mm512_loadu_si512(s + r * ss), 3));
}

[[WAFER_QVNNI]] inline float lanes_sum512(__m512 acc) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, acc);
  return lanes_sum(lanes);
}

// y[r] = the dot product of weight row w with activation row r < R of a (rows n0 ..), each
// computed exactly as alone (R > 1 shares the weight-side work: unpacking, signs, scales).
template <bool kQ8, int R>
[[WAFER_QVNNI]] void dot_q80_q40_avx512(float* y, const uint8_t* w, const ActRows& a, int64_t n0, int64_t nb) {
  constexpr int kStride = kQ8 ? 34 : 18;
  const int8_t* q = a.q + n0 * a.q_stride;
  const float* d = a.d + n0 * a.d_stride;
  const int32_t* s = a.s + n0 * a.s_stride;
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 16 <= nb; b += 16) {
    const uint8_t* wb = w + kStride * b;
    prefetch_ahead(wb, 16 * kStride);
    __m512i isum[R];
    if constexpr (kQ8)
      sums16_q8_0<R>(isum, wb, q + 32 * b, a.q_stride);
    else
      sums16_q4_0<R>(isum, wb, q + 32 * b, a.q_stride, s + b, a.s_stride);
    const __m512 dw = kQ8 ? scales16_q8_0(wb) : scales16_q4_0(wb);
    for (int r = 0; r < R; ++r) {
      const __m512 scale = _mm512_mul_ps(dw, _mm512_loadu_ps(d + r * a.d_stride + b));
      acc[r] = _mm512_add_ps(acc[r], _mm512_mul_ps(scale, _mm512_cvtepi32_ps(isum[r])));
    }
  }
  for (int r = 0; r < R; ++r) {
    if (b < nb) {  // the last < 16 blocks, one at a time (d is zero-padded to 16)
      __m256i isum[2];
      __m256 dw[2];
      for (int h = 0; h < 2; ++h)
        sums8_avx2<kQ8, 1>(&isum[h], &dw[h], w, q + r * a.q_stride, a.q_stride, s + r * a.s_stride, a.s_stride, b + 8 * h, nb);
      const __m512i is = _mm512_inserti64x4(_mm512_zextsi256_si512(isum[0]), isum[1], 1);
      const __m512 dv = _mm512_insertf32x8(_mm512_zextps256_ps512(dw[0]), dw[1], 1);
      const __m512 dx = _mm512_loadu_ps(d + r * a.d_stride + b);
      acc[r] = _mm512_add_ps(acc[r], _mm512_mul_ps(_mm512_mul_ps(dv, dx), _mm512_cvtepi32_ps(is)));
    }
    y[r] = lanes_sum512(acc[r]);
  }
}

// One q4_K super-block with each of R activation rows (row r at x + r·xs, sums at bs + r·ss):
// int32 vectors whose lanes add up to sumi (8 lanes) and summ. The weight side (nibbles, scales)
// is prepared once for all R.
template <int R>
[[WAFER_QVNNI]] inline void q4_k_sums_avx512(const uint8_t* blk, const int8_t* x, int64_t xs, const int32_t* bs,
                                             int64_t ss, __m256i* sumi, __m256i* summ) {
  const __m512i m4 = _mm512_set1_epi8(15);
  uint32_t sc[2], m[2];
  q4_k_unpack(blk + 4, sc, m);
  // The scales as int16, then per product below the scale of each of its 32 int16 lanes:
  // sub-blocks (0, 2), (1, 3), (4, 6), (5, 7), 16 lanes each.
  const __m512i scv = _mm512_zextsi128_si512(_mm_cvtepu8_epi16(_mm_set_epi32(0, 0, int(sc[1]), int(sc[0]))));
  const __m512i idx = _mm512_set_epi64(0x0002000200020002, 0x0002000200020002, 0x0002000200020002, 0x0002000200020002,
                                       0, 0, 0, 0);
  const __m512i one = _mm512_set1_epi16(1), four = _mm512_set1_epi16(4);
  const __m512i sc02 = _mm512_permutexvar_epi16(idx, scv), sc13 = _mm512_permutexvar_epi16(_mm512_add_epi16(idx, one), scv);
  const __m512i sc46 = _mm512_permutexvar_epi16(_mm512_add_epi16(idx, four), scv);
  const __m512i sc57 = _mm512_permutexvar_epi16(_mm512_add_epi16(idx, _mm512_add_epi16(one, four)), scv);
  const __m512i v0 = load64(blk + 16), v1 = load64(blk + 80);
  const __m512i q02 = _mm512_and_si512(v0, m4), q13 = _mm512_and_si512(_mm512_srli_epi16(v0, 4), m4);
  const __m512i q46 = _mm512_and_si512(v1, m4), q57 = _mm512_and_si512(_mm512_srli_epi16(v1, 4), m4);
  const __m256i mins = _mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, int(m[1]), int(m[0])));
  for (int r = 0; r < R; ++r) {
    const int8_t* xr = x + r * xs;
    // u8 · s8 pairs ≤ 2 · 15 · 128 in int16, then · scale pairs into int32 (vpdpwssd)
    __m512i t = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(q02, load64(xr)), sc02);
    t = _mm512_dpwssd_epi32(t, _mm512_maddubs_epi16(q13, load64(xr + 64)), sc13);
    t = _mm512_dpwssd_epi32(t, _mm512_maddubs_epi16(q46, load64(xr + 128)), sc46);
    t = _mm512_dpwssd_epi32(t, _mm512_maddubs_epi16(q57, load64(xr + 192)), sc57);
    sumi[r] = _mm256_add_epi32(_mm512_castsi512_si256(t), _mm512_extracti64x4_epi64(t, 1));
    summ[r] = _mm256_mullo_epi32(mins, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bs + r * ss)));
  }
}

// [Σa[0], Σa[1], Σa[2], Σa[3]] of four 8-lane int32 vectors.
[[WAFER_QVNNI]] inline __m128i hsum4x8_epi32(const __m256i* a) {
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a[0], a[1]), _mm256_hadd_epi32(a[2], a[3]));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

// y[r] for activation rows n0 .. n0 + R - 1, as dot_q80_q40_avx512.
template <int R>
[[WAFER_QVNNI]] void dot_q4_k_avx512(float* y, const uint8_t* w, const ActRows& a, int64_t n0, int64_t nb) {
  const int8_t* q = a.q + n0 * a.q_stride;
  const float* d = a.d + n0 * a.d_stride;
  const int32_t* s = a.s + n0 * a.s_stride;
  float acc[R] = {};
  int64_t b = 0;
  for (; b + 4 <= nb; b += 4) {  // four super-blocks' sums reduced together, terms added in order
    prefetch_ahead(w + 144 * b, 4 * 144);
    __m256i si[4][R], sm[4][R];
    alignas(16) uint16_t h[8];  // d of the 4, then dmin
    for (int k = 0; k < 4; ++k) {
      const uint8_t* blk = w + 144 * (b + k);
      q4_k_sums_avx512<R>(blk, q + 256 * (b + k), a.q_stride, s + 8 * (b + k), a.s_stride, si[k], sm[k]);
      h[k] = load_u16(blk), h[4 + k] = load_u16(blk + 2);
    }
    const __m256 dd = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(h)));
    for (int r = 0; r < R; ++r) {
      const __m256i sir[4] = {si[0][r], si[1][r], si[2][r], si[3][r]}, smr[4] = {sm[0][r], sm[1][r], sm[2][r], sm[3][r]};
      const __m128 sumi = _mm_cvtepi32_ps(hsum4x8_epi32(sir)), summ = _mm_cvtepi32_ps(hsum4x8_epi32(smr));
      const __m128 inner = _mm_sub_ps(_mm_mul_ps(_mm256_castps256_ps128(dd), sumi),
                                      _mm_mul_ps(_mm256_extractf128_ps(dd, 1), summ));
      alignas(16) float term[4];
      _mm_store_ps(term, _mm_mul_ps(_mm_loadu_ps(d + r * a.d_stride + b), inner));  // = q4_k_term of each
      acc[r] += term[0];
      acc[r] += term[1];
      acc[r] += term[2];
      acc[r] += term[3];
    }
  }
  for (; b < nb; ++b) {
    const uint8_t* blk = w + 144 * b;
    __m256i si[R], sm[R];
    q4_k_sums_avx512<R>(blk, q + 256 * b, a.q_stride, s + 8 * b, a.s_stride, si, sm);
    const float dw = _cvtsh_ss(load_u16(blk)), dmin = _cvtsh_ss(load_u16(blk + 2));
    for (int r = 0; r < R; ++r)
      acc[r] += q4_k_term(d[r * a.d_stride + b], dw, dmin, hsum_epi32(si[r]), hsum_epi32(sm[r]));
  }
  for (int r = 0; r < R; ++r) y[r] = acc[r];
}

// y[r] for activation rows n0 .. n0 + R - 1, as dot_q6_k_avx2: 64 six-bit values per register
// (qh's 32 bytes in both halves, each half shifted to its own bit pair), one vpdpbusd per 64
// values, whose int32 lane j (values 4j .. 4j + 3) is then times its sub-block's scale.
template <int R>
[[WAFER_QVNNI]] void dot_q6_k_avx512(float* y, const uint8_t* w, const ActRows& a, int64_t n0, int64_t nb) {
  const __m512i m4 = _mm512_set1_epi8(15), m2 = _mm512_set1_epi8(3);
  // 16-bit shift counts: bit pairs 0 and 1 of qh into the low and high 256 bits, then pairs 2, 3
  const __m512i shift_lo = _mm512_setr_epi64(0, 0, 0, 0, 0x0002000200020002, 0x0002000200020002, 0x0002000200020002,
                                             0x0002000200020002);
  const __m512i shift_hi = _mm512_setr_epi64(0x0004000400040004, 0x0004000400040004, 0x0004000400040004,
                                             0x0004000400040004, 0x0006000600060006, 0x0006000600060006,
                                             0x0006000600060006, 0x0006000600060006);
  const __m512i quarter = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  const int8_t* q = a.q + n0 * a.q_stride;
  float acc[R] = {};
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = w + 210 * b;
    if (b % 4 == 0) prefetch_ahead(blk, 4 * 210);
    const __m512i sc32 = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192)));
    __m512i isum[R];
    for (int r = 0; r < R; ++r) isum[r] = _mm512_setzero_si512();
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = load64(blk + 64 * h);
      const __m256i qh32 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h));
      const __m512i qh = _mm512_inserti64x4(_mm512_zextsi256_si512(qh32), qh32, 1);
      // byte i of lo: value 128h + i; of hi: value 128h + 64 + i
      const __m512i lo = _mm512_or_si512(_mm512_and_si512(ql, m4),
                                         _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, shift_lo), m2), 4));
      const __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                         _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, shift_hi), m2), 4));
      const __m512i sc_lo = _mm512_permutexvar_epi32(_mm512_add_epi32(quarter, _mm512_set1_epi32(8 * h)), sc32);
      const __m512i sc_hi = _mm512_permutexvar_epi32(_mm512_add_epi32(quarter, _mm512_set1_epi32(8 * h + 4)), sc32);
      for (int r = 0; r < R; ++r) {
        const int8_t* xr = q + r * a.q_stride + 256 * b + 128 * h;
        const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, load64(xr));
        const __m512i p2 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), hi, load64(xr + 64));
        isum[r] = _mm512_add_epi32(isum[r], _mm512_add_epi32(_mm512_mullo_epi32(p, sc_lo), _mm512_mullo_epi32(p2, sc_hi)));
      }
    }
    const float dw = _cvtsh_ss(load_u16(blk + 208));
    for (int r = 0; r < R; ++r) {
      const __m512i bs = _mm512_loadu_si512(a.s + (n0 + r) * a.s_stride + 16 * b);  // Σx per sub-block
      const int32_t sumi = _mm512_reduce_add_epi32(_mm512_sub_epi32(isum[r], _mm512_slli_epi32(_mm512_mullo_epi32(sc32, bs), 5)));
      acc[r] += q6_k_term(a.d[(n0 + r) * a.d_stride + b], dw, sumi);
    }
  }
  for (int r = 0; r < R; ++r) y[r] = acc[r];
}

// one_row_avx2 with the VNNI kernels' target.
template <RowDot4 kKernel>
[[WAFER_QVNNI, gnu::flatten]] float one_row_avx512(const uint8_t* w, const int8_t* q, const float* d, const int32_t* s,
                                                   int64_t nb) {
  float y;
  kKernel(&y, w, single_row(q, d, s), 0, nb);
  return y;
}

// ---- dispatch ----

// From this many activation rows, q8_0 weights take the AMX int8 tiles where there are
// (quant_matmul_amx.cpp: the same bits, 16 rows a tile).
constexpr int64_t kAmxRows = 16;

enum class Path { Generic, Avx2, Avx512Vnni };

Path pick_path() {
  static const bool vnni = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") != 0;
  }();
  static const bool f16c = __builtin_cpu_supports("f16c") != 0;
  const Isa isa = kernel_isa();
  if (isa >= Isa::Avx512 && vnni) return Path::Avx512Vnni;
  if (isa != Isa::Generic && f16c) return Path::Avx2;
  return Path::Generic;
}

RowDot pick_dot(QuantType t) {
  static constexpr RowDot table[4][3] = {
      {dot_q8_0_generic, one_row_avx2<dot_q80_q40_avx2<true, 1>>, one_row_avx512<dot_q80_q40_avx512<true, 1>>},
      {dot_q4_0_generic, one_row_avx2<dot_q80_q40_avx2<false, 1>>, one_row_avx512<dot_q80_q40_avx512<false, 1>>},
      {dot_q4_k_generic, one_row_avx2<dot_q4_k_avx2<1>>, one_row_avx512<dot_q4_k_avx512<1>>},
      {dot_q6_k_generic, one_row_avx2<dot_q6_k_avx2<1>>, one_row_avx512<dot_q6_k_avx512<1>>},
  };
  return table[int(t)][int(pick_path())];
}

// The kernels that take four activation rows at once (null on the portable path).
RowDot4 pick_dot4(QuantType t) {
  static constexpr RowDot4 table[4][3] = {
      {nullptr, dot_q80_q40_avx2<true, 4>, dot_q80_q40_avx512<true, 4>},
      {nullptr, dot_q80_q40_avx2<false, 4>, dot_q80_q40_avx512<false, 4>},
      {nullptr, dot_q4_k_avx2<4>, dot_q4_k_avx512<4>},
      {nullptr, dot_q6_k_avx2<4>, dot_q6_k_avx512<4>},
  };
  return table[int(t)][int(pick_path())];
}

void check_cols(const char* op, QuantType t, int64_t cols) {
  const int64_t blk = quant_block_values(t);
  WAFER_CHECK(cols > 0 && cols % blk == 0, "[", op, "] expected the row length (cols) to be a positive multiple of ",
              blk, " for ", quant_type_name(t), " weights, found ", cols);
}

void quantize_row(QuantType t, uint8_t* dst, const float* src, int64_t cols) {
  switch (t) {
    case QuantType::Q8_0: quantize_q8_0(reinterpret_cast<BlockQ8_0*>(dst), src, cols); break;
    case QuantType::Q4_0: quantize_q4_0(reinterpret_cast<BlockQ4_0*>(dst), src, cols); break;
    case QuantType::Q4_K: quantize_q4_k(reinterpret_cast<BlockQ4_K*>(dst), src, cols); break;
    case QuantType::Q6_K: quantize_q6_k(reinterpret_cast<BlockQ6_K*>(dst), src, cols); break;
  }
}

}  // namespace

const char* quant_type_name(QuantType t) {
  switch (t) {
    case QuantType::Q8_0: return "q8_0";
    case QuantType::Q4_0: return "q4_0";
    case QuantType::Q4_K: return "q4_k";
    case QuantType::Q6_K: return "q6_k";
  }
  return "?";
}

QuantType quant_type_from_name(const std::string& name) {
  for (QuantType t : {QuantType::Q8_0, QuantType::Q4_0, QuantType::Q4_K, QuantType::Q6_K})
    if (name == quant_type_name(t)) return t;
  fail(str_cat("[quant] expected a quantization type q8_0, q4_0, q4_k or q6_k, found '", name, "'"));
}

int64_t quant_block_values(QuantType t) { return t == QuantType::Q4_K || t == QuantType::Q6_K ? kQ4_KBlock : 32; }

int64_t quant_block_bytes(QuantType t) {
  return t == QuantType::Q8_0   ? int64_t(sizeof(BlockQ8_0))
         : t == QuantType::Q4_0 ? int64_t(sizeof(BlockQ4_0))
         : t == QuantType::Q4_K ? int64_t(sizeof(BlockQ4_K))
                                : int64_t(sizeof(BlockQ6_K));
}

int64_t quant_row_bytes(QuantType t, int64_t cols) {
  check_cols("quant_row_bytes", t, cols);
  return cols / quant_block_values(t) * quant_block_bytes(t);
}

std::vector<uint8_t> quantize_matrix_rows(QuantType t, const float* w, int64_t rows, int64_t cols) {
  const int64_t rb = quant_row_bytes(t, cols);
  WAFER_CHECK(rows >= 0, "[quantize_matrix_rows] expected rows >= 0, found ", rows);
  std::vector<uint8_t> out(size_t(rows * rb));
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t r = 0; r < rows; ++r) quantize_row(t, out.data() + r * rb, w + r * cols, cols);
  return out;
}

std::vector<uint8_t> quantize_matrix_conv1d(QuantType t, const float* w, int64_t C, int64_t OC) {
  const int64_t rb = quant_row_bytes(t, C);  // a row of W is a column of w: C values
  WAFER_CHECK(OC >= 0, "[quantize_matrix_conv1d] expected OC >= 0, found ", OC);
  constexpr int64_t kTile = 16;  // columns gathered per pass: 64 contiguous bytes of each w row
  std::vector<uint8_t> out(size_t(OC * rb));
#pragma omp parallel
  {
    std::vector<float> col(size_t(kTile * C));  // [kTile, C]
#pragma omp for schedule(dynamic)
    for (int64_t o0 = 0; o0 < OC; o0 += kTile) {
      const int64_t n = std::min(kTile, OC - o0);
      for (int64_t c = 0; c < C; ++c)
        for (int64_t k = 0; k < n; ++k) col[size_t(k * C + c)] = w[c * OC + o0 + k];
      for (int64_t k = 0; k < n; ++k) quantize_row(t, out.data() + (o0 + k) * rb, col.data() + k * C, C);
    }
  }
  return out;
}

void quant_activation_values(float* y, QuantType t, const float* x, int64_t cols) {
  check_cols("quant_activation_values", t, cols);
  ActRows a;
  act_strides(t, cols, &a);
  std::vector<int8_t> q(size_t(a.q_stride));
  std::vector<float> d(size_t(a.d_stride));
  std::vector<int32_t> s(size_t(a.s_stride));
  quantize_act_row(t, x, cols, q.data(), d.data(), s.data(), a);
  const int64_t blk = act_block(t);
  for (int64_t c = 0; c < cols; ++c) y[c] = d[size_t(c / blk)] * q[size_t(act_index(t, c))];
}

void quant_matmul(float* out, const float* x, const QuantMatrix& w, const float* bias, int64_t N, float scale) {
  const QuantType t = w.type;
  check_cols("quant_matmul", t, w.cols);
  WAFER_CHECK(N >= 0 && w.rows >= 0, "[quant_matmul] expected N >= 0 and rows >= 0, found N = ", N,
              ", rows = ", w.rows);
  if (N == 0 || w.rows == 0) return;
  WAFER_CHECK(w.data && x && out, "[quant_matmul] expected weight, input and output pointers, found a null one");
  const int64_t cols = w.cols, rows = w.rows, rb = quant_row_bytes(t, cols), nb = cols / quant_block_values(t);

  // 1. Quantize every activation row (the calling thread's buffers; workers read them).
  ActRows a;
  act_strides(t, cols, &a);
  thread_local std::vector<int8_t> qbuf;
  thread_local std::vector<float> dbuf;
  thread_local std::vector<int32_t> sbuf;
  const bool amx = t == QuantType::Q8_0 && N >= kAmxRows && amx_int8();
  const int64_t qrows = amx ? round_up(N, 16) : N;  // the tiles read whole groups of 16 rows
  qbuf.resize(size_t(qrows * a.q_stride) + 64);     // + 64: the row starts 64-byte aligned
  dbuf.resize(size_t(N * a.d_stride));
  sbuf.resize(size_t(N * a.s_stride));
  a.q = qbuf.data() + (64 - reinterpret_cast<uintptr_t>(qbuf.data()) % 64) % 64;
  a.d = dbuf.data(), a.s = sbuf.data();
#pragma omp parallel for if (N > 4)
  for (int64_t n = 0; n < N; ++n)
    quantize_act_row(t, x + n * cols, cols, a.q + n * a.q_stride, a.d + n * a.d_stride, a.s + n * a.s_stride, a);
  if (amx) {
    std::memset(a.q + N * a.q_stride, 0, size_t((qrows - N) * a.q_stride));
    quant_amx::q8_0_matmul(out, w.data, rows, nb, {a.q, a.q_stride, a.d, a.d_stride}, N, bias, scale);
    return;
  }

  // 2. Rows of W in tiles of about 32 KiB (in L1/L2 while all N activation rows pass over them);
  //    static scheduling gives each thread one contiguous run of the matrix.
  const RowDot dot = pick_dot(t);
  const RowDot4 dot4 = pick_dot4(t);
  const int64_t tile = std::max<int64_t>(1, 32768 / rb);
  const int64_t ntiles = (rows + tile - 1) / tile;
#pragma omp parallel for schedule(static) if (rows * rb * N > (1 << 16))
  for (int64_t i = 0; i < ntiles; ++i) {
    const int64_t r0 = i * tile, r1 = std::min(rows, r0 + tile);
    int64_t n = 0;
    for (; dot4 && n + 4 <= N; n += 4)  // four activation rows per pass over the weight row
      for (int64_t r = r0; r < r1; ++r) {
        float v[4];
        dot4(v, w.data + r * rb, a, n, nb);
        for (int k = 0; k < 4; ++k) out[(n + k) * rows + r] = bias ? scale * v[k] + bias[r] : scale * v[k];
      }
    for (; n < N; ++n) {
      const int8_t* q = a.q + n * a.q_stride;
      const float* d = a.d + n * a.d_stride;
      const int32_t* s = a.s + n * a.s_stride;
      for (int64_t r = r0; r < r1; ++r) {
        const float v = scale * dot(w.data + r * rb, q, d, s, nb);
        out[n * rows + r] = bias ? v + bias[r] : v;
      }
    }
  }
}

void quantize_activation_row(QuantActRow& a, QuantType t, const float* x, int64_t cols) {
  check_cols("quantize_activation_row", t, cols);
  ActRows r;
  act_strides(t, cols, &r);
  if (a.type != t || a.cols != cols || !a.q) {
    a.type = t, a.cols = cols;
    a.q_storage.resize(size_t(r.q_stride) + 64);  // + 64: the row starts 64-byte aligned, as in quant_matmul
    a.q = a.q_storage.data() + (64 - reinterpret_cast<uintptr_t>(a.q_storage.data()) % 64) % 64;
    a.d.resize(size_t(r.d_stride));
    a.s.resize(size_t(r.s_stride));
  }
  quantize_act_row(t, x, cols, a.q, a.d.data(), a.s.data(), r);
}

void quant_matmul_rows(float* out, const QuantActRow& x, const QuantMatrix& w, const float* bias, int64_t r0,
                       int64_t r1, float scale) {
  WAFER_CHECK(x.q && x.type == w.type && x.cols == w.cols, "[quant_matmul_rows] expected an activation row of ",
              w.cols, " values quantized for ", quant_type_name(w.type), ", found ", x.cols, " for ",
              quant_type_name(x.type));
  WAFER_CHECK(0 <= r0 && r0 <= r1 && r1 <= w.rows, "[quant_matmul_rows] rows [", r0, ", ", r1,
              ") outside the matrix's ", w.rows);
  const RowDot dot = pick_dot(w.type);
  const int64_t rb = quant_row_bytes(w.type, w.cols), nb = w.cols / quant_block_values(w.type);
  for (int64_t r = r0; r < r1; ++r) {  // the operations of quant_matmul's one-row loop
    const float v = scale * dot(w.data + r * rb, x.q, x.d.data(), x.s.data(), nb);
    out[r] = bias ? v + bias[r] : v;
  }
}

}  // namespace wafer
