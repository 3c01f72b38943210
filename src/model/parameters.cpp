// model/parameters.cpp: the parameter list and the views into the flat buffer.
#include "model/parameters.h"

#include "core/error.h"
#include "io/tensor_source.h"

namespace wafer {

int64_t ParamSpec::numel() const { return shape_numel(shape); }

void for_each_parameter(const ModelConfig& c, ModelWeights& w,
                        const std::function<void(const ParamSpec&, float*& slot)>& fn) {
  const int64_t V = c.vocab_size, P = c.n_positions, C = c.n_embd, F = c.ffn();
  const std::string t = "transformer.";
  fn({t + "wte.weight", {V, C}, ParamKind::Embedding}, w.wte);
  fn({t + "wpe.weight", {P, C}, ParamKind::Embedding}, w.wpe);
  w.layers.resize(size_t(c.n_layer));
  for (int l = 0; l < int(c.n_layer); ++l) {
    LayerWeights& lw = w.layers[size_t(l)];
    const std::string h = t + "h." + std::to_string(l) + ".";
    fn({h + "ln_1.weight", {C}, ParamKind::Norm, l}, lw.ln1_w);
    fn({h + "ln_1.bias", {C}, ParamKind::Norm, l}, lw.ln1_b);
    fn({h + "attn.c_attn.weight", {C, 3 * C}, ParamKind::Matrix, l}, lw.qkv_w);
    fn({h + "attn.c_attn.bias", {3 * C}, ParamKind::Bias, l}, lw.qkv_b);
    fn({h + "attn.c_proj.weight", {C, C}, ParamKind::Matrix, l, true}, lw.attn_proj_w);
    fn({h + "attn.c_proj.bias", {C}, ParamKind::Bias, l}, lw.attn_proj_b);
    fn({h + "ln_2.weight", {C}, ParamKind::Norm, l}, lw.ln2_w);
    fn({h + "ln_2.bias", {C}, ParamKind::Norm, l}, lw.ln2_b);
    fn({h + "mlp.c_fc.weight", {C, F}, ParamKind::Matrix, l}, lw.fc_w);
    fn({h + "mlp.c_fc.bias", {F}, ParamKind::Bias, l}, lw.fc_b);
    fn({h + "mlp.c_proj.weight", {F, C}, ParamKind::Matrix, l, true}, lw.fc_proj_w);
    fn({h + "mlp.c_proj.bias", {C}, ParamKind::Bias, l}, lw.fc_proj_b);
  }
  fn({t + "ln_f.weight", {C}, ParamKind::Norm}, w.lnf_w);
  fn({t + "ln_f.bias", {C}, ParamKind::Norm}, w.lnf_b);
  if (!c.tie_word_embeddings) fn({"lm_head.weight", {V, C}, ParamKind::Embedding}, w.lm_head);
}

ModelWeights point_weights(const ModelConfig& c, float* base) {
  ModelWeights w{};
  size_t offset = 0;
  for_each_parameter(c, w, [&](const ParamSpec& s, float*& slot) {
    slot = base + offset;
    offset += size_t(s.numel());
  });
  WAFER_ASSERT(int64_t(offset) == parameter_count(c));
  if (c.tie_word_embeddings) w.lm_head = w.wte;
  return w;
}

std::vector<ParamSpec> parameter_specs(const ModelConfig& c) {
  ModelWeights w{};
  std::vector<ParamSpec> specs;
  for_each_parameter(c, w, [&](const ParamSpec& s, float*&) { specs.push_back(s); });
  return specs;
}

std::string canonical_hf_name(const std::string& name) {
  if (name.rfind("transformer.", 0) == 0 || name.rfind("lm_head.", 0) == 0) return name;
  return "transformer." + name;
}

}  // namespace wafer
