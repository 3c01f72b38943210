// model/checkpoint.cpp: HF folders in and out. Finds the weight files, checks every tensor
// against the parameter list (name, shape, float dtype) and copies it into the flat buffer.
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "core/error.h"
#include "core/file.h"
#include "core/json_file.h"
#include "io/safetensors.h"
#include "io/torch_bin.h"
#include "model/model.h"

namespace wafer {

namespace fs = std::filesystem;

Model::Model(const ModelConfig& c) : Model(c, Shard::full(c)) {}

Model::Model(const ModelConfig& c, const Shard& sh)
    : config(c), shard(sh), params(size_t(shard_parameter_count(c, sh)), 0.0f) {
  w = point_weights(config, shard, params.data());
}

namespace {

// Legacy GPT-2 checkpoints carry the causal mask and a masking constant as buffers.
bool is_legacy_buffer(const std::string& name) {
  auto ends = [&](const char* s) {
    std::string suf = s;
    return name.size() >= suf.size() && name.compare(name.size() - suf.size(), suf.size(), suf) == 0;
  };
  return ends(".attn.bias") || ends(".attn.masked_bias");
}

// The weight files of an HF folder, whichever of the four layouts it uses.
struct WeightFiles {
  std::vector<std::unique_ptr<SafetensorsFile>> safetensors;
  std::vector<std::unique_ptr<TorchBinFile>> bins;
  std::map<std::string, const TensorRef*> tensors;  // canonical HF name -> tensor

  void add(const std::map<std::string, TensorRef>& ts) {
    for (const auto& [name, ref] : ts) {
      if (is_legacy_buffer(name)) continue;
      std::string key = canonical_hf_name(name);
      auto [it, inserted] = tensors.emplace(key, &ref);
      WAFER_CHECK(inserted, "[load] tensor '", key, "' appears twice: in ", it->second->file, " and ", ref.file);
    }
  }
};

std::vector<std::string> index_files(const std::string& index_path) {
  nlohmann::json j = read_json_file(index_path, "load");
  WAFER_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(), "[load] ", index_path,
              ": expected an object with a 'weight_map' of tensor name -> file");
  std::set<std::string> files;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    WAFER_CHECK(it.value().is_string(), "[load] ", index_path, ": weight_map['", it.key(), "'] is not a file name");
    std::string f = it.value().get<std::string>();
    WAFER_CHECK(f.find('/') == std::string::npos, "[load] ", index_path, ": shard name '", f, "' must be a plain file name");
    files.insert(f);
  }
  return {files.begin(), files.end()};
}

void open_weight_files(const std::string& dir, WeightFiles& wf) {
  auto path = [&](const std::string& f) { return dir + "/" + f; };
  if (file_exists(path("model.safetensors"))) {
    wf.safetensors.push_back(std::make_unique<SafetensorsFile>(path("model.safetensors")));
  } else if (file_exists(path("model.safetensors.index.json"))) {
    for (const auto& f : index_files(path("model.safetensors.index.json")))
      wf.safetensors.push_back(std::make_unique<SafetensorsFile>(path(f)));
  } else if (file_exists(path("pytorch_model.bin"))) {
    wf.bins.push_back(std::make_unique<TorchBinFile>(path("pytorch_model.bin")));
  } else if (file_exists(path("pytorch_model.bin.index.json"))) {
    for (const auto& f : index_files(path("pytorch_model.bin.index.json")))
      wf.bins.push_back(std::make_unique<TorchBinFile>(path(f)));
  } else {
    fail(str_cat("[load] ", dir, ": expected model.safetensors, model.safetensors.index.json, pytorch_model.bin or ",
                 "pytorch_model.bin.index.json, found none"));
  }
  for (const auto& f : wf.safetensors) wf.add(f->tensors());
  for (const auto& f : wf.bins) wf.add(f->tensors());
}

}  // namespace

ModelConfig load_hf_config(const std::string& dir) {
  WAFER_CHECK(fs::is_directory(dir), "[load] expected a model folder (config.json + weights), found no folder ", dir);
  WAFER_CHECK(file_exists(dir + "/config.json"), "[load] ", dir, ": missing config.json");
  return load_config(dir + "/config.json");
}

std::unique_ptr<Model> load_hf_model(const std::string& dir) {
  ModelConfig config = load_hf_config(dir);
  WeightFiles wf;
  open_weight_files(dir, wf);
  auto model = std::make_unique<Model>(config);
  std::set<std::string> used;
  for_each_parameter(config, model->w, [&](const ParamSpec& spec, float*& slot) {
    auto it = wf.tensors.find(spec.name);
    WAFER_CHECK(it != wf.tensors.end(), "[load] ", dir, ": missing tensor '", spec.name, "' (expected shape ",
                shape_str(spec.shape), ")",
                spec.name == "lm_head.weight" ? "; set tie_word_embeddings to true if the head is tied" : "");
    const TensorRef& t = *it->second;
    WAFER_CHECK(t.shape == spec.shape, "[load] ", t.file, ": tensor '", t.name, "' expected shape ",
                shape_str(spec.shape), ", found ", shape_str(t.shape));
    WAFER_CHECK(t.dtype == DType::F32 || t.dtype == DType::BF16 || t.dtype == DType::F16 || t.dtype == DType::F64,
                "[load] ", t.file, ": tensor '", t.name, "' expected a float dtype (F32, BF16, F16), found ",
                dtype_name(t.dtype));
    convert_to_f32(slot, t.data, t.dtype, size_t(spec.numel()));
    used.insert(spec.name);
  });
  for (const auto& [name, ref] : wf.tensors) {
    if (used.count(name)) continue;
    if (name == "lm_head.weight" && config.tie_word_embeddings) continue;  // tied: HF ignores the stored copy
    fail(str_cat("[load] ", ref->file, ": unexpected tensor '", name, "' ", shape_str(ref->shape),
                 " for a GPT-2 model with this config.json"));
  }
  return model;
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
  fs::create_directories(dir);
  std::vector<ParamSpec> specs = parameter_specs(m.config);
  std::vector<std::vector<uint8_t>> converted;
  std::vector<TensorToWrite> out;
  size_t offset = 0;
  for (const auto& s : specs) {
    const float* src = m.params.data() + offset;
    offset += size_t(s.numel());
    const void* data = src;
    if (opts.dtype != DType::F32) {
      auto& buf = converted.emplace_back(size_t(s.numel()) * dtype_size(opts.dtype));
      convert_from_f32(buf.data(), src, opts.dtype, size_t(s.numel()));
      data = buf.data();
    }
    out.push_back({s.name, opts.dtype, s.shape, data});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  write_safetensors(dir + "/model.safetensors", out);
  save_config(m.config, dir + "/config.json");
}

}  // namespace wafer
