// kernels/cpu/attention.cpp: tiles of kQueryTile query rows against blocks of kKeyBlock keys.
// Each key block is transposed once into a [D, kKeyBlock] tile so a row's scores are a sum over
// d of q[d]·kt[d, :], vectorised across keys; the tile is reused by every row of the query tile.
//
// Online softmax per row, after each block of scores s_j:
//   m' = max(m, max_j s_j);  l' = l·e^(m-m') + Σ_j e^(s_j-m');  acc' = acc·e^(m-m') + Σ_j e^(s_j-m')·v_j
// and at the end out = acc/l, lse = m + log l.
#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/fast_math.h"

namespace wafer {

namespace {
constexpr int64_t kQueryTile = 32;
constexpr int64_t kKeyBlock = 64;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Keys a query row may see: [0, visible_end).
inline int64_t visible_end(const AttentionShape& s, int64_t i) {
  return s.causal ? std::min(s.Tk, s.q_pos0 + i + 1) : s.Tk;
}
}  // namespace

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, const AttentionShape& s) {
  const int64_t B = s.B, H = s.H, D = s.D, Tq = s.Tq;
  const int64_t n_tiles = (Tq + kQueryTile - 1) / kQueryTile;
#pragma omp parallel
  {
    std::vector<float> kt(static_cast<size_t>(D * kKeyBlock)), scores(kKeyBlock), m(kQueryTile), l(kQueryTile);
    std::vector<float> acc(static_cast<size_t>(kQueryTile * D)), qs(static_cast<size_t>(D));
#pragma omp for collapse(3) schedule(dynamic)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t tile = 0; tile < n_tiles; ++tile) {
          const int64_t i0 = tile * kQueryTile, i1 = std::min(Tq, i0 + kQueryTile);
          std::fill(m.begin(), m.end(), kNegInf);
          std::fill(l.begin(), l.end(), 0.0f);
          std::fill(acc.begin(), acc.end(), 0.0f);
          const int64_t k_end = visible_end(s, i1 - 1);
          const float* kb = k + b * s.kv_batch + h * D;
          const float* vb = v + b * s.kv_batch + h * D;
          for (int64_t j0 = 0; j0 < k_end; j0 += kKeyBlock) {
            const int64_t j1 = std::min(k_end, j0 + kKeyBlock);
            for (int64_t j = j0; j < j1; ++j)
              for (int64_t d = 0; d < D; ++d) kt[size_t(d * kKeyBlock + (j - j0))] = kb[j * s.kv_row + d];
            for (int64_t i = i0; i < i1; ++i) {
              const int64_t lim = std::min(j1, visible_end(s, i));
              if (lim <= j0) continue;
              const int64_t nk = lim - j0;
              const float* qrow = q + b * s.q_batch + i * s.q_row + h * D;
              for (int64_t d = 0; d < D; ++d) qs[size_t(d)] = qrow[d] * s.scale;
              float* sc = scores.data();
              for (int64_t j = 0; j < nk; ++j) sc[j] = 0.0f;
              for (int64_t d = 0; d < D; ++d) {
                const float qd = qs[size_t(d)];
                const float* ktd = kt.data() + d * kKeyBlock;
                for (int64_t j = 0; j < nk; ++j) sc[j] += qd * ktd[j];
              }
              float block_max = kNegInf;
#pragma omp simd reduction(max : block_max)
              for (int64_t j = 0; j < nk; ++j) block_max = std::max(block_max, sc[j]);
              const int64_t r = i - i0;
              const float m_new = std::max(m[size_t(r)], block_max);
              const float corr = fast_exp(m[size_t(r)] - m_new);  // 0 when m was -inf
              float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
              for (int64_t j = 0; j < nk; ++j) {
                sc[j] = fast_exp(sc[j] - m_new);
                sum += sc[j];
              }
              l[size_t(r)] = l[size_t(r)] * corr + sum;
              m[size_t(r)] = m_new;
              float* a = acc.data() + r * D;
              for (int64_t d = 0; d < D; ++d) a[d] *= corr;
              for (int64_t j = 0; j < nk; ++j) {
                const float p = sc[j];
                const float* vj = vb + (j0 + j) * s.kv_row;
                for (int64_t d = 0; d < D; ++d) a[d] += p * vj[d];
              }
            }
          }
          for (int64_t i = i0; i < i1; ++i) {
            const int64_t r = i - i0;
            float* o = out + b * s.out_batch + i * s.out_row + h * D;
            const float li = l[size_t(r)];
            const float inv = li > 0.0f ? 1.0f / li : 0.0f;
            for (int64_t d = 0; d < D; ++d) o[d] = acc[size_t(r * D + d)] * inv;
            lse[(b * H + h) * Tq + i] = li > 0.0f ? m[size_t(r)] + std::log(li) : kNegInf;
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

// Backward by key blocks: each (batch, head) pair walks its keys in blocks of kKeyBlock, keeps
// the block's K and V transposed ([D, kKeyBlock]) and its dK, dV accumulators likewise, and
// passes every query row that sees the block over it. Every per-row step is a loop across the
// block's keys, so it vectorises whatever D is; dK and dV are written back once per block.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse,
                        const float* q, const float* k, const float* v, const AttentionShape& s) {
  const int64_t D = s.D, Tq = s.Tq;
#pragma omp parallel
  {
    const size_t tile = static_cast<size_t>(D * kKeyBlock);
    std::vector<float> kt(tile), vt(tile), dkt(tile), dvt(tile), di(static_cast<size_t>(Tq));
    float sc[kKeyBlock], dp[kKeyBlock];
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t h = 0; h < s.H; ++h) {
        const float* lse_bh = lse + (b * s.H + h) * Tq;
        for (int64_t i = 0; i < Tq; ++i) {  // D_i = dout_i · out_i
          const float* doi = dout + b * s.out_batch + i * s.out_row + h * D;
          const float* oi = out + b * s.out_batch + i * s.out_row + h * D;
          float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
          for (int64_t d = 0; d < D; ++d) acc += doi[d] * oi[d];
          di[size_t(i)] = acc;
        }
        for (int64_t j0 = 0; j0 < s.Tk; j0 += kKeyBlock) {
          const int64_t nj = std::min(kKeyBlock, s.Tk - j0);
          for (int64_t j = 0; j < nj; ++j) {
            const int64_t off = b * s.kv_batch + (j0 + j) * s.kv_row + h * D;
            for (int64_t d = 0; d < D; ++d) {
              kt[size_t(d * kKeyBlock + j)] = k[off + d];
              vt[size_t(d * kKeyBlock + j)] = v[off + d];
            }
          }
          std::fill(dkt.begin(), dkt.end(), 0.0f);
          std::fill(dvt.begin(), dvt.end(), 0.0f);
          // Causal: rows before j0 - q_pos0 see none of this block.
          const int64_t i0 = s.causal ? std::max<int64_t>(0, j0 - s.q_pos0) : 0;
          for (int64_t i = i0; i < Tq; ++i) {
            const float l = lse_bh[i];
            if (l == kNegInf) continue;
            const int64_t seen = std::min(nj, visible_end(s, i) - j0);  // keys of the block row i sees
            if (seen <= 0) continue;
            const float* qi = q + b * s.q_batch + i * s.q_row + h * D;
            const float* doi = dout + b * s.out_batch + i * s.out_row + h * D;
            float* dqi = dq + b * s.q_batch + i * s.q_row + h * D;
            for (int64_t j = 0; j < kKeyBlock; ++j) sc[j] = 0.0f, dp[j] = 0.0f;
            for (int64_t d = 0; d < D; ++d) {
              const float qd = qi[d], dod = doi[d];
              const float* ktd = kt.data() + d * kKeyBlock;
              const float* vtd = vt.data() + d * kKeyBlock;
#pragma omp simd
              for (int64_t j = 0; j < kKeyBlock; ++j) {
                sc[j] += qd * ktd[j];
                dp[j] += dod * vtd[j];
              }
            }
            // p_j = exp(s_j - lse_i); ds_j = p_j (dp_j - D_i) · scale; masked keys get 0.
            const float dii = di[size_t(i)], scale = s.scale;
#pragma omp simd
            for (int64_t j = 0; j < kKeyBlock; ++j) {
              const float p = j < seen ? fast_exp(sc[j] * scale - l) : 0.0f;
              sc[j] = p;
              dp[j] = p * (dp[j] - dii) * scale;
            }
            for (int64_t d = 0; d < D; ++d) {
              const float qd = qi[d], dod = doi[d];
              const float* ktd = kt.data() + d * kKeyBlock;
              float* dktd = dkt.data() + d * kKeyBlock;
              float* dvtd = dvt.data() + d * kKeyBlock;
              float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
              for (int64_t j = 0; j < kKeyBlock; ++j) {
                dvtd[j] += sc[j] * dod;
                dktd[j] += dp[j] * qd;
                acc += dp[j] * ktd[j];
              }
              dqi[d] += acc;
            }
          }
          for (int64_t j = 0; j < nj; ++j) {
            const int64_t off = b * s.kv_batch + (j0 + j) * s.kv_row + h * D;
            for (int64_t d = 0; d < D; ++d) {
              dk[off + d] += dkt[size_t(d * kKeyBlock + j)];
              dv[off + d] += dvt[size_t(d * kKeyBlock + j)];
            }
          }
        }
      }
  }
}

void attention_merge(float* out1, float* lse1, const float* out2, const float* lse2, int64_t B, int64_t T, int64_t H,
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
