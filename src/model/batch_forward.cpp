// model/batch_forward.cpp: embedding -> blocks -> ln_f and the head for the wanted rows.
//   block: x += c_proj(attn(ln_1(x)));  x += mlp_c_proj(gelu(c_fc(ln_2(x))))
// Every op is per row (LayerNorm with sequential sums, GELU and residual adds elementwise,
// batch-invariant GEMMs, per-token attention), so a row's result does not depend on the batch.
#include "model/batch_forward.h"

#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/attention_rows.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/rows_matmul.h"
#include "parallel/vocab_parallel.h"

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

void write_kv(const LayerKV& kv, const float* qkv, const TokenBatch& b, int64_t H, int64_t D) {
  const int64_t C = H * D;
  for (int64_t i = 0; i < b.size(); ++i)
    for (int64_t h = 0; h < H; ++h) {
      const float* k = qkv + i * 3 * C + C + h * D;  // this head's K; its V is C further
      const int64_t at = ((int64_t(b.seq[size_t(i)]) * H + h) * kv.Tmax + b.pos[size_t(i)]) * D;
      if (kv.dtype == DType::BF16) {  // rounded to nearest even, as the bf16 GEMMs round their inputs
        uint16_t* k16 = static_cast<uint16_t*>(kv.k) + at;
        uint16_t* v16 = static_cast<uint16_t*>(kv.v) + at;
        for (int64_t e = 0; e < D; ++e) k16[e] = f32_to_bf16(k[e]), v16[e] = f32_to_bf16(k[C + e]);
      } else {
        std::memcpy(kv.k_f32() + at, k, size_t(D) * sizeof(float));
        std::memcpy(kv.v_f32() + at, k + C, size_t(D) * sizeof(float));
      }
    }
}

namespace {
constexpr int kTagResidual = 41, kTagLogits = 42;  // pp transfers of a serving step
}  // namespace

BatchForward::BatchForward(const Model& m) : BatchForward(m, ParallelState::single()) {}

BatchForward::BatchForward(const Model& m, const ParallelState& par)
    : m_(m),
      tp_(par.tp),
      pp_(par.pp),
      world_(par.world),
      gelu_(m.config.activation == Activation::GeluErf ? gelu_erf_rows_forward : gelu_tanh_rows_forward) {
  const Shard& sh = m.shard;
  WAFER_CHECK(par.layout.cp == 1 && par.layout.dp == 1, "[serve] serving splits a model by --tp and --pp only; found ",
              par.layout.describe());
  WAFER_CHECK(sh.tp_size == par.layout.tp && sh.tp_rank == par.at.tp && sh.first_stage == par.first_stage() &&
                  sh.last_stage == par.last_stage(),
              "[serve] the model held here is not this rank's shard of ", par.layout.describe());
}

void BatchForward::check(const TokenBatch& b, const std::vector<LayerKV>& kv, int64_t slots) const {
  const ModelConfig& c = m_.config;
  const int64_t N = b.size(), V = c.vocab_size;
  WAFER_CHECK(N > 0, "[batch] expected at least one token");
  WAFER_CHECK(int64_t(kv.size()) == m_.shard.n_layers(), "[batch] expected ", m_.shard.n_layers(), " KV views, found ",
              kv.size());
  for (const LayerKV& l : kv)
    WAFER_CHECK(l.dtype == DType::F32 || l.dtype == DType::BF16, "[batch] expected an F32 or BF16 KV cache, found ",
                dtype_name(l.dtype));
  for (int64_t i = 0; i < N; ++i) {
    const size_t k = size_t(i);
    WAFER_CHECK(b.tokens[k] >= 0 && b.tokens[k] < V, "[batch] token id ", b.tokens[k], " is out of the vocabulary [0, ",
                V, ")");
    WAFER_CHECK(b.seq[k] >= 0 && b.seq[k] < slots, "[batch] slot ", b.seq[k], " is outside [0, ", slots, ")");
    WAFER_CHECK(b.pos[k] >= 0 && (kv.empty() || b.pos[k] < kv[0].Tmax) && b.pos[k] < c.n_positions, "[batch] position ",
                b.pos[k], " is outside the cache of ", kv.empty() ? c.n_positions : kv[0].Tmax, " positions");
  }
}

// The descriptor on the wire: N (int64; 0 = keep-alive, -1 = end), then tokens, seq, pos
// (int32 each) and the logits flags (uint8), 13·N bytes.
void BatchForward::send_descriptor(const TokenBatch& b) {
  int64_t N = b.size();
  world_.broadcast(&N, sizeof N, 0);
  std::vector<uint8_t> wire(size_t(13 * N));
  std::memcpy(wire.data(), b.tokens.data(), size_t(4 * N));
  std::memcpy(wire.data() + 4 * N, b.seq.data(), size_t(4 * N));
  std::memcpy(wire.data() + 8 * N, b.pos.data(), size_t(4 * N));
  std::memcpy(wire.data() + 12 * N, b.logits.data(), size_t(N));
  world_.broadcast(wire.data(), int64_t(wire.size()), 0);
  last_sent_ = std::chrono::steady_clock::now();
}

const float* BatchForward::forward(const TokenBatch& b, const std::vector<LayerKV>& kv, int64_t slots) {
  WAFER_CHECK(world_.rank() == 0, "[serve] forward() is world rank 0's; the other ranks follow()");
  check(b, kv, slots);
  if (world_.size() > 1) send_descriptor(b);
  return run(b, kv, slots);
}

bool BatchForward::follow(const std::vector<LayerKV>& kv, int64_t slots) {
  int64_t N = 0;
  world_.broadcast(&N, sizeof N, 0);
  if (N < 0) return false;
  if (N == 0) return true;
  std::vector<uint8_t> wire(size_t(13 * N));
  world_.broadcast(wire.data(), int64_t(wire.size()), 0);
  TokenBatch& b = followed_;
  b.tokens.resize(size_t(N)), b.seq.resize(size_t(N)), b.pos.resize(size_t(N)), b.logits.resize(size_t(N));
  std::memcpy(b.tokens.data(), wire.data(), size_t(4 * N));
  std::memcpy(b.seq.data(), wire.data() + 4 * N, size_t(4 * N));
  std::memcpy(b.pos.data(), wire.data() + 8 * N, size_t(4 * N));
  std::memcpy(b.logits.data(), wire.data() + 12 * N, size_t(N));
  run(b, kv, slots);
  return true;
}

void BatchForward::idle() {
  if (world_.size() == 1 || std::chrono::steady_clock::now() - last_sent_ < std::chrono::seconds(1)) return;
  int64_t N = 0;
  world_.broadcast(&N, sizeof N, 0);
  last_sent_ = std::chrono::steady_clock::now();
}

void BatchForward::end() {
  if (world_.size() == 1) return;
  int64_t N = -1;
  world_.broadcast(&N, sizeof N, 0);
}

void BatchForward::tp_sum(float* y, int64_t n) {
  const int P = tp_.size();
  if (P == 1) return;
  parts_.resize(size_t(P * n));
  tp_.all_gather(parts_.data(), y, n);
  std::memcpy(y, parts_.data(), size_t(n) * sizeof(float));
  for (int r = 1; r < P; ++r) {
    const float* p = parts_.data() + size_t(r) * size_t(n);
    for (int64_t i = 0; i < n; ++i) y[i] += p[i];
  }
}

// x [N, C] <- scale·(wte[token] + wpe[pos]): each tp rank the token rows of its vocabulary
// shard (zero for the rest), tp rank 0 the positions, summed over the tp ranks.
void BatchForward::embed(float* x, const TokenBatch& b) {
  const ModelConfig& c = m_.config;
  const int64_t N = b.size(), C = c.n_embd;
  const float scale = float(c.mup_embeddings_scale);
  embed_token_rows(m_, x, b.tokens.data(), N, scale);
  if (tp_.rank() == 0) position_embedding_forward(x, b.pos.data(), m_.w.wpe, N, C, scale);
  tp_sum(x, N * C);
}

// One block over the batch's rows; this rank's heads (Ca = C/tp wide) and MLP columns (Fl).
void BatchForward::block_forward(const LayerWeights& w, float* x, const TokenBatch& b, const LayerKV& kv) {
  const ModelConfig& c = m_.config;
  const Shard& sh = m_.shard;
  const int64_t N = b.size(), C = c.n_embd, Ca = sh.attn_width(c), Fl = sh.ffn(c), D = c.head_dim();
  const float eps = float(c.layer_norm_epsilon);
  layernorm_rows(ln_.data(), x, w.ln1_w, w.ln1_b, N, C, eps);
  rows_matmul(qkv_.data(), ln_.data(), m_.weight(w.qkv_w), w.qkv_b, N, C, 3 * Ca);  // [N, 3Ca] Q|K|V
  const int64_t H = sh.heads(c);
  write_kv(kv, qkv_.data(), b, H, D);
  RowsAttentionShape s{.N = N, .H = H, .D = D, .q_row = 3 * Ca, .kv_row = D, .head_stride = kv.Tmax * D,
                       .slot_stride = kv.Tmax * Ca, .scale = float(c.attn_scale()), .kv_dtype = kv.dtype};
  attention_rows_forward(atty_.data(), qkv_.data(), kv.k, kv.v, b.seq.data(), b.pos.data(), s);
  rows_matmul(y_.data(), atty_.data(), m_.weight(w.attn_proj_w), nullptr, N, Ca, C);  // [N, C] partial over tp
  tp_sum(y_.data(), N * C);
  residual_bias_forward(x, x, y_.data(), w.attn_proj_b, N, C);
  layernorm_rows(ln_.data(), x, w.ln2_w, w.ln2_b, N, C, eps);
  rows_matmul(fch_.data(), ln_.data(), m_.weight(w.fc_w), w.fc_b, N, C, Fl);
  gelu_(fch_gelu_.data(), fch_.data(), N, Fl);
  rows_matmul(y_.data(), fch_gelu_.data(), m_.weight(w.fc_proj_w), nullptr, N, Fl, C);  // partial over tp
  tp_sum(y_.data(), N * C);
  residual_bias_forward(x, x, y_.data(), w.fc_proj_b, N, C);
}

// ln_f and the head for the wanted rows only: logits [n, V], the tp ranks' vocabulary shards
// [n, Vl] gathered and the padding dropped. nullptr when no row is wanted.
const float* BatchForward::head(const float* x, const TokenBatch& b) {
  const ModelConfig& c = m_.config;
  const Shard& sh = m_.shard;
  const int64_t N = b.size(), C = c.n_embd, V = c.vocab_size, Vl = sh.vocab_rows();
  int64_t n = 0;
  for (int64_t i = 0; i < N; ++i)
    if (b.logits[size_t(i)]) std::memmove(y_.data() + n++ * C, x + i * C, size_t(C) * sizeof(float));
  if (n == 0) return nullptr;
  layernorm_rows(ln_.data(), y_.data(), m_.w.lnf_w, m_.w.lnf_b, n, C, float(c.layer_norm_epsilon));
  if (tp_.size() == 1) {
    logits_.resize(size_t(n * V));
    rows_matmul_transposed(logits_.data(), ln_.data(), m_.weight(m_.w.lm_head), n, C, V, float(c.mup_output_scale));
    return logits_.data();
  }
  head_.resize(size_t(n * Vl));
  rows_matmul_transposed(head_.data(), ln_.data(), m_.weight(m_.w.lm_head), n, C, Vl, float(c.mup_output_scale));
  parts_.resize(size_t(tp_.size() * n * Vl));
  tp_.all_gather(parts_.data(), head_.data(), n * Vl);  // [tp][n][Vl]
  logits_.resize(size_t(n * V));
  for (int r = 0; r < tp_.size(); ++r) {
    const int64_t v0 = r * Vl, cnt = vocab_shard_valid(V, v0, Vl);
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(logits_.data() + i * V + v0, parts_.data() + (r * n + i) * Vl, size_t(cnt) * sizeof(float));
  }
  return logits_.data();
}

// This rank's part of a step: its stage's blocks between receiving the residual stream from the
// stage before (or embedding) and sending it on (or the head). Logits reach world rank 0.
const float* BatchForward::run(const TokenBatch& b, const std::vector<LayerKV>& kv, int64_t slots) {
  const ModelConfig& c = m_.config;
  const Shard& sh = m_.shard;
  const int64_t N = b.size(), C = c.n_embd, V = c.vocab_size, Ca = sh.attn_width(c), Fl = sh.ffn(c);
  x_.resize(size_t(N * C)), ln_.resize(size_t(N * C)), qkv_.resize(size_t(N * 3 * Ca));
  atty_.resize(size_t(N * Ca)), y_.resize(size_t(N * C)), fch_.resize(size_t(N * Fl)), fch_gelu_.resize(size_t(N * Fl));
  if (sh.first_stage)
    embed(x_.data(), b);
  else
    pp_.recv(x_.data(), N * C, pp_.rank() - 1, kTagResidual);
  for (int64_t l = 0; l < sh.n_layers(); ++l) block_forward(m_.w.layers[size_t(l)], x_.data(), b, kv[size_t(l)]);
  if (!sh.last_stage) pp_.send(x_.data(), N * C, pp_.rank() + 1, kTagResidual);
  const float* out = sh.last_stage ? head(x_.data(), b) : nullptr;
  int64_t n = 0;
  for (uint8_t want : b.logits) n += want;
  if (pp_.size() > 1 && tp_.rank() == 0 && n > 0) {  // the last stage's logits to the first stage's tp rank 0
    if (sh.last_stage) {
      pp_.send(out, n * V, 0, kTagLogits);
    } else if (sh.first_stage) {
      logits_.resize(size_t(n * V));
      pp_.recv(logits_.data(), n * V, pp_.size() - 1, kTagLogits);
      out = logits_.data();
    }
  }
  return world_.rank() == 0 ? out : nullptr;
}

}  // namespace wafer
