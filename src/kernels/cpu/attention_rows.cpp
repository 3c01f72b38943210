// kernels/cpu/attention_rows.cpp: per-token attention over a KV slot (see attention_rows.h).
// A score q·k is 16 lane sums (lane l takes e ≡ l mod 16, fused multiply-adds in ascending e)
// and then a fixed tree (l, l+8), (l, l+4), (l, l+2), (l, l+1); an output element is a chain of
// fused multiply-adds over the keys in ascending order, then × 1/Σ. The AVX-512 path does
// exactly these operations with the lanes in one register and the output in registers (a
// scalar chain of D dependent adds made attention a fifth of a 16-stream decode step); the
// portable path does them one lane at a time, so both give the same bits whatever the batch. A
// bf16 cache's elements are widened to fp32 (exactly) as they are loaded; the rest is the same.
#include "kernels/cpu/attention_rows.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/lane_sums.h"

namespace wafer {

namespace {

// ---- portable ----

template <typename KV>
WAFER_KERNEL float lane_dot(const float* a, const KV* b, int64_t D) {
  float s[16] = {};
  for (int64_t e = 0; e < D; ++e) s[e % 16] = std::fma(a[e], weight_to_f32(b[e]), s[e % 16]);
  return tree16(s);
}

// (`next`, the keys or values the AVX-512 path prefetches, is not read.)
template <typename KV>
WAFER_KERNEL void scores(float* p, const float* q, const KV* k, const KV* /*next*/, int64_t T, int64_t stride,
                         int64_t D, float scale) {
  for (int64_t j = 0; j < T; ++j) p[j] = lane_dot(q, k + j * stride, D) * scale;
}

// o[0, D) = Σ_j p[j]·v[j·stride + e], ascending j.
template <typename KV>
WAFER_KERNEL void weighted_sum(float* o, const float* p, const KV* v, const KV* /*next*/, int64_t T, int64_t stride,
                               int64_t D) {
  std::fill(o, o + D, 0.0f);
  for (int64_t j = 0; j < T; ++j)
    for (int64_t e = 0; e < D; ++e) o[e] = std::fma(p[j], weight_to_f32(v[j * stride + e]), o[e]);
}

// ---- AVX-512: the same operations ----

#define WAFER_AVX512 gnu::target("avx512f,avx512bw,avx512dq,avx512vl,fma")

// Two prefetches keep attention from waiting on the cache: 8 keys (or values) ahead into L1,
// and the same key (value) of the next (token, head) this thread takes into L2, a whole head's
// work ahead. The first alone left the kernel as slow as its compute and its reads added up
// (12 layers of 111M, 16 sequences at position 192, bf16 cache: 6.0-6.1 ms; with both, 4.8-5.0).
// `next` is the next head's keys or values (the thread's items are consecutive (token, head)
// pairs), prefetched a cache line at a time.
constexpr int64_t kAhead = 8;
template <typename KV>
constexpr bool starts_line(int64_t e) {
  return e * int64_t(sizeof(KV)) % 64 == 0;
}

// Scores of keys [j, j + U) (U = 4, or 1 for the last few): lane_dot's operations for each key,
// U independent chains at once, so the FMAs and the trees overlap.
template <int U, typename KV>
[[WAFER_AVX512]] inline void score_keys(float* p, const float* q, const KV* k, const KV* next, int64_t j,
                                        int64_t stride, int64_t D, float scale) {
  __m512 s[U];
#pragma GCC unroll 4
  for (int u = 0; u < U; ++u) s[u] = _mm512_setzero_ps();
  for (int64_t e = 0; e < D; e += 16) {
    const __mmask16 m = lane_mask(D - e);
    const __m512 qv = _mm512_maskz_loadu_ps(m, q + e);
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) {
      const KV* kj = k + (j + u) * stride + e;
      _mm_prefetch(reinterpret_cast<const char*>(kj + kAhead * stride), _MM_HINT_T0);
      if (starts_line<KV>(e)) _mm_prefetch(reinterpret_cast<const char*>(next + (j + u) * stride + e), _MM_HINT_T1);
      s[u] = _mm512_fmadd_ps(qv, load16(kj, m), s[u]);  // masked lanes add 0·0
    }
  }
#pragma GCC unroll 4
  for (int u = 0; u < U; ++u) p[j + u] = tree16(s[u]) * scale;
}

// p[j] = scale · q·k_j for j in [0, T).
template <typename KV>
[[WAFER_AVX512]] void scores_avx512(float* p, const float* q, const KV* k, const KV* next, int64_t T, int64_t stride,
                                    int64_t D, float scale) {
  int64_t j = 0;
  for (; j + 4 <= T; j += 4) score_keys<4>(p, q, k, next, j, stride, D, scale);
  for (; j < T; ++j) score_keys<1>(p, q, k, next, j, stride, D, scale);
}

// Up to 64 output elements in four registers across all the keys.
template <typename KV>
[[WAFER_AVX512]] void weighted_sum_avx512(float* o, const float* p, const KV* v, const KV* next, int64_t T,
                                          int64_t stride, int64_t D) {
  for (int64_t e0 = 0; e0 < D; e0 += 64) {
    __mmask16 m[4];
    for (int k = 0; k < 4; ++k) m[k] = lane_mask(D - e0 - 16 * k);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t j = 0; j < T; ++j) {
      const KV* vj = v + j * stride + e0;
      for (int k = 0; k < 4 && 16 * k < D - e0; ++k) {
        _mm_prefetch(reinterpret_cast<const char*>(vj + kAhead * stride + 16 * k), _MM_HINT_T0);
        if (starts_line<KV>(16 * k))
          _mm_prefetch(reinterpret_cast<const char*>(next + j * stride + e0 + 16 * k), _MM_HINT_T1);
      }
      const __m512 pj = _mm512_set1_ps(p[j]);
      for (int k = 0; k < 4; ++k) acc[k] = _mm512_fmadd_ps(pj, load16(vj + 16 * k, m[k]), acc[k]);
    }
    for (int k = 0; k < 4; ++k) _mm512_mask_storeu_ps(o + e0 + 16 * k, m[k], acc[k]);
  }
}

template <typename KV>
void attention_rows_impl(float* out, const float* q, const KV* k, const KV* v, const int32_t* slot, const int32_t* pos,
                         const RowsAttentionShape& s) {
  const int64_t N = s.N, H = s.H, D = s.D;
  const bool avx512 = kernel_isa() >= Isa::Avx512;
  const auto score = avx512 ? scores_avx512<KV> : scores<KV>;
  const auto wsum = avx512 ? weighted_sum_avx512<KV> : weighted_sum<KV>;
#pragma omp parallel
  {
    std::vector<float> p;  // [pos + 1] scores, then probabilities
#pragma omp for schedule(static) collapse(2)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t h = 0; h < H; ++h) {
        const float* qi = q + n * s.q_row + h * D;
        const KV* ks = k + slot[n] * s.slot_stride + h * s.head_stride;
        const KV* vs = v + slot[n] * s.slot_stride + h * s.head_stride;
        const int64_t T = int64_t(pos[n]) + 1;
        p.resize(size_t(T));
        const int64_t next_n = h + 1 < H || n + 1 == N ? n : n + 1, next_h = h + 1 < H ? h + 1 : 0;
        const int64_t next_at = slot[next_n] * s.slot_stride + next_h * s.head_stride;
        score(p.data(), qi, ks, k + next_at, T, s.kv_row, D, s.scale);
        const float mx = *std::max_element(p.begin(), p.end());
        float sum = 0.0f;
        for (int64_t j = 0; j < T; ++j) sum += p[size_t(j)] = std::exp(p[size_t(j)] - mx);
        float* o = out + n * H * D + h * D;
        wsum(o, p.data(), vs, v + next_at, T, s.kv_row, D);
        const float inv = 1.0f / sum;
        for (int64_t e = 0; e < D; ++e) o[e] *= inv;
      }
  }
}

}  // namespace

void attention_rows_forward(float* out, const float* q, const void* k, const void* v, const int32_t* slot,
                            const int32_t* pos, const RowsAttentionShape& s) {
  if (s.kv_dtype == DType::BF16)
    attention_rows_impl(out, q, static_cast<const uint16_t*>(k), static_cast<const uint16_t*>(v), slot, pos, s);
  else
    attention_rows_impl(out, q, static_cast<const float*>(k), static_cast<const float*>(v), slot, pos, s);
}

}  // namespace wafer
