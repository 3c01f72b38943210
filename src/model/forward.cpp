// model/forward.cpp: embedding -> the stage's blocks -> ln_f -> LM head (+ loss), and back.
//   block: x += c_proj(attn(ln_1(x)));  x += mlp_c_proj(gelu(c_fc(ln_2(x))))
// Tensor parallel (Megatron): c_attn and c_fc are split by output columns (whole heads per
// rank), both c_proj by input rows; their partial outputs are summed over tp before the bias
// and the residual add. The forward's "identity, then all-reduce in the backward" and the
// reverse appear as explicit calls at each place.
#include "model/forward.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "core/error.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/matmul.h"
#include "model/memory.h"

namespace wafer {

LocalBatch local_batch(const int32_t* tokens, const int32_t* targets, int64_t B, int64_t T, int cp_rank, int cp,
                       int64_t pos0) {
  const std::vector<int64_t> ids = zigzag_chunks(cp_rank, cp);
  LocalBatch lb;
  lb.B = B;
  lb.chunks = int64_t(ids.size());
  lb.Tc = cp == 1 ? T : T / (2 * cp);
  WAFER_ASSERT(lb.Tc * (cp == 1 ? 1 : 2 * cp) == T);
  const size_t n = size_t(lb.rows());
  lb.tokens.reserve(n), lb.targets.reserve(n), lb.positions.reserve(n);
  for (int64_t id : ids)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = id * lb.Tc; t < (id + 1) * lb.Tc; ++t) {
        lb.tokens.push_back(tokens[b * T + t]);
        lb.targets.push_back(targets ? targets[b * T + t] : -1);
        lb.positions.push_back(int32_t(pos0 + t));
      }
  return lb;
}

ForwardPass::ForwardPass(const Model& m, const ParallelState& par, PassMode mode)
    : m_(m),
      par_(par),
      tp_(par.tp),
      cp_(par.cp),
      pp_(par.pp),
      mode_(mode),
      sp_(par.layout.sp && mode == PassMode::Training && par.tp.size() > 1),
      gelu_(m.config.activation == Activation::GeluErf ? gelu_erf_forward : gelu_tanh_forward),
      gelu_backward_(m.config.activation == Activation::GeluErf ? gelu_erf_backward : gelu_tanh_backward),
      gelu_span_(m.config.activation == Activation::GeluErf ? gelu_erf_span : gelu_tanh_span),
      slots_(1) {
  WAFER_ASSERT(m.shard.tp_size == par.tp.size());
}

int64_t ForwardPass::stage_rows(const LocalBatch& b) const {
  if (!sp_) return b.rows();
  WAFER_CHECK(b.rows() % tp_.size() == 0, "[layout] --sp shards each micro-batch's ", b.rows(),
              " rows (sequences x tokens per cp rank) over --tp ", tp_.size(), " ranks, which must divide them");
  return b.rows() / tp_.size();
}

// Every buffer's size comes from the memory account (model/memory.h), which prints the same
// numbers as its prediction. Training also sizes the pass's scratch here, once per batch shape.
void ForwardPass::resize_slot(StageActivations& s, const LocalBatch& b) {
  const ModelConfig& c = m_.config;
  const Shard& sh = m_.shard;
  const RowShape r{.B = b.B, .Tc = b.Tc, .chunks = b.chunks, .N = b.rows(), .Ns = stage_rows(b)};
  const bool training = mode_ == PassMode::Training;
  const BlockActivationSizes all = block_activation_sizes(c, sh, r);
  const Recompute rc = training ? recompute_ : Recompute::None;
  const SlotSizes ss = slot_sizes(c, sh, r, training);
  auto size = [](std::vector<float>& v, int64_t k) { v.resize(size_t(k)); };
  auto size_block = [&](BlockActivations& a, const BlockActivationSizes& n) {
    size(a.ln1, n.ln1), size(a.ln1_mean, n.ln1_mean), size(a.ln1_rstd, n.ln1_rstd);
    size(a.qkv, n.qkv), size(a.atty, n.atty), size(a.att_lse, n.att_lse), size(a.res2, n.res2);
    size(a.ln2, n.ln2), size(a.ln2_mean, n.ln2_mean), size(a.ln2_rstd, n.ln2_rstd);
    size(a.fch, n.fch), size(a.fch_gelu, n.fch_gelu);
  };
  s.blocks.resize(size_t(ss.blocks));
  s.resid.resize(size_t(ss.resid_count));
  for (auto& a : s.blocks) size_block(a, kept_block_activations(all, rc));
  size_block(work_, recomputed_block_activations(all, rc));
  for (auto& x : s.resid) size(x, ss.resid);
  size(s.lnf_mean, ss.lnf_stat), size(s.lnf_rstd, ss.lnf_stat);
  size(s.dresid, ss.dresid), size(s.dinput, ss.dinput);
  s.loss_sum = 0;
  if (!training) return;
  Layout l;
  l.tp = tp_.size(), l.cp = cp_.size(), l.sp = sp_;
  const PassScratchSizes p = pass_scratch_sizes(c, sh, l, r, rc);
  size(recompute_out_, p.recompute_out);
  size(tmp_full_, p.tmp_full), size(tmp_rows_, p.tmp_rows), size(lnf_full_, p.lnf_full), size(lnf_rows_, p.lnf_rows);
  size(logits_, p.logits), size(losses_, p.losses);
  size(dres2_, p.dres2), size(dfch_, p.dfch), size(dfch_gelu_, p.dfch_gelu), size(dln_, p.dln);
  size(datty_, p.datty), size(dqkv_, p.dqkv), size(dgather_, p.dgather);
  for (auto& kv : ring_.kv) size(kv, p.ring_kv);
  size(ring_.part_out, p.ring_part_out), size(ring_.part_lse, p.ring_part_lse);
}

float* ForwardPass::prepare(int slot, const LocalBatch& b) {
  if (size_t(slot) >= slots_.size()) slots_.resize(size_t(slot) + 1);
  StageActivations& s = slots_[size_t(slot)];
  resize_slot(s, b);
  return s.resid[0].data();
}

const float* ForwardPass::gather_rows(std::vector<float>& full, const float* x, int64_t Ns) {
  if (!sp_) return x;
  full.resize(size_t(Ns * tp_.size() * m_.config.n_embd));
  tp_.all_gather(full.data(), x, Ns * m_.config.n_embd);
  return full.data();
}

const float* ForwardPass::reduce_rows(float* partial, float* out, int64_t Ns) {
  const int64_t C = m_.config.n_embd;
  if (sp_) {
    tp_.reduce_scatter_sum(out, partial, Ns * C);
    return out;
  }
  tp_.all_reduce_sum(partial, Ns * C);
  return partial;
}

// x [Ns, C] <- scale·(wte[token] + wpe[position]), the token rows summed over the vocabulary
// shards (each rank contributes the rows it holds, zero for the rest; positions come from tp rank 0).
void ForwardPass::embed(float* x, const LocalBatch& b) {
  const ModelConfig& c = m_.config;
  const int64_t N = b.rows(), C = c.n_embd, Ns = stage_rows(b);
  const float scale = float(c.mup_embeddings_scale);
  tmp_full_.resize(size_t(N * C));
  float* e = sp_ ? tmp_full_.data() : x;
  embed_token_rows(m_, e, b.tokens.data(), N, scale);
  if (tp_.rank() == 0) position_embedding_forward(e, b.positions.data(), m_.w.wpe, N, C, scale);
  reduce_rows(e, x, Ns);
}

void ForwardPass::embed_backward(const float* dx, const LocalBatch& b, const ModelWeights& grads) {
  const ModelConfig& c = m_.config;
  const Shard& sh = m_.shard;
  const int64_t N = b.rows(), C = c.n_embd;
  const float scale = float(c.mup_embeddings_scale);
  const float* d = gather_rows(dgather_, dx, stage_rows(b));  // [N, C]
  embedding_backward(grads.wte, d, b.tokens.data(), sh.vocab_begin(), sh.vocab_rows(), N, C, scale);
  position_embedding_backward(grads.wpe, d, b.positions.data(), N, C, scale);
}

void ForwardPass::block_forward(const LayerWeights& w, BlockActivations& a, float* out, const float* x,
                                const LocalBatch& b, const LayerKV* kv, int64_t pos0) {
  const ModelConfig& c = m_.config;
  const Shard& sh = m_.shard;
  const int64_t C = c.n_embd, Ca = sh.attn_width(c), Fl = sh.ffn(c);
  const int64_t N = b.rows(), Ns = stage_rows(b);
  const float eps = float(c.layer_norm_epsilon);
  tmp_full_.resize(size_t(N * C));
  tmp_rows_.resize(size_t(Ns * C));

  // Attention: ln_1 on this rank's rows, then all rows for the column-parallel c_attn.
  if (sp_) {
    layernorm_forward(tmp_rows_.data(), a.ln1_mean.data(), a.ln1_rstd.data(), x, w.ln1_w, w.ln1_b, Ns, C, eps);
    tp_.all_gather(a.ln1.data(), tmp_rows_.data(), Ns * C);
  } else {
    layernorm_forward(a.ln1.data(), a.ln1_mean.data(), a.ln1_rstd.data(), x, w.ln1_w, w.ln1_b, N, C, eps);
  }
  attention_core(w, a, b, kv, pos0);
  matmul_forward(tmp_full_.data(), a.atty.data(), m_.weight(w.attn_proj_w), nullptr, N, Ca, C);  // partial over tp
  const float* y = reduce_rows(tmp_full_.data(), tmp_rows_.data(), Ns);
  residual_bias_forward(a.res2.data(), x, y, w.attn_proj_b, Ns, C);

  // MLP, the same pattern: c_fc by columns, c_proj by rows.
  if (sp_) {
    layernorm_forward(tmp_rows_.data(), a.ln2_mean.data(), a.ln2_rstd.data(), a.res2.data(), w.ln2_w, w.ln2_b, Ns, C,
                      eps);
    tp_.all_gather(a.ln2.data(), tmp_rows_.data(), Ns * C);
  } else {
    layernorm_forward(a.ln2.data(), a.ln2_mean.data(), a.ln2_rstd.data(), a.res2.data(), w.ln2_w, w.ln2_b, N, C, eps);
  }
  matmul_forward(a.fch.data(), a.ln2.data(), m_.weight(w.fc_w), w.fc_b, N, C, Fl);
  gelu_(a.fch_gelu.data(), a.fch.data(), N * Fl);
  matmul_forward(tmp_full_.data(), a.fch_gelu.data(), m_.weight(w.fc_proj_w), nullptr, N, Fl, C);
  y = reduce_rows(tmp_full_.data(), tmp_rows_.data(), Ns);
  residual_bias_forward(out, a.res2.data(), y, w.fc_proj_b, Ns, C);
}

void ForwardPass::attention_core(const LayerWeights& w, BlockActivations& a, const LocalBatch& b, const LayerKV* kv,
                                 int64_t pos0) {
  const ModelConfig& c = m_.config;
  const Shard& sh = m_.shard;
  const int64_t C = c.n_embd, Ca = sh.attn_width(c), Ha = sh.heads(c), D = c.head_dim(), N = b.rows();
  matmul_forward(a.qkv.data(), a.ln1.data(), m_.weight(w.qkv_w), w.qkv_b, N, C, 3 * Ca);  // [N, 3Ca] = Q|K|V of Ha heads
  if (kv) {  // decoding (cp = 1): append K, V at positions pos0.. and attend over [0, pos0 + T)
    const int64_t B = b.B, T = b.Tc;
    for (int64_t bi = 0; bi < B; ++bi)
      for (int64_t t = 0; t < T; ++t) {
        const float* row = a.qkv.data() + (bi * T + t) * 3 * Ca;
        std::memcpy(kv->k_f32() + (bi * kv->Tmax + pos0 + t) * Ca, row + Ca, size_t(Ca) * sizeof(float));
        std::memcpy(kv->v_f32() + (bi * kv->Tmax + pos0 + t) * Ca, row + 2 * Ca, size_t(Ca) * sizeof(float));
      }
    AttentionShape s;
    s.B = B, s.Tq = T, s.Tk = pos0 + T, s.H = Ha, s.D = D, s.scale = c.attn_scale(), s.causal = true, s.q_pos0 = pos0;
    s.q_row = 3 * Ca, s.q_batch = T * 3 * Ca, s.kv_row = Ca, s.kv_batch = kv->Tmax * Ca, s.out_row = Ca,
    s.out_batch = T * Ca;
    attention_forward(a.atty.data(), a.att_lse.data(), a.qkv.data(), kv->k_f32(), kv->v_f32(), s);
  } else {
    ring_attention_forward(cp_, a.atty.data(), a.att_lse.data(), a.qkv.data(), {b.B, b.Tc, Ha, D, c.attn_scale()},
                           ring_);
  }
}

void ForwardPass::block_backward(const LayerWeights& w, const LayerWeights& g, const BlockActivations& a,
                                 const float* x, float* dx, const LocalBatch& b) {
  const ModelConfig& c = m_.config;
  const Shard& sh = m_.shard;
  const int64_t C = c.n_embd, Ca = sh.attn_width(c), Fl = sh.ffn(c), Ha = sh.heads(c), D = c.head_dim();
  const int64_t N = b.rows(), Ns = stage_rows(b);
  auto zero = [](std::vector<float>& v, int64_t n) { v.assign(size_t(n), 0.0f); };
  tmp_rows_.resize(size_t(Ns * C));

  // MLP: out = res2 + fc_proj(gelu(fc(ln2(res2)))) + fc_proj_b
  dres2_.assign(dx, dx + Ns * C);  // the residual path
  bias_backward(g.fc_proj_b, dx, Ns, C);
  const float* dy = gather_rows(dgather_, dx, Ns);  // [N, C]: every row for the row-parallel c_proj
  zero(dfch_gelu_, N * Fl);
  matmul_backward(dfch_gelu_.data(), g.fc_proj_w, nullptr, dy, a.fch_gelu.data(), m_.weight(w.fc_proj_w), N, Fl, C);
  zero(dfch_, N * Fl);
  gelu_backward_(dfch_.data(), a.fch.data(), dfch_gelu_.data(), N * Fl);
  zero(dln_, N * C);
  matmul_backward(dln_.data(), g.fc_w, g.fc_b, dfch_.data(), a.ln2.data(), m_.weight(w.fc_w), N, C, Fl);
  const float* dln = reduce_rows(dln_.data(), tmp_rows_.data(), Ns);  // c_fc's input gradient, summed over tp
  layernorm_backward(dres2_.data(), g.ln2_w, g.ln2_b, dln, a.res2.data(), w.ln2_w, a.ln2_mean.data(),
                     a.ln2_rstd.data(), Ns, C);

  // Attention: res2 = x + attn_proj(attn(ln1(x))) + attn_proj_b
  std::copy(dres2_.begin(), dres2_.end(), dx);  // the residual path
  bias_backward(g.attn_proj_b, dres2_.data(), Ns, C);
  dy = gather_rows(dgather_, dres2_.data(), Ns);
  zero(datty_, N * Ca);
  matmul_backward(datty_.data(), g.attn_proj_w, nullptr, dy, a.atty.data(), m_.weight(w.attn_proj_w), N, Ca, C);
  zero(dqkv_, N * 3 * Ca);
  ring_attention_backward(cp_, dqkv_.data(), datty_.data(), a.atty.data(), a.att_lse.data(), a.qkv.data(),
                          {b.B, b.Tc, Ha, D, c.attn_scale()}, ring_);
  zero(dln_, N * C);
  matmul_backward(dln_.data(), g.qkv_w, g.qkv_b, dqkv_.data(), a.ln1.data(), m_.weight(w.qkv_w), N, C, 3 * Ca);
  dln = reduce_rows(dln_.data(), tmp_rows_.data(), Ns);
  layernorm_backward(dx, g.ln1_w, g.ln1_b, dln, x, w.ln1_w, a.ln1_mean.data(), a.ln1_rstd.data(), Ns, C);
}

namespace {
// Lends a block the working buffers for what `rc` does not keep (and takes them back: the same
// call again). The swaps move vectors, not their contents.
void swap_recomputed(BlockActivations& a, BlockActivations& work, Recompute rc) {
  if (rc == Recompute::Full) std::swap(a, work);
  if (rc != Recompute::Selective) return;
  std::swap(a.qkv, work.qkv), std::swap(a.atty, work.atty), std::swap(a.att_lse, work.att_lse);
}
}  // namespace

const float* ForwardPass::run_blocks(StageActivations& s, const LocalBatch& b, const std::vector<LayerKV>& kv,
                                     int64_t pos0) {
  const bool training = mode_ == PassMode::Training;
  const Recompute rc = training ? recompute_ : Recompute::None;
  const int64_t L = m_.shard.n_layers();
  for (int64_t l = 0; l < L; ++l) {
    // Training keeps every block's input and activations (less what rc recomputes); inference
    // ping-pongs two buffers.
    const size_t in = training ? size_t(l) : size_t(l % 2), out = training ? size_t(l + 1) : size_t((l + 1) % 2);
    BlockActivations& a = s.blocks[training ? size_t(l) : 0];
    swap_recomputed(a, work_, rc);
    block_forward(m_.w.layers[size_t(l)], a, s.resid[out].data(), s.resid[in].data(), b,
                  kv.empty() ? nullptr : &kv[size_t(l)], pos0);
    swap_recomputed(a, work_, rc);
  }
  return s.resid[training ? size_t(L) : size_t(L % 2)].data();
}

void ForwardPass::recompute_then_backward(StageActivations& s, int64_t l, float* dx, const LocalBatch& b,
                                          const ModelWeights& grads) {
  const LayerWeights& w = m_.w.layers[size_t(l)];
  BlockActivations& a = s.blocks[size_t(l)];
  const float* x = s.resid[size_t(l)].data();
  swap_recomputed(a, work_, recompute_);
  if (recompute_ == Recompute::Full) block_forward(w, a, recompute_out_.data(), x, b, nullptr, 0);
  if (recompute_ == Recompute::Selective) attention_core(w, a, b, nullptr, 0);
  block_backward(w, grads.layers[size_t(l)], a, x, dx, b);
  swap_recomputed(a, work_, recompute_);
}

void ForwardPass::head_logits(StageActivations& s, const float* x, const LocalBatch& b, LogitsRows rows) {
  const ModelConfig& c = m_.config;
  const int64_t C = c.n_embd, Vl = m_.shard.vocab_rows(), Ns = stage_rows(b);
  lnf_rows_.resize(size_t(Ns * C));
  layernorm_forward(lnf_rows_.data(), s.lnf_mean.data(), s.lnf_rstd.data(), x, m_.w.lnf_w, m_.w.lnf_b, Ns, C,
                    float(c.layer_norm_epsilon));
  const float* lnf = gather_rows(lnf_full_, lnf_rows_.data(), Ns);  // [N, C]
  int64_t n = b.rows();
  if (rows == LogitsRows::Last) {  // one chunk (cp = 1): each sequence's last row
    WAFER_ASSERT(b.chunks == 1 && !sp_);
    tmp_rows_.resize(size_t(b.B * C));
    for (int64_t bi = 0; bi < b.B; ++bi)
      std::memcpy(tmp_rows_.data() + bi * C, lnf + (bi * b.Tc + b.Tc - 1) * C, size_t(C) * sizeof(float));
    lnf = tmp_rows_.data();
    n = b.B;
  }
  logits_.resize(size_t(n * Vl));
  matmul_forward_transposed(logits_.data(), lnf, m_.weight(m_.w.lm_head), n, C, Vl, float(c.mup_output_scale));
}

const float* ForwardPass::stage_forward(int slot, const LocalBatch& b, float loss_scale, const ModelWeights* grads) {
  const ModelConfig& c = m_.config;
  const Shard& sh = m_.shard;
  StageActivations& s = slots_[size_t(slot)];
  if (sh.first_stage) embed(s.resid[0].data(), b);
  const float* out = run_blocks(s, b, {}, 0);
  if (!sh.last_stage) return out;

  const int64_t N = b.rows(), C = c.n_embd, Vl = sh.vocab_rows(), Ns = stage_rows(b);
  head_logits(s, out, b, LogitsRows::All);
  losses_.resize(size_t(N));
  vocab_parallel_cross_entropy(tp_, losses_.data(), ce_, logits_.data(), b.targets.data(), N, Vl, sh.vocab_begin(),
                               c.vocab_size);
  s.loss_sum = 0;
  for (int64_t i = 0; i < N; ++i)
    if (b.targets[size_t(i)] >= 0) s.loss_sum += double(losses_[size_t(i)]);
  if (!grads) return nullptr;

  // The loss backward through the head now, while the logits are at hand: the slot keeps only
  // the gradient at the blocks' output, never a micro-batch's [N, Vl] logits.
  const int64_t valid = vocab_shard_valid(c.vocab_size, sh.vocab_begin(), Vl);
  std::vector<float> dloss(size_t(N), loss_scale);
  cross_entropy_shard_backward(logits_.data(), logits_.data(), b.targets.data(), dloss.data(), ce_.rowmax.data(),
                               ce_.sumexp.data(), N, Vl, sh.vocab_begin(), valid);
  const float* lnf = sp_ ? lnf_full_.data() : lnf_rows_.data();
  dln_.assign(size_t(N * C), 0.0f);
  matmul_transposed_backward(dln_.data(), grads->lm_head, logits_.data(), lnf, m_.weight(m_.w.lm_head), N, C, Vl,
                             float(c.mup_output_scale));
  tmp_rows_.resize(size_t(Ns * C));
  const float* dlnf = reduce_rows(dln_.data(), tmp_rows_.data(), Ns);  // summed over the vocabulary shards
  std::fill(s.dresid.begin(), s.dresid.end(), 0.0f);
  layernorm_backward(s.dresid.data(), grads->lnf_w, grads->lnf_b, dlnf, out, m_.w.lnf_w, s.lnf_mean.data(),
                     s.lnf_rstd.data(), Ns, C);
  return nullptr;
}

const float* ForwardPass::stage_backward(int slot, const LocalBatch& b, const float* dout, const ModelWeights& grads) {
  const Shard& sh = m_.shard;
  StageActivations& s = slots_[size_t(slot)];
  WAFER_ASSERT(mode_ == PassMode::Training);
  float* dx = s.dinput.data();
  if (sh.last_stage)
    std::copy(s.dresid.begin(), s.dresid.end(), dx);
  else
    std::copy(dout, dout + s.dinput.size(), dx);
  for (int64_t l = sh.n_layers() - 1; l >= 0; --l) recompute_then_backward(s, l, dx, b, grads);
  if (!sh.first_stage) return dx;
  embed_backward(dx, b, grads);
  return nullptr;
}

// --- Whole-model calls -------------------------------------------------------------------------

const float* ForwardPass::whole_model_stage(StageActivations& s, const LocalBatch& b, const std::vector<LayerKV>& kv,
                                            int64_t pos0, int tag) {
  const int64_t n = b.rows() * m_.config.n_embd;
  resize_slot(s, b);
  // Pipeline: stage p receives from p-1 and sends to p+1.
  if (m_.shard.first_stage)
    embed(s.resid[0].data(), b);
  else
    pp_.recv(s.resid[0].data(), n, pp_.rank() - 1, tag);
  const float* out = run_blocks(s, b, kv, pos0);
  if (!m_.shard.last_stage) pp_.send(out, n, pp_.rank() + 1, tag);
  return out;
}

const float* ForwardPass::forward(const int32_t* tokens, int64_t B, int64_t T, int64_t pos0,
                                  const std::vector<LayerKV>& kv, LogitsRows rows) {
  const ModelConfig& c = m_.config;
  const Shard& sh = m_.shard;
  const int64_t V = c.vocab_size, Vl = sh.vocab_rows();
  WAFER_CHECK(B > 0 && T > 0, "[forward] expected a non-empty batch, found B=", B, " T=", T);
  WAFER_CHECK(pos0 >= 0 && pos0 + T <= c.n_positions, "[forward] positions ", pos0, "..", pos0 + T - 1,
              " exceed the model's context of ", c.n_positions, " tokens");
  WAFER_CHECK(kv.empty() || int64_t(kv.size()) == sh.n_layers(), "[forward] expected ", sh.n_layers(),
              " KV views, found ", kv.size());
  WAFER_CHECK(!kv.empty() || pos0 == 0, "[forward] pos0 > 0 needs a KV cache");
  WAFER_CHECK(kv.empty() || kv[0].dtype == DType::F32, "[forward] expected an fp32 KV cache, found ",
              dtype_name(kv[0].dtype));
  WAFER_CHECK(kv.empty() || cp_.size() == 1, "[forward] decoding with a KV cache needs --cp 1 (found --cp ",
              cp_.size(), ")");
  check_sequence(par_.layout, T, "the number of tokens");
  for (int64_t i = 0; i < B * T; ++i)
    WAFER_CHECK(tokens[i] >= 0 && tokens[i] < V, "[forward] token id ", tokens[i], " at position ", i,
                " is out of the vocabulary [0, ", V, ")");
  const LocalBatch b = local_batch(tokens, nullptr, B, T, cp_.rank(), cp_.size(), pos0);
  const int64_t N = b.rows();
  StageActivations& s = slots_[0];
  if (decode_in_one_region(b, kv)) {
    resize_slot(s, b);
    decode_step(s, b, kv, pos0);
    logits_.resize(size_t(V));  // the padding rows dropped, as below
    return logits_.data();
  }
  const float* out = whole_model_stage(s, b, kv, pos0, 1);

  // Last stage: logits of this rank's vocabulary shard and rows, then the whole [n, V] on every rank.
  const bool last_only = rows == LogitsRows::Last && cp_.size() == 1;
  const int64_t n = last_only ? B : N;  // rows computed here
  const int64_t out_rows = rows == LogitsRows::Last ? B : B * T;
  if (sh.last_stage) head_logits(s, out, b, last_only ? LogitsRows::Last : LogitsRows::All);
  std::vector<float>& result = tp_.size() == 1 && cp_.size() == 1 ? logits_ : gathered_;
  result.resize(size_t(out_rows * V));
  if (sh.last_stage && &result == &gathered_) {
    std::vector<float> shards(size_t(tp_.size() * n * Vl));
    tp_.all_gather(shards.data(), logits_.data(), n * Vl);  // [tp][n][Vl]
    std::vector<float> mine(size_t(n * V));                 // [n][V], padding dropped
    for (int r = 0; r < tp_.size(); ++r)
      for (int64_t i = 0; i < n; ++i) {
        const int64_t v0 = r * Vl, cnt = vocab_shard_valid(V, v0, Vl);
        std::memcpy(mine.data() + i * V + v0, shards.data() + (r * n + i) * Vl, size_t(cnt) * sizeof(float));
      }
    if (cp_.size() == 1) {
      std::copy(mine.begin(), mine.end(), gathered_.begin());
    } else {  // every cp rank's rows back into sequence order
      std::vector<float> all(size_t(cp_.size() * n * V));
      cp_.all_gather(all.data(), mine.data(), n * V);
      for (int r = 0; r < cp_.size(); ++r) {
        const std::vector<int64_t> ids = zigzag_chunks(r, cp_.size());
        for (size_t ci = 0; ci < ids.size(); ++ci)
          for (int64_t bi = 0; bi < B; ++bi)
            for (int64_t t = 0; t < b.Tc; ++t) {
              const int64_t gt = ids[ci] * b.Tc + t;
              if (rows == LogitsRows::Last && gt != T - 1) continue;
              const float* src = all.data() + ((r * int64_t(ids.size()) + int64_t(ci)) * B * b.Tc + bi * b.Tc + t) * V;
              float* dst = gathered_.data() + (rows == LogitsRows::Last ? bi : bi * T + gt) * V;
              std::memcpy(dst, src, size_t(V) * sizeof(float));
            }
      }
    }
  }
  pp_.broadcast(result.data(), int64_t(result.size() * sizeof(float)), pp_.size() - 1);
  return result.data();
}

std::pair<double, int64_t> ForwardPass::forward_loss(const int32_t* tokens, const int32_t* targets, int64_t B,
                                                     int64_t T) {
  const ModelConfig& c = m_.config;
  const Shard& sh = m_.shard;
  const int64_t V = c.vocab_size;
  WAFER_CHECK(B > 0 && T > 0 && T <= c.n_positions, "[loss] expected 1..", c.n_positions, " tokens per row, found ", T);
  check_sequence(par_.layout, T, "the number of tokens");
  for (int64_t i = 0; i < B * T; ++i) {
    WAFER_CHECK(tokens[i] >= 0 && tokens[i] < V, "[loss] token id ", tokens[i], " at position ", i,
                " is out of the vocabulary [0, ", V, ")");
    WAFER_CHECK(targets[i] >= -1 && targets[i] < V, "[loss] target id ", targets[i], " at position ", i,
                " is out of the vocabulary [0, ", V, ")");
  }
  const LocalBatch b = local_batch(tokens, targets, B, T, cp_.rank(), cp_.size());
  const int64_t N = b.rows();
  StageActivations& s = slots_[0];
  const float* out = whole_model_stage(s, b, {}, 0, 2);
  double result[2] = {0, 0};  // Σ loss, counted targets
  if (sh.last_stage) {
    head_logits(s, out, b, LogitsRows::All);
    losses_.resize(size_t(N));
    vocab_parallel_cross_entropy(tp_, losses_.data(), ce_, logits_.data(), b.targets.data(), N, sh.vocab_rows(),
                                 sh.vocab_begin(), V);
    for (int64_t i = 0; i < N; ++i)
      if (b.targets[size_t(i)] >= 0) result[0] += double(losses_[size_t(i)]), result[1] += 1;
    cp_.all_reduce_sum(result, 2);
  }
  pp_.broadcast(result, sizeof result, pp_.size() - 1);
  return {result[0], int64_t(result[1])};
}

// --- Memory held (the memory account's test) ----------------------------------------------------

namespace {
double cap(const std::vector<float>& v) { return 4.0 * double(v.capacity()); }
}  // namespace

double ForwardPass::slot_bytes() const {
  double b = 0;
  for (const StageActivations& s : slots_) {
    for (const BlockActivations& a : s.blocks)
      for (const auto* v : {&a.ln1, &a.ln1_mean, &a.ln1_rstd, &a.qkv, &a.atty, &a.att_lse, &a.res2, &a.ln2, &a.ln2_mean,
                            &a.ln2_rstd, &a.fch, &a.fch_gelu})
        b += cap(*v);
    for (const auto& r : s.resid) b += cap(r);
    b += cap(s.lnf_mean) + cap(s.lnf_rstd) + cap(s.dresid) + cap(s.dinput);
  }
  return b;
}

double ForwardPass::scratch_bytes() const {
  double b = 0;
  for (const auto* v : {&tmp_full_, &tmp_rows_, &lnf_full_, &lnf_rows_, &dres2_, &dfch_, &dfch_gelu_, &dln_, &datty_,
                        &dqkv_, &dgather_, &ring_.kv[0], &ring_.kv[1], &ring_.part_out, &ring_.part_lse})
    b += cap(*v);
  return b;
}

double ForwardPass::logits_bytes() const {
  return cap(logits_) + cap(losses_) + cap(ce_.rowmax) + 8.0 * double(ce_.sumexp.capacity() + ce_.target.capacity());
}

}  // namespace wafer
