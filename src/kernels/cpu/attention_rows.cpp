// kernels/cpu/attention_rows.cpp: per-token attention over a KV slot (see attention_rows.h).
// Plain loops: a decode step's attention is a few percent of its time next to the weight
// matrices, and sequential sums keep the order fixed (GCC does not reassociate them).
#include "kernels/cpu/attention_rows.h"

#include <cmath>
#include <vector>

namespace wafer {

void attention_rows_forward(float* out, const float* q, const float* k, const float* v, const int32_t* slot,
                            const int32_t* pos, const RowsAttentionShape& s) {
  const int64_t N = s.N, H = s.H, D = s.D;
#pragma omp parallel
  {
    std::vector<float> p;  // [pos + 1] scores, then probabilities
#pragma omp for schedule(static) collapse(2)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t h = 0; h < H; ++h) {
        const float* qi = q + n * s.q_row + h * D;
        const float* ks = k + slot[n] * s.slot_stride + h * D;
        const float* vs = v + slot[n] * s.slot_stride + h * D;
        const int64_t T = int64_t(pos[n]) + 1;
        p.resize(size_t(T));
        float mx = -INFINITY;
        for (int64_t j = 0; j < T; ++j) {
          const float* kj = ks + j * s.kv_row;
          float d = 0.0f;
          for (int64_t e = 0; e < D; ++e) d += qi[e] * kj[e];
          p[size_t(j)] = d * s.scale;
          mx = std::max(mx, p[size_t(j)]);
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < T; ++j) sum += p[size_t(j)] = std::exp(p[size_t(j)] - mx);
        float* o = out + n * H * D + h * D;
        for (int64_t e = 0; e < D; ++e) o[e] = 0.0f;
        for (int64_t j = 0; j < T; ++j) {
          const float* vj = vs + j * s.kv_row;
          const float pj = p[size_t(j)];
          for (int64_t e = 0; e < D; ++e) o[e] += pj * vj[e];
        }
        const float inv = 1.0f / sum;
        for (int64_t e = 0; e < D; ++e) o[e] *= inv;
      }
  }
}

}  // namespace wafer
