// model/batch_forward.cpp: embedding -> blocks -> ln_f and the head for the wanted rows.
//   block: x += c_proj(attn(ln_1(x)));  x += mlp_c_proj(gelu(c_fc(ln_2(x))))
// Every op is per row (LayerNorm with sequential sums, GELU and residual adds elementwise,
// batch-invariant GEMMs, per-token attention), so a row's result does not depend on the batch.
#include "model/batch_forward.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/attention_rows.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/rows_matmul.h"

namespace wafer {

namespace {
// LayerNorm of each row with plain sequential sums: its order is fixed (the library kernel's
// vectorised reduction may peel iterations by the row's alignment, which varies with the buffer).
void layernorm_rows(float* out, const float* x, const float* w, const float* b, int64_t N, int64_t C, float eps) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* xr = x + n * C;
    float m = 0.0f, v = 0.0f;
    for (int64_t i = 0; i < C; ++i) m += xr[i];
    m /= float(C);
    for (int64_t i = 0; i < C; ++i) v += (xr[i] - m) * (xr[i] - m);
    const float s = 1.0f / std::sqrt(v / float(C) + eps);
    float* y = out + n * C;
    for (int64_t i = 0; i < C; ++i) y[i] = (xr[i] - m) * s * w[i] + b[i];
  }
}
}  // namespace

void write_kv(const LayerKV& kv, const float* qkv, const TokenBatch& b, int64_t C) {
  for (int64_t i = 0; i < b.size(); ++i) {
    const float* row = qkv + i * 3 * C;
    const int64_t at = (int64_t(b.seq[size_t(i)]) * kv.Tmax + b.pos[size_t(i)]) * C;
    std::memcpy(kv.k + at, row + C, size_t(C) * sizeof(float));
    std::memcpy(kv.v + at, row + 2 * C, size_t(C) * sizeof(float));
  }
}

BatchForward::BatchForward(const Model& m)
    : m_(m), gelu_(m.config.activation == Activation::GeluErf ? gelu_erf_forward : gelu_tanh_forward) {
  WAFER_CHECK(m.shard.tp_size == 1 && m.shard.first_stage && m.shard.last_stage,
              "[serve] the batched forward runs the whole model on one rank (found a shard of a --tp/--pp layout)");
}

void BatchForward::block_forward(const LayerWeights& w, float* x, const TokenBatch& b, const LayerKV& kv) {
  const ModelConfig& c = m_.config;
  const int64_t N = b.size(), C = c.n_embd, F = c.ffn(), H = c.n_head, D = c.head_dim();
  const float eps = float(c.layer_norm_epsilon);
  layernorm_rows(ln_.data(), x, w.ln1_w, w.ln1_b, N, C, eps);
  rows_matmul(qkv_.data(), ln_.data(), m_.weight(w.qkv_w), w.qkv_b, N, C, 3 * C);  // [N, 3C] Q|K|V
  write_kv(kv, qkv_.data(), b, C);
  RowsAttentionShape s{.N = N, .H = H, .D = D, .q_row = 3 * C, .kv_row = C, .slot_stride = kv.Tmax * C,
                       .scale = float(c.attn_scale())};
  attention_rows_forward(atty_.data(), qkv_.data(), kv.k, kv.v, b.seq.data(), b.pos.data(), s);
  rows_matmul(y_.data(), atty_.data(), m_.weight(w.attn_proj_w), nullptr, N, C, C);
  residual_bias_forward(x, x, y_.data(), w.attn_proj_b, N, C);
  layernorm_rows(ln_.data(), x, w.ln2_w, w.ln2_b, N, C, eps);
  rows_matmul(fch_.data(), ln_.data(), m_.weight(w.fc_w), w.fc_b, N, C, F);
  for (int64_t n = 0; n < N; ++n) gelu_(fch_gelu_.data() + n * F, fch_.data() + n * F, F);
  rows_matmul(y_.data(), fch_gelu_.data(), m_.weight(w.fc_proj_w), nullptr, N, F, C);
  residual_bias_forward(x, x, y_.data(), w.fc_proj_b, N, C);
}

const float* BatchForward::forward(const TokenBatch& b, const std::vector<LayerKV>& kv, int64_t slots) {
  const ModelConfig& c = m_.config;
  const int64_t N = b.size(), C = c.n_embd, F = c.ffn(), V = c.vocab_size;
  WAFER_CHECK(N > 0, "[batch] expected at least one token");
  WAFER_CHECK(int64_t(kv.size()) == c.n_layer, "[batch] expected ", c.n_layer, " KV views, found ", kv.size());
  for (int64_t i = 0; i < N; ++i) {
    const size_t k = size_t(i);
    WAFER_CHECK(b.tokens[k] >= 0 && b.tokens[k] < V, "[batch] token id ", b.tokens[k], " is out of the vocabulary [0, ",
                V, ")");
    WAFER_CHECK(b.seq[k] >= 0 && b.seq[k] < slots, "[batch] slot ", b.seq[k], " is outside [0, ", slots, ")");
    WAFER_CHECK(b.pos[k] >= 0 && b.pos[k] < kv[0].Tmax && b.pos[k] < c.n_positions, "[batch] position ", b.pos[k],
                " is outside the cache of ", kv[0].Tmax, " positions");
  }
  x_.resize(size_t(N * C)), ln_.resize(size_t(N * C)), qkv_.resize(size_t(N * 3 * C));
  atty_.resize(size_t(N * C)), y_.resize(size_t(N * C)), fch_.resize(size_t(N * F)), fch_gelu_.resize(size_t(N * F));

  const float scale = float(c.mup_embeddings_scale);
  if (m_.fp32_matrices_released)
    embedding_forward(x_.data(), b.tokens.data(), m_.weight(m_.w.wte).bf16, 0, V, N, C, scale);
  else
    embedding_forward(x_.data(), b.tokens.data(), m_.w.wte, 0, V, N, C, scale);
  position_embedding_forward(x_.data(), b.pos.data(), m_.w.wpe, N, C, scale);
  for (int64_t l = 0; l < c.n_layer; ++l) block_forward(m_.w.layers[size_t(l)], x_.data(), b, kv[size_t(l)]);

  // ln_f and the head for the wanted rows only.
  int64_t n = 0;
  for (int64_t i = 0; i < N; ++i)
    if (b.logits[size_t(i)]) std::memmove(y_.data() + n++ * C, x_.data() + i * C, size_t(C) * sizeof(float));
  if (n == 0) return nullptr;
  layernorm_rows(ln_.data(), y_.data(), m_.w.lnf_w, m_.w.lnf_b, n, C, float(c.layer_norm_epsilon));
  logits_.resize(size_t(n * V));
  rows_matmul_transposed(logits_.data(), ln_.data(), m_.weight(m_.w.lm_head), n, C, V, float(c.mup_output_scale));
  return logits_.data();
}

}  // namespace wafer
