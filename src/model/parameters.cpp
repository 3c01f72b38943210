// model/parameters.cpp: the parameter list of a shard and the views into the flat buffer.
#include "model/parameters.h"

#include <cstring>
#include <map>

#include "core/error.h"
#include "io/tensor_source.h"

namespace wafer {

int64_t ParamSpec::numel() const { return shape_numel(shape); }

Shard Shard::full(const ModelConfig& c) { return of(c, 0, 1, 0, c.n_layer, true, true); }

Shard Shard::of(const ModelConfig& c, int tp_rank, int tp_size, int64_t layer_begin, int64_t layer_end, bool first,
                bool last) {
  Shard s;
  s.tp_rank = tp_rank;
  s.tp_size = tp_size;
  s.layer_begin = layer_begin;
  s.layer_end = layer_end;
  s.first_stage = first;
  s.last_stage = last;
  // One rank keeps V exact; tp ranks pad so every rank holds the same number of rows.
  const int64_t align = 128 * tp_size;
  s.vocab_padded = tp_size == 1 ? c.vocab_size : (c.vocab_size + align - 1) / align * align;
  return s;
}

void for_each_parameter(const ModelConfig& c, const Shard& sh, ModelWeights& w,
                        const std::function<void(const ParamSpec&, float*& slot)>& fn) {
  const int64_t V = c.vocab_size, P = c.n_positions, C = c.n_embd, F = c.ffn();
  const int64_t Ca = sh.attn_width(c), Fl = sh.ffn(c), Vl = sh.vocab_rows(), tp = sh.tp_rank;
  const std::string t = "transformer.";
  auto spec = [](std::string name, std::vector<int64_t> local, std::vector<int64_t> full, ParamKind kind, int layer,
                 SliceMap slice, bool replicated, bool residual_proj = false) {
    if (slice.full_inner == 0) {  // the whole tensor
      const int64_t n = shape_numel(local);
      slice = SliceMap{1, 1, n, n, 0};
    }
    return ParamSpec{std::move(name), std::move(local), kind, layer, residual_proj, std::move(full), slice, replicated};
  };
  const SliceMap whole{};
  // Vocabulary rows: [Vp, C] as one run, the rank's Vl·C from tp·Vl·C on (past V·C: padding).
  const SliceMap vocab{1, 1, V * C, Vl * C, tp * Vl * C};
  const bool has_wte = sh.first_stage || (sh.last_stage && c.tie_word_embeddings);
  if (has_wte) fn(spec(t + "wte.weight", {Vl, C}, {V, C}, ParamKind::Embedding, -1, vocab, false), w.wte);
  if (sh.first_stage) fn(spec(t + "wpe.weight", {P, C}, {P, C}, ParamKind::Embedding, -1, whole, true), w.wpe);
  w.layers.resize(size_t(sh.n_layers()));
  for (int64_t l = sh.layer_begin; l < sh.layer_end; ++l) {
    LayerWeights& lw = w.layers[size_t(l - sh.layer_begin)];
    const std::string h = t + "h." + std::to_string(l) + ".";
    const int L = int(l);
    const SliceMap qkv_cols{C, 3, C, Ca, tp * Ca}, qkv_bias{1, 3, C, Ca, tp * Ca};
    const SliceMap proj_rows{1, 1, C * C, Ca * C, tp * Ca * C};
    const SliceMap fc_cols{C, 1, F, Fl, tp * Fl}, fc_bias{1, 1, F, Fl, tp * Fl};
    const SliceMap fc_proj_rows{1, 1, F * C, Fl * C, tp * Fl * C};
    fn(spec(h + "ln_1.weight", {C}, {C}, ParamKind::Norm, L, whole, true), lw.ln1_w);
    fn(spec(h + "ln_1.bias", {C}, {C}, ParamKind::Norm, L, whole, true), lw.ln1_b);
    fn(spec(h + "attn.c_attn.weight", {C, 3 * Ca}, {C, 3 * C}, ParamKind::Matrix, L, qkv_cols, false), lw.qkv_w);
    fn(spec(h + "attn.c_attn.bias", {3 * Ca}, {3 * C}, ParamKind::Bias, L, qkv_bias, false), lw.qkv_b);
    fn(spec(h + "attn.c_proj.weight", {Ca, C}, {C, C}, ParamKind::Matrix, L, proj_rows, false, true), lw.attn_proj_w);
    fn(spec(h + "attn.c_proj.bias", {C}, {C}, ParamKind::Bias, L, whole, true), lw.attn_proj_b);
    fn(spec(h + "ln_2.weight", {C}, {C}, ParamKind::Norm, L, whole, true), lw.ln2_w);
    fn(spec(h + "ln_2.bias", {C}, {C}, ParamKind::Norm, L, whole, true), lw.ln2_b);
    fn(spec(h + "mlp.c_fc.weight", {C, Fl}, {C, F}, ParamKind::Matrix, L, fc_cols, false), lw.fc_w);
    fn(spec(h + "mlp.c_fc.bias", {Fl}, {F}, ParamKind::Bias, L, fc_bias, false), lw.fc_b);
    fn(spec(h + "mlp.c_proj.weight", {Fl, C}, {F, C}, ParamKind::Matrix, L, fc_proj_rows, false, true), lw.fc_proj_w);
    fn(spec(h + "mlp.c_proj.bias", {C}, {C}, ParamKind::Bias, L, whole, true), lw.fc_proj_b);
  }
  if (sh.last_stage) {
    fn(spec(t + "ln_f.weight", {C}, {C}, ParamKind::Norm, -1, whole, true), w.lnf_w);
    fn(spec(t + "ln_f.bias", {C}, {C}, ParamKind::Norm, -1, whole, true), w.lnf_b);
    if (!c.tie_word_embeddings)
      fn(spec("lm_head.weight", {Vl, C}, {V, C}, ParamKind::Embedding, -1, vocab, false), w.lm_head);
  }
}

void for_each_parameter(const ModelConfig& c, ModelWeights& w,
                        const std::function<void(const ParamSpec&, float*& slot)>& fn) {
  for_each_parameter(c, Shard::full(c), w, fn);
}

ModelWeights point_weights(const ModelConfig& c, const Shard& sh, float* base) {
  ModelWeights w{};
  size_t offset = 0;
  for_each_parameter(c, sh, w, [&](const ParamSpec& s, float*& slot) {
    slot = base + offset;
    offset += size_t(s.numel());
  });
  if (c.tie_word_embeddings) w.lm_head = w.wte;
  return w;
}

ModelWeights point_weights(const ModelConfig& c, float* base) { return point_weights(c, Shard::full(c), base); }

std::vector<ParamSpec> parameter_specs(const ModelConfig& c, const Shard& sh) {
  ModelWeights w{};
  std::vector<ParamSpec> specs;
  for_each_parameter(c, sh, w, [&](const ParamSpec& s, float*&) { specs.push_back(s); });
  return specs;
}

std::vector<ParamSpec> parameter_specs(const ModelConfig& c) { return parameter_specs(c, Shard::full(c)); }

int64_t shard_parameter_count(const ModelConfig& c, const Shard& sh) {
  int64_t n = 0;
  for (const auto& s : parameter_specs(c, sh)) n += s.numel();
  return n;
}

void copy_to_shard(const ParamSpec& s, const void* full, DType dtype, float* local) {
  const SliceMap& m = s.slice;
  const size_t esize = dtype_size(dtype);
  const auto* bytes = static_cast<const uint8_t*>(full);
  for (int64_t o = 0; o < m.outer; ++o)
    for (int64_t k = 0; k < m.sections; ++k) {
      float* dst = local + (o * m.sections + k) * m.local_inner;
      const int64_t n = std::max<int64_t>(0, std::min(m.local_inner, m.full_inner - m.offset));
      const int64_t from = (o * m.sections + k) * m.full_inner + m.offset;  // elements into the whole tensor
      if (n > 0) convert_to_f32(dst, bytes + size_t(from) * esize, dtype, size_t(n));
      std::memset(dst + n, 0, size_t(m.local_inner - n) * sizeof(float));  // vocabulary padding
    }
}

void copy_to_shard(const ParamSpec& s, const float* full, float* local) { copy_to_shard(s, full, DType::F32, local); }

void copy_from_shard(const ParamSpec& s, const float* local, float* full) {
  const SliceMap& m = s.slice;
  for (int64_t o = 0; o < m.outer; ++o)
    for (int64_t k = 0; k < m.sections; ++k) {
      const int64_t n = std::max<int64_t>(0, std::min(m.local_inner, m.full_inner - m.offset));
      if (n > 0) std::memcpy(full + (o * m.sections + k) * m.full_inner + m.offset, local + (o * m.sections + k) * m.local_inner,
                  size_t(n) * sizeof(float));
    }
}

namespace {
// Offset of each tensor in the whole model's flat buffer.
std::map<std::string, size_t> full_offsets(const ModelConfig& c) {
  std::map<std::string, size_t> at;
  size_t offset = 0;
  for (const auto& s : parameter_specs(c)) {
    at[s.name] = offset;
    offset += size_t(s.numel());
  }
  return at;
}
}  // namespace

void shard_flat(const ModelConfig& c, const Shard& sh, const float* full, float* local) {
  const auto at = full_offsets(c);
  for (const auto& s : parameter_specs(c, sh)) {
    copy_to_shard(s, full + at.at(s.name), local);
    local += s.numel();
  }
}

void unshard_flat(const ModelConfig& c, const Shard& sh, const float* local, float* full,
                  const std::function<bool(const ParamSpec&)>& owned) {
  const auto at = full_offsets(c);
  for (const auto& s : parameter_specs(c, sh)) {
    if (owned(s)) copy_from_shard(s, local, full + at.at(s.name));
    local += s.numel();
  }
}

std::string canonical_hf_name(const std::string& name) {
  if (name.rfind("transformer.", 0) == 0 || name.rfind("lm_head.", 0) == 0) return name;
  return "transformer." + name;
}

}  // namespace wafer
