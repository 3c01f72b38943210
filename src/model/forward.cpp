// model/forward.cpp: embedding -> L blocks -> ln_f -> LM head.
//   block: x += c_proj(attn(ln_1(x)));  x += mlp_c_proj(gelu(c_fc(ln_2(x))))
#include "model/forward.h"

#include <cstring>

#include "core/error.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/matmul.h"

namespace wafer {

void BlockActivations::resize(const ModelConfig& c, int64_t B, int64_t T) {
  const size_t BT = size_t(B * T), C = size_t(c.n_embd), F = size_t(c.ffn()), H = size_t(c.n_head);
  ln1.resize(BT * C);
  ln1_mean.resize(BT);
  ln1_rstd.resize(BT);
  qkv.resize(BT * 3 * C);
  atty.resize(BT * C);
  att_lse.resize(BT * H);
  res2.resize(BT * C);
  ln2.resize(BT * C);
  ln2_mean.resize(BT);
  ln2_rstd.resize(BT);
  fch.resize(BT * F);
  fch_gelu.resize(BT * F);
}

ForwardPass::ForwardPass(const Model& m, PassMode mode)
    : m_(m),
      mode_(mode),
      gelu_(m.config.activation == Activation::GeluErf ? gelu_erf_forward : gelu_tanh_forward),
      gelu_backward_(m.config.activation == Activation::GeluErf ? gelu_erf_backward : gelu_tanh_backward) {
  const size_t L = size_t(m.config.n_layer);
  acts_.resize(mode == PassMode::Training ? L : 1);
  resid_.resize(mode == PassMode::Training ? L + 1 : 2);
}

void ForwardPass::resize(int64_t B, int64_t T) {
  const size_t BT = size_t(B * T), C = size_t(m_.config.n_embd);
  for (auto& a : acts_) a.resize(m_.config, B, T);
  for (auto& r : resid_) r.resize(BT * C);
  tmp_.resize(BT * C);
  lnf_.resize(BT * C);
  lnf_mean_.resize(BT);
  lnf_rstd_.resize(BT);
}

void ForwardPass::block_forward(const LayerWeights& w, BlockActivations& a, float* out, const float* x, int64_t B,
                                int64_t T, int64_t pos0, const LayerKV* kv) {
  const ModelConfig& c = m_.config;
  const int64_t C = c.n_embd, F = c.ffn(), H = c.n_head, D = c.head_dim(), BT = B * T;
  const float eps = float(c.layer_norm_epsilon);

  layernorm_forward(a.ln1.data(), a.ln1_mean.data(), a.ln1_rstd.data(), x, w.ln1_w, w.ln1_b, BT, C, eps);
  matmul_forward(a.qkv.data(), a.ln1.data(), w.qkv_w, w.qkv_b, BT, C, 3 * C);  // [B, T, 3C] = Q|K|V

  AttentionShape s;
  s.B = B, s.Tq = T, s.H = H, s.D = D, s.scale = c.attn_scale(), s.causal = true, s.q_pos0 = pos0;
  s.q_row = 3 * C, s.q_batch = T * 3 * C, s.out_row = C, s.out_batch = T * C;
  const float* q = a.qkv.data();
  if (kv) {  // append this call's K, V at positions pos0.. and attend over [0, pos0 + T)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t) {
        const float* row = a.qkv.data() + (b * T + t) * 3 * C;
        std::memcpy(kv->k + (b * kv->Tmax + pos0 + t) * C, row + C, size_t(C) * sizeof(float));
        std::memcpy(kv->v + (b * kv->Tmax + pos0 + t) * C, row + 2 * C, size_t(C) * sizeof(float));
      }
    s.Tk = pos0 + T, s.kv_row = C, s.kv_batch = kv->Tmax * C;
    attention_forward(a.atty.data(), a.att_lse.data(), q, kv->k, kv->v, s);
  } else {
    s.Tk = T, s.kv_row = 3 * C, s.kv_batch = T * 3 * C;
    attention_forward(a.atty.data(), a.att_lse.data(), q, q + C, q + 2 * C, s);
  }

  matmul_forward(tmp_.data(), a.atty.data(), w.attn_proj_w, w.attn_proj_b, BT, C, C);
  residual_forward(a.res2.data(), x, tmp_.data(), BT * C);
  layernorm_forward(a.ln2.data(), a.ln2_mean.data(), a.ln2_rstd.data(), a.res2.data(), w.ln2_w, w.ln2_b, BT, C, eps);
  matmul_forward(a.fch.data(), a.ln2.data(), w.fc_w, w.fc_b, BT, C, F);
  gelu_(a.fch_gelu.data(), a.fch.data(), BT * F);
  matmul_forward(tmp_.data(), a.fch_gelu.data(), w.fc_proj_w, w.fc_proj_b, BT, F, C);
  residual_forward(out, a.res2.data(), tmp_.data(), BT * C);
}

const float* ForwardPass::forward(const int32_t* tokens, int64_t B, int64_t T, int64_t pos0,
                                  const std::vector<LayerKV>& kv, LogitsRows rows) {
  const ModelConfig& c = m_.config;
  const int64_t C = c.n_embd, V = c.vocab_size, BT = B * T;
  WAFER_CHECK(B > 0 && T > 0, "[forward] expected a non-empty batch, found B=", B, " T=", T);
  WAFER_CHECK(pos0 >= 0 && pos0 + T <= c.n_positions, "[forward] positions ", pos0, "..", pos0 + T - 1,
              " exceed the model's context of ", c.n_positions, " tokens");
  WAFER_CHECK(kv.empty() || int64_t(kv.size()) == c.n_layer, "[forward] expected ", c.n_layer, " KV views, found ",
              kv.size());
  WAFER_CHECK(!kv.empty() || pos0 == 0, "[forward] pos0 > 0 needs a KV cache");
  for (int64_t i = 0; i < BT; ++i)
    WAFER_CHECK(tokens[i] >= 0 && tokens[i] < V, "[forward] token id ", tokens[i], " at position ", i,
                " is out of the vocabulary [0, ", V, ")");

  resize(B, T);
  const bool training = mode_ == PassMode::Training;
  embedding_forward(resid_[0].data(), tokens, m_.w.wte, m_.w.wpe, B, T, C, pos0, float(c.mup_embeddings_scale));
  for (int64_t l = 0; l < c.n_layer; ++l) {
    // Training keeps every layer's input and activations; inference ping-pongs two buffers.
    const size_t in = training ? size_t(l) : size_t(l % 2), out = training ? size_t(l + 1) : size_t((l + 1) % 2);
    block_forward(m_.w.layers[size_t(l)], acts_[training ? size_t(l) : 0], resid_[out].data(), resid_[in].data(), B, T,
                  pos0, kv.empty() ? nullptr : &kv[size_t(l)]);
    resid_out_ = resid_[out].data();
  }
  if (c.n_layer == 0) resid_out_ = resid_[0].data();
  layernorm_forward(lnf_.data(), lnf_mean_.data(), lnf_rstd_.data(), resid_out_, m_.w.lnf_w, m_.w.lnf_b, BT, C,
                    float(c.layer_norm_epsilon));

  const float* head_in = lnf_.data();
  int64_t n_rows = BT;
  if (rows == LogitsRows::Last) {
    last_rows_.resize(size_t(B * C));
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(last_rows_.data() + b * C, lnf_.data() + (b * T + T - 1) * C, size_t(C) * sizeof(float));
    head_in = last_rows_.data();
    n_rows = B;
  }
  logits_.resize(size_t(n_rows * V));
  matmul_forward_transposed(logits_.data(), head_in, m_.w.lm_head, n_rows, C, V, float(c.mup_output_scale));
  return logits_.data();
}

std::pair<double, int64_t> ForwardPass::forward_loss(const int32_t* tokens, const int32_t* targets, int64_t B,
                                                     int64_t T) {
  const int64_t V = m_.config.vocab_size, BT = B * T;
  WAFER_ASSERT(mode_ == PassMode::Training);
  for (int64_t i = 0; i < BT; ++i)
    WAFER_CHECK(targets[i] >= -1 && targets[i] < V, "[loss] target id ", targets[i], " at position ", i,
                " is out of the vocabulary [0, ", V, ")");
  const float* logits = forward(tokens, B, T, 0, {}, LogitsRows::All);
  losses_.resize(size_t(BT));
  cross_entropy_forward(losses_.data(), logits, targets, BT, V);
  double sum = 0.0;
  int64_t count = 0;
  for (int64_t i = 0; i < BT; ++i)
    if (targets[i] >= 0) {
      sum += double(losses_[size_t(i)]);
      ++count;
    }
  return {sum, count};
}

void ForwardPass::block_backward(const LayerWeights& w, const LayerWeights& g, const BlockActivations& a,
                                 const float* x, float* dx, int64_t B, int64_t T) {
  const ModelConfig& c = m_.config;
  const int64_t C = c.n_embd, F = c.ffn(), BT = B * T;
  auto zero = [](std::vector<float>& v, size_t n) { v.assign(n, 0.0f); };

  // MLP: out = res2 + fc_proj(gelu(fc(ln2(res2))))
  dres2_.assign(dx, dx + BT * C);  // the residual path
  zero(dfch_gelu_, size_t(BT * F));
  matmul_backward(dfch_gelu_.data(), g.fc_proj_w, g.fc_proj_b, dx, a.fch_gelu.data(), w.fc_proj_w, BT, F, C);
  zero(dfch_, size_t(BT * F));
  gelu_backward_(dfch_.data(), a.fch.data(), dfch_gelu_.data(), BT * F);
  zero(dln_, size_t(BT * C));
  matmul_backward(dln_.data(), g.fc_w, g.fc_b, dfch_.data(), a.ln2.data(), w.fc_w, BT, C, F);
  layernorm_backward(dres2_.data(), g.ln2_w, g.ln2_b, dln_.data(), a.res2.data(), w.ln2_w, a.ln2_mean.data(),
                     a.ln2_rstd.data(), BT, C);

  // Attention: res2 = x + attn_proj(attn(ln1(x)))
  std::copy(dres2_.begin(), dres2_.end(), dx);  // the residual path
  zero(datty_, size_t(BT * C));
  matmul_backward(datty_.data(), g.attn_proj_w, g.attn_proj_b, dres2_.data(), a.atty.data(), w.attn_proj_w, BT, C, C);
  zero(dqkv_, size_t(BT * 3 * C));
  AttentionShape s;
  s.B = B, s.Tq = T, s.Tk = T, s.H = c.n_head, s.D = c.head_dim(), s.scale = c.attn_scale(), s.causal = true;
  s.q_row = 3 * C, s.q_batch = T * 3 * C, s.kv_row = 3 * C, s.kv_batch = T * 3 * C, s.out_row = C, s.out_batch = T * C;
  const float* q = a.qkv.data();
  float* dq = dqkv_.data();
  attention_backward(dq, dq + C, dq + 2 * C, datty_.data(), a.atty.data(), a.att_lse.data(), q, q + C, q + 2 * C, s);
  zero(dln_, size_t(BT * C));
  matmul_backward(dln_.data(), g.qkv_w, g.qkv_b, dqkv_.data(), a.ln1.data(), w.qkv_w, BT, C, 3 * C);
  layernorm_backward(dx, g.ln1_w, g.ln1_b, dln_.data(), x, w.ln1_w, a.ln1_mean.data(), a.ln1_rstd.data(), BT, C);
}

void ForwardPass::backward(const int32_t* tokens, const int32_t* targets, int64_t B, int64_t T, float loss_scale,
                           const ModelWeights& grads) {
  const ModelConfig& c = m_.config;
  const int64_t C = c.n_embd, V = c.vocab_size, BT = B * T;
  WAFER_ASSERT(mode_ == PassMode::Training && logits_.size() == size_t(BT * V));
  // Loss -> logits, in place: logits_ becomes dlogits.
  std::vector<float> dloss(size_t(BT), loss_scale);
  cross_entropy_backward(logits_.data(), logits_.data(), targets, dloss.data(), BT, V);
  dlnf_.assign(size_t(BT * C), 0.0f);
  matmul_transposed_backward(dlnf_.data(), grads.lm_head, logits_.data(), lnf_.data(), m_.w.lm_head, BT, C, V,
                             float(c.mup_output_scale));
  std::vector<float>& dx = tmp_;
  dx.assign(size_t(BT * C), 0.0f);
  layernorm_backward(dx.data(), grads.lnf_w, grads.lnf_b, dlnf_.data(), resid_[size_t(c.n_layer)].data(), m_.w.lnf_w,
                     lnf_mean_.data(), lnf_rstd_.data(), BT, C);
  for (int64_t l = c.n_layer - 1; l >= 0; --l)
    block_backward(m_.w.layers[size_t(l)], grads.layers[size_t(l)], acts_[size_t(l)], resid_[size_t(l)].data(),
                   dx.data(), B, T);
  embedding_backward(grads.wte, grads.wpe, dx.data(), tokens, B, T, C, 0, float(c.mup_embeddings_scale));
}

}  // namespace wafer
