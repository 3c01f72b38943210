// kernels/cpu/attention.cpp: tiles of kQueryTile query rows against blocks of kKeyBlock keys,
// each tile-block product a small sgemm (OpenBLAS runs single-threaded inside our parallel
// region, one (batch, head[, tile]) per thread). Scratch per thread is one [kQueryTile,
// kKeyBlock] score tile or two, whatever T is: memory linear in T. Causal tiles stop at the
// last key their last row sees, so the masked triangle is skipped at tile granularity.
//
// Online softmax per row, after each block of scores s_j:
//   m' = max(m, max_j s_j);  l' = l·e^(m-m') + Σ_j e^(s_j-m');  acc' = acc·e^(m-m') + Σ_j e^(s_j-m')·v_j
// and at the end out = acc/l, lse = m + log l.
#include "kernels/cpu/attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/cpu_isa.h"

namespace wafer {

namespace {
constexpr int64_t kQueryTile = 64;
constexpr int64_t kKeyBlock = kAttentionRowScratch;  // a block's scores fit attention_row's scratch
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Keys a query row may see: [0, visible_end).
inline int64_t visible_end(const AttentionShape& s, int64_t i) {
  return s.causal ? std::min(s.Tk, s.q_pos0 + i + 1) : s.Tk;
}

// A tile of one query row (decode) is two matrix-vector products, where an sgemm's packing of K
// and V costs more than the arithmetic (the sgemms were 30% of the time of a 1,024-token 111M
// q8_0 decode, perf on an AMD EPYC Zen 5). These loops are inlined into each ISA clone of
// attention_forward and vectorised there.
// sc[j] = scale · q·k_j for j < nk, k_j at k + j·stride; q, k_j: [D].
[[gnu::always_inline]] inline void row_scores(float* sc, const float* q, const float* k, int64_t nk, int64_t stride,
                                              int64_t D, float scale) {
  int64_t j = 0;
  for (; j + 4 <= nk; j += 4) {  // four keys per pass: their reductions overlap
    const float *k0 = k + j * stride, *k1 = k0 + stride, *k2 = k1 + stride, *k3 = k2 + stride;
    float d0 = 0.0f, d1 = 0.0f, d2 = 0.0f, d3 = 0.0f;
#pragma omp simd reduction(+ : d0, d1, d2, d3)
    for (int64_t d = 0; d < D; ++d) {
      d0 += q[d] * k0[d];
      d1 += q[d] * k1[d];
      d2 += q[d] * k2[d];
      d3 += q[d] * k3[d];
    }
    sc[j] = scale * d0, sc[j + 1] = scale * d1, sc[j + 2] = scale * d2, sc[j + 3] = scale * d3;
  }
  for (; j < nk; ++j) {
    const float* kj = k + j * stride;
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int64_t d = 0; d < D; ++d) dot += q[d] * kj[d];
    sc[j] = scale * dot;
  }
}
// acc[D] += Σ_j p[j]·v_j for j < nk, v_j at v + j·stride.
[[gnu::always_inline]] inline void row_accumulate(float* acc, const float* p, const float* v, int64_t nk,
                                                  int64_t stride, int64_t D) {
  for (int64_t j = 0; j < nk; ++j) {
    const float pj = p[j], *vj = v + j * stride;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) acc[d] += pj * vj[d];
  }
}
}  // namespace

// One query row against keys [0, nk) in blocks of kKeyBlock, accumulating into out itself.
WAFER_KERNEL float attention_row(float* out, const float* q, const float* k, const float* v, int64_t nk,
                                 int64_t stride, int64_t D, float scale, float* scratch) {
  float m = kNegInf, l = 0.0f;
  std::fill(out, out + D, 0.0f);
  for (int64_t j0 = 0; j0 < nk; j0 += kKeyBlock) {
    const int64_t n = std::min(nk, j0 + kKeyBlock) - j0;
    row_scores(scratch, q, k + j0 * stride, n, stride, D, scale);
    float block_max = kNegInf;
#pragma omp simd reduction(max : block_max)
    for (int64_t j = 0; j < n; ++j) block_max = std::max(block_max, scratch[j]);
    const float m_new = std::max(m, block_max);
    const float corr = fast_exp(m - m_new);  // 0 when m was -inf
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < n; ++j) {
      const float p = fast_exp(scratch[j] - m_new);
      scratch[j] = p;
      sum += p;
    }
    l = l * corr + sum;
    m = m_new;
    for (int64_t d = 0; d < D; ++d) out[d] *= corr;
    row_accumulate(out, scratch, v + j0 * stride, n, stride, D);
  }
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  for (int64_t d = 0; d < D; ++d) out[d] *= inv;
  return l > 0.0f ? m + std::log(l) : kNegInf;
}

WAFER_KERNEL void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, const AttentionShape& s) {
  const int64_t B = s.B, H = s.H, D = s.D, Tq = s.Tq;
  const int64_t n_tiles = (Tq + kQueryTile - 1) / kQueryTile;
#pragma omp parallel
  {
    std::vector<float> sc(static_cast<size_t>(kQueryTile * kKeyBlock)), acc(static_cast<size_t>(kQueryTile * D));
    float m[kQueryTile], l[kQueryTile];
#pragma omp for collapse(3) schedule(dynamic)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t tile = 0; tile < n_tiles; ++tile) {
          const int64_t i0 = tile * kQueryTile, i1 = std::min(Tq, i0 + kQueryTile), mq = i1 - i0;
          const int64_t k_end = visible_end(s, i1 - 1);  // the tile's last row sees the most keys
          const float* qt = q + b * s.q_batch + i0 * s.q_row + h * D;
          if (mq == 1) {  // a decode step's row (or a prefill's last): the code model/decode_step runs
            float* o = out + b * s.out_batch + i0 * s.out_row + h * D;
            lse[(b * H + h) * Tq + i0] = attention_row(o, qt, k + b * s.kv_batch + h * D, v + b * s.kv_batch + h * D,
                                                       k_end, s.kv_row, D, s.scale, sc.data());
            continue;
          }
          std::fill(m, m + mq, kNegInf);
          std::fill(l, l + mq, 0.0f);
          std::fill(acc.begin(), acc.begin() + mq * D, 0.0f);
          for (int64_t j0 = 0; j0 < k_end; j0 += kKeyBlock) {
            const int64_t nk = std::min(k_end, j0 + kKeyBlock) - j0;
            const float* kb = k + b * s.kv_batch + j0 * s.kv_row + h * D;
            const float* vb = v + b * s.kv_batch + j0 * s.kv_row + h * D;
            // S[mq, nk] = scale · Q_tile[mq, D] · K_blockᵀ
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(mq), int(nk), int(D), s.scale, qt, int(s.q_row),
                        kb, int(s.kv_row), 0.0f, sc.data(), int(kKeyBlock));
            for (int64_t r = 0; r < mq; ++r) {
              float* row = sc.data() + r * kKeyBlock;
              const int64_t seen = std::min(nk, visible_end(s, i0 + r) - j0);  // keys of the block row r sees
              if (seen <= 0) {
                std::fill(row, row + nk, 0.0f);
                continue;
              }
              float block_max = kNegInf;
#pragma omp simd reduction(max : block_max)
              for (int64_t j = 0; j < seen; ++j) block_max = std::max(block_max, row[j]);
              const float m_new = std::max(m[r], block_max);
              const float corr = fast_exp(m[r] - m_new);  // 0 when m was -inf
              float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
              for (int64_t j = 0; j < nk; ++j) {
                const float p = j < seen ? fast_exp(row[j] - m_new) : 0.0f;
                row[j] = p;
                sum += p;
              }
              l[r] = l[r] * corr + sum;
              m[r] = m_new;
              float* a = acc.data() + r * D;
              for (int64_t d = 0; d < D; ++d) a[d] *= corr;
            }
            // acc[mq, D] += P[mq, nk] · V_block[nk, D]
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(mq), int(D), int(nk), 1.0f, sc.data(),
                        int(kKeyBlock), vb, int(s.kv_row), 1.0f, acc.data(), int(D));
          }
          for (int64_t r = 0; r < mq; ++r) {
            float* o = out + b * s.out_batch + (i0 + r) * s.out_row + h * D;
            const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
            for (int64_t d = 0; d < D; ++d) o[d] = acc[size_t(r * D + d)] * inv;
            lse[(b * H + h) * Tq + i0 + r] = l[r] > 0.0f ? m[r] + std::log(l[r]) : kNegInf;
          }
        }
  }
}

void attention_forward_naive(float* out, float* lse, const float* q, const float* k, const float* v,
                             const AttentionShape& s) {
  std::vector<double> sc(size_t(s.Tk));
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h)
      for (int64_t i = 0; i < s.Tq; ++i) {
        const int64_t n = visible_end(s, i);
        const float* qrow = q + b * s.q_batch + i * s.q_row + h * s.D;
        double mx = -INFINITY;
        for (int64_t j = 0; j < n; ++j) {
          const float* kj = k + b * s.kv_batch + j * s.kv_row + h * s.D;
          double dot = 0;
          for (int64_t d = 0; d < s.D; ++d) dot += double(qrow[d]) * kj[d];
          sc[size_t(j)] = dot * s.scale;
          mx = std::max(mx, sc[size_t(j)]);
        }
        double sum = 0;
        for (int64_t j = 0; j < n; ++j) sum += std::exp(sc[size_t(j)] - mx);
        float* o = out + b * s.out_batch + i * s.out_row + h * s.D;
        for (int64_t d = 0; d < s.D; ++d) {
          double a = 0;
          for (int64_t j = 0; j < n; ++j) a += std::exp(sc[size_t(j)] - mx) / sum * v[b * s.kv_batch + j * s.kv_row + h * s.D + d];
          o[d] = n > 0 ? float(a) : 0.0f;
        }
        lse[(b * s.H + h) * s.Tq + i] = n > 0 ? float(mx + std::log(sum)) : kNegInf;
      }
}

// Backward by key blocks, FlashAttention-2 style: each (batch, head) pair walks its keys in
// blocks and, for each, the query tiles that see the block, recomputing P from the saved lse:
//   S = scale·Q_t·K_bᵀ;  P = exp(S - lse);  dP = dO_t·V_bᵀ;  dS = P∘(dP - D_i)·scale
//   dV_b += Pᵀ·dO_t;  dK_b += dSᵀ·Q_t;  dQ_t += dS·K_b
// with D_i = dout_i·out_i. The pair owns its dQ, dK, dV slices, so the sgemms accumulate into
// them in place.
WAFER_KERNEL void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse,
                        const float* q, const float* k, const float* v, const AttentionShape& s) {
  const int64_t D = s.D, Tq = s.Tq;
#pragma omp parallel
  {
    const size_t tile = static_cast<size_t>(kQueryTile * kKeyBlock);
    std::vector<float> p(tile), dp(tile), di(static_cast<size_t>(Tq));
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t h = 0; h < s.H; ++h) {
        const float* lse_bh = lse + (b * s.H + h) * Tq;
        for (int64_t i = 0; i < Tq; ++i) {
          const float* doi = dout + b * s.out_batch + i * s.out_row + h * D;
          const float* oi = out + b * s.out_batch + i * s.out_row + h * D;
          float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
          for (int64_t d = 0; d < D; ++d) acc += doi[d] * oi[d];
          di[size_t(i)] = acc;
        }
        for (int64_t j0 = 0; j0 < s.Tk; j0 += kKeyBlock) {
          const int64_t nj = std::min(kKeyBlock, s.Tk - j0);
          const int64_t kv_off = b * s.kv_batch + j0 * s.kv_row + h * D;
          // Causal: rows before j0 - q_pos0 see none of this block.
          const int64_t first = s.causal ? std::max<int64_t>(0, j0 - s.q_pos0) : 0;
          for (int64_t i0 = first; i0 < Tq; i0 += kQueryTile) {
            const int64_t i1 = std::min(Tq, i0 + kQueryTile), mq = i1 - i0;
            const int64_t nk = std::min(nj, visible_end(s, i1 - 1) - j0);
            if (nk <= 0) continue;
            const float* qt = q + b * s.q_batch + i0 * s.q_row + h * D;
            const float* dot = dout + b * s.out_batch + i0 * s.out_row + h * D;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(mq), int(nk), int(D), s.scale, qt, int(s.q_row),
                        k + kv_off, int(s.kv_row), 0.0f, p.data(), int(kKeyBlock));
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(mq), int(nk), int(D), 1.0f, dot, int(s.out_row),
                        v + kv_off, int(s.kv_row), 0.0f, dp.data(), int(kKeyBlock));
            for (int64_t r = 0; r < mq; ++r) {
              const int64_t i = i0 + r;
              const float l = lse_bh[i], dii = di[size_t(i)], scale = s.scale;
              const int64_t seen = l == kNegInf ? 0 : std::min(nk, visible_end(s, i) - j0);
              float* pr = p.data() + r * kKeyBlock;
              float* dpr = dp.data() + r * kKeyBlock;
#pragma omp simd
              for (int64_t j = 0; j < nk; ++j) {
                const float pj = j < seen ? fast_exp(pr[j] - l) : 0.0f;
                pr[j] = pj;
                dpr[j] = pj * (dpr[j] - dii) * scale;
              }
            }
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(nk), int(D), int(mq), 1.0f, p.data(),
                        int(kKeyBlock), dot, int(s.out_row), 1.0f, dv + kv_off, int(s.kv_row));
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(nk), int(D), int(mq), 1.0f, dp.data(),
                        int(kKeyBlock), qt, int(s.q_row), 1.0f, dk + kv_off, int(s.kv_row));
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(mq), int(D), int(nk), 1.0f, dp.data(),
                        int(kKeyBlock), k + kv_off, int(s.kv_row), 1.0f, dq + b * s.q_batch + i0 * s.q_row + h * D,
                        int(s.q_row));
          }
        }
      }
  }
}

WAFER_KERNEL void attention_merge(float* out1, float* lse1, const float* out2, const float* lse2, int64_t B, int64_t T, int64_t H,
                     int64_t D) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t li = (b * H + h) * T + t;
        const float a = lse1[li], c = lse2[li];
        float* o1 = out1 + ((b * T + t) * H + h) * D;
        const float* o2 = out2 + ((b * T + t) * H + h) * D;
        if (c == kNegInf) continue;  // nothing to add
        if (a == kNegInf) {          // nothing there yet
          for (int64_t d = 0; d < D; ++d) o1[d] = o2[d];
          lse1[li] = c;
          continue;
        }
        const float mx = std::max(a, c);
        const float lse = mx + std::log(std::exp(a - mx) + std::exp(c - mx));
        const float w1 = std::exp(a - lse), w2 = std::exp(c - lse);
        for (int64_t d = 0; d < D; ++d) o1[d] = w1 * o1[d] + w2 * o2[d];
        lse1[li] = lse;
      }
}

}  // namespace wafer
