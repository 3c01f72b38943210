// model/weight_files.cpp
#include "model/weight_files.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

#include "core/error.h"
#include "core/file.h"
#include "core/json_file.h"

namespace wafer {

namespace {

// Legacy GPT-2 checkpoints carry the causal mask and a masking constant as buffers.
bool is_legacy_buffer(const std::string& name) {
  auto ends = [&](const char* s) {
    std::string suf = s;
    return name.size() >= suf.size() && name.compare(name.size() - suf.size(), suf.size(), suf) == 0;
  };
  return ends(".attn.bias") || ends(".attn.masked_bias");
}

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

}  // namespace

void WeightFiles::add(const std::map<std::string, TensorRef>& ts, bool canonical) {
  for (const auto& [name, ref] : ts) {
    if (canonical && is_legacy_buffer(name)) continue;
    std::string key = canonical ? canonical_hf_name(name) : name;
    auto [it, inserted] = tensors_.emplace(key, &ref);
    WAFER_CHECK(inserted, "[load] tensor '", key, "' appears twice: in ", it->second->file, " and ", ref.file);
  }
}

WeightFiles WeightFiles::open_hf_folder(const std::string& dir) {
  WeightFiles wf;
  auto path = [&](const std::string& f) { return dir + "/" + f; };
  if (file_exists(path("model.safetensors"))) {
    wf.safetensors_.push_back(std::make_unique<SafetensorsFile>(path("model.safetensors")));
  } else if (file_exists(path("model.safetensors.index.json"))) {
    for (const auto& f : index_files(path("model.safetensors.index.json")))
      wf.safetensors_.push_back(std::make_unique<SafetensorsFile>(path(f)));
  } else if (file_exists(path("pytorch_model.bin"))) {
    wf.bins_.push_back(std::make_unique<TorchBinFile>(path("pytorch_model.bin")));
  } else if (file_exists(path("pytorch_model.bin.index.json"))) {
    for (const auto& f : index_files(path("pytorch_model.bin.index.json")))
      wf.bins_.push_back(std::make_unique<TorchBinFile>(path(f)));
  } else {
    fail(str_cat("[load] ", dir, ": expected model.safetensors, model.safetensors.index.json, pytorch_model.bin or ",
                 "pytorch_model.bin.index.json, found none"));
  }
  for (const auto& f : wf.safetensors_) wf.add(f->tensors(), true);
  for (const auto& f : wf.bins_) wf.add(f->tensors(), true);
  return wf;
}

WeightFiles WeightFiles::open_safetensors(const std::string& path) {
  WeightFiles wf;
  wf.safetensors_.push_back(std::make_unique<SafetensorsFile>(path));
  wf.add(wf.safetensors_.back()->tensors(), false);
  return wf;
}

const TensorRef* WeightFiles::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : it->second;
}

void WeightFiles::release(const TensorRef& t) const {
  for (const auto& f : safetensors_) f->file().release_pages(t.data, t.nbytes);
}

void read_shard_range(const WeightFiles& files, const std::string& what, const std::string& prefix,
                      const ModelConfig& c, const Shard& sh, int64_t lo, int64_t hi, float* dst) {
  std::vector<float> one;  // a tensor's slice, when only part of it falls in [lo, hi)
  int64_t offset = 0;
  for (const ParamSpec& s : parameter_specs(c, sh)) {
    const int64_t n = s.numel(), begin = std::max(lo, offset), end = std::min(hi, offset + n);
    const std::string name = prefix + s.name;
    offset += n;
    if (begin >= end) continue;
    const TensorRef* t = files.find(name);
    WAFER_CHECK(t != nullptr, "[load] ", what, ": missing tensor '", name, "' (expected shape ", shape_str(s.full_shape),
                ")", s.name == "lm_head.weight" ? "; set tie_word_embeddings to true if the head is tied" : "");
    WAFER_CHECK(t->shape == s.full_shape, "[load] ", t->file, ": tensor '", t->name, "' expected shape ",
                shape_str(s.full_shape), ", found ", shape_str(t->shape));
    WAFER_CHECK(t->dtype == DType::F32 || t->dtype == DType::BF16 || t->dtype == DType::F16 || t->dtype == DType::F64,
                "[load] ", t->file, ": tensor '", t->name, "' expected a float dtype (F32, BF16, F16), found ",
                dtype_name(t->dtype));
    const int64_t first = offset - n;  // the tensor's start in the shard buffer
    if (begin == first && end == first + n) {
      copy_to_shard(s, t->data, t->dtype, dst + (first - lo));
    } else {
      one.resize(size_t(n));
      copy_to_shard(s, t->data, t->dtype, one.data());
      std::copy(one.begin() + (begin - first), one.begin() + (end - first), dst + (begin - lo));
    }
    files.release(*t);
  }
}

}  // namespace wafer
