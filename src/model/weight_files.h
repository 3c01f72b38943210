// model/weight_files.h: the tensors of an HF folder or of one safetensors file, mapped and looked
// up by HF name, and reading one rank's slices of them. A rank of a parallel job copies only its
// own slice of each tensor out of the mapped files (never a whole-model buffer), converting
// 16-bit floats to fp32 as it goes.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "io/torch_bin.h"
#include "model/parameters.h"

namespace wafer {

class WeightFiles {
 public:
  // The weights of an HF folder: model.safetensors, model.safetensors.index.json + shards,
  // pytorch_model.bin or pytorch_model.bin.index.json + shards (the first found). Legacy
  // attn.bias / attn.masked_bias buffers are skipped; names get the "transformer." prefix.
  static WeightFiles open_hf_folder(const std::string& dir);
  // One safetensors file, names as they are (a checkpoint's optimizer.safetensors).
  static WeightFiles open_safetensors(const std::string& path);

  // The tensor named `name`, or null.
  const TensorRef* find(const std::string& name) const;
  const std::map<std::string, const TensorRef*>& tensors() const { return tensors_; }
  // Drops t's pages from the resident set once it has been copied out (safetensors files;
  // see MappedFile::release_pages).
  void release(const TensorRef& t) const;

 private:
  void add(const std::map<std::string, TensorRef>& ts, bool canonical);
  std::vector<std::unique_ptr<SafetensorsFile>> safetensors_;
  std::vector<std::unique_ptr<TorchBinFile>> bins_;
  std::map<std::string, const TensorRef*> tensors_;
};

// Reads elements [lo, hi) of shard `sh`'s flat buffer (for_each_parameter order) into dst
// [hi - lo]: each tensor `prefix + spec.name` is found in `files`, checked against the whole
// tensor's shape and a float dtype, and only this shard's slice of it is copied. `what` names
// the source in messages. A ZeRO-1 rank reads just its range of the AdamW moments this way.
void read_shard_range(const WeightFiles& files, const std::string& what, const std::string& prefix,
                      const ModelConfig& c, const Shard& sh, int64_t lo, int64_t hi, float* dst);

}  // namespace wafer
