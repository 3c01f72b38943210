// model/checkpoint.cpp: HF folders in and out. Finds the weight files, checks every tensor
// against the parameter list (name, shape, float dtype) and copies it into the flat buffer.
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <memory>
#include <set>

#include "core/error.h"
#include "core/file.h"
#include "core/json_file.h"
#include "io/safetensors.h"
#include "model/gguf_gpt2.h"
#include "model/memory.h"
#include "model/model.h"
#include "model/sharding.h"
#include "model/weight_files.h"

namespace wafer {

namespace fs = std::filesystem;

Model::Model(const ModelConfig& c) : Model(c, Shard::full(c)) {}

Model::Model(const ModelConfig& c, const Shard& sh)
    : config(c), shard(sh), params(size_t(weight_elems(c, sh))) {  // model/memory.h
  w = point_weights(config, shard, params.data());
}

ModelConfig load_hf_config(const std::string& dir) {
  if (is_gguf_path(dir)) return load_gguf_config(dir);
  WAFER_CHECK(fs::is_directory(dir), "[load] expected a model folder (config.json + weights), found no folder ", dir);
  WAFER_CHECK(file_exists(dir + "/config.json"), "[load] ", dir, ": missing config.json");
  return load_config(dir + "/config.json");
}

namespace {

// Every tensor of the folder is one the config expects (checked before anything is read).
void check_no_unexpected_tensors(const WeightFiles& wf, const ModelConfig& config) {
  std::set<std::string> expected;
  for (const auto& s : parameter_specs(config)) expected.insert(s.name);
  for (const auto& [name, ref] : wf.tensors()) {
    if (expected.count(name)) continue;
    if (name == "lm_head.weight" && config.tie_word_embeddings) continue;  // tied: HF ignores the stored copy
    fail(str_cat("[load] ", ref->file, ": unexpected tensor '", name, "' ", shape_str(ref->shape),
                 " for a GPT-2 model with this config.json"));
  }
}

}  // namespace

std::unique_ptr<Model> load_hf_model(const std::string& dir, const ModelConfig& config, const Shard& sh) {
  if (is_gguf_path(dir)) {  // a llama.cpp file: dequantized to fp32 whole, then cut to the shard
    auto full = load_gguf_model(dir);
    return sh == full->shard ? std::move(full) : extract_shard(*full, sh);
  }
  const WeightFiles wf = WeightFiles::open_hf_folder(dir);
  check_no_unexpected_tensors(wf, config);
  auto model = std::make_unique<Model>(config, sh);
  read_shard_range(wf, dir, "", config, sh, 0, int64_t(model->params.size()), model->params.data());
  return model;
}

std::unique_ptr<Model> load_hf_model_quantized(const std::string& dir, const ModelConfig& config, const Shard& sh,
                                               QuantType t) {
  if (is_gguf_path(dir) && sh == Shard::full(config)) return load_gguf_model(dir, t);
  if (is_gguf_path(dir)) {  // a shard of a GGUF file: the whole file in fp32 first, as load_hf_model
    auto m = load_hf_model(dir, config, sh);
    quantize_matrices(*m, t);
    return m;
  }
  const WeightFiles wf = WeightFiles::open_hf_folder(dir);
  check_no_unexpected_tensors(wf, config);
  auto model = std::make_unique<Model>(config, sh);
  float* base = model->params.data();
  // Where each parameter sits in the flat buffer; the matrices are read one at a time, just
  // before quantize_matrices quantizes them, the rest now.
  const std::set<const float*> matrices = quantized_matrices(*model, t);
  std::map<const float*, int64_t> sizes;
  ModelWeights views = model->w;
  for_each_parameter(config, sh, views, [&](const ParamSpec& s, float*& slot) { sizes[slot] = s.numel(); });
  auto read = [&](const float* p, int64_t n) {
    const int64_t lo = p - base;
    read_shard_range(wf, dir, "", config, sh, lo, lo + n, base + lo);
  };
  for (const auto& [p, n] : sizes)
    if (!matrices.count(p)) read(p, n);
  quantize_matrices(*model, t, nullptr, [&](float* w) { read(w, sizes.at(w)); });
  return model;
}

std::unique_ptr<Model> load_hf_model(const std::string& dir) {
  const ModelConfig config = load_hf_config(dir);
  return load_hf_model(dir, config, Shard::full(config));
}

std::unique_ptr<Model> export_for_hf(const Model& m) {
  const ModelConfig& c = m.config;
  const bool mup = c.mup_embeddings_scale != 1.0 || c.mup_output_scale != 1.0 || c.mup_scale_qk_dot_by_d;
  if (!mup) {
    auto out = std::make_unique<Model>(c);
    out->params = m.params;
    return out;
  }
  ModelConfig hc = c;
  hc.mup_embeddings_scale = 1.0;
  hc.mup_output_scale = 1.0;
  hc.mup_scale_qk_dot_by_d = false;
  hc.mup_base_width = 0;
  hc.tie_word_embeddings = false;
  auto out = std::make_unique<Model>(hc);
  const int64_t V = c.vocab_size, P = c.n_positions, C = c.n_embd;
  const float se = float(c.mup_embeddings_scale), so = float(c.mup_output_scale);
  for (int64_t i = 0; i < V * C; ++i) {
    out->w.wte[i] = se * m.w.wte[i];
    out->w.lm_head[i] = so * m.w.lm_head[i];
  }
  for (int64_t i = 0; i < P * C; ++i) out->w.wpe[i] = se * m.w.wpe[i];
  // Copy the blocks and ln_f tensor by tensor (the flat layouts differ by the lm_head).
  ModelWeights src = m.w;
  std::vector<float*> dst_slots, src_slots;
  std::vector<int64_t> sizes;
  for_each_parameter(c, src, [&](const ParamSpec& s, float*& slot) {
    if (s.layer >= 0 || s.name.find("ln_f") != std::string::npos) src_slots.push_back(slot), sizes.push_back(s.numel());
  });
  ModelWeights dst = out->w;
  for_each_parameter(hc, dst, [&](const ParamSpec& s, float*& slot) {
    if (s.layer >= 0 || s.name.find("ln_f") != std::string::npos) dst_slots.push_back(slot);
  });
  for (size_t k = 0; k < src_slots.size(); ++k) std::copy(src_slots[k], src_slots[k] + sizes[k], dst_slots[k]);
  if (c.mup_scale_qk_dot_by_d && c.scale_attn_weights) {
    const float f = 1.0f / std::sqrt(float(c.head_dim()));  // (1/D) / (1/sqrt(D))
    for (auto& lw : out->w.layers) {
      for (int64_t r = 0; r < C; ++r)
        for (int64_t q = 0; q < C; ++q) lw.qkv_w[r * 3 * C + q] *= f;
      for (int64_t q = 0; q < C; ++q) lw.qkv_b[q] *= f;
    }
  }
  return out;
}

void save_hf_model(const Model& m, const std::string& dir, const SaveOptions& opts) {
  WAFER_ASSERT(m.shard == Shard::full(m.config));  // a shard of a parallel job: save_hf_shard
  save_hf_shard(m, ParallelState::single(), dir, opts);
}

}  // namespace wafer
