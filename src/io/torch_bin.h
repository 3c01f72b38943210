// io/torch_bin.h: PyTorch `torch.save` checkpoints (pytorch_model.bin): a ZIP holding data.pkl
// and one file per storage. We run the subset of the pickle machine that state dicts use
// (dicts, tuples, strings, ints, OrderedDict, _rebuild_tensor_v2, persistent storage ids);
// no Python involved. Anything else in the pickle is an error with the opcode and offset.
#pragma once
#include <deque>
#include <map>
#include <memory>
#include <string>

#include "io/tensor_source.h"
#include "io/zip_archive.h"

namespace wafer {

class TorchBinFile {
 public:
  explicit TorchBinFile(const std::string& path);
  // The same over bytes already mapped or in memory (MappedFile's buffer constructor).
  explicit TorchBinFile(std::unique_ptr<MappedFile> file);
  // Every tensor of the state dict by key; bytes live as long as this object.
  const std::map<std::string, TensorRef>& tensors() const { return tensors_; }

 private:
  std::unique_ptr<ZipArchive> zip_;
  std::map<std::string, TensorRef> tensors_;
  std::deque<std::string> copies_;  // strided tensors made contiguous (deque: addresses stay put)
};

}  // namespace wafer
