// io/safetensors.h: the safetensors format: u64 header length, a JSON header naming each
// tensor's dtype, shape and [begin, end) byte range, then the data. Reading memory-maps the file
// and validates every range; writing goes through a temporary file and a rename.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/file.h"
#include "io/tensor_source.h"

namespace wafer {

class SafetensorsFile {
 public:
  // Maps and validates `path`: header length within the file, valid JSON, known dtypes, byte
  // ranges inside the data section, matching dtype × shape, not overlapping. Throws naming the
  // file and tensor.
  explicit SafetensorsFile(const std::string& path);
  // The same over bytes already mapped or in memory (MappedFile's buffer constructor).
  explicit SafetensorsFile(std::unique_ptr<MappedFile> file);

  const std::map<std::string, TensorRef>& tensors() const { return tensors_; }
  const MappedFile& file() const { return *file_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::unique_ptr<MappedFile> file_;
  std::map<std::string, TensorRef> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A tensor to write: `data` holds numel × dtype_size bytes.
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
};

// Writes a file whose tensors (names, dtypes, shapes; `data` unused) are known before their bytes:
// the header first, then fill(i, append) appends tensor i's bytes, in order, exactly
// numel × dtype_size of them. Through a temporary name and a rename, like every file wafer writes.
void write_safetensors_streamed(const std::string& path, const std::vector<TensorToWrite>& tensors,
                                const std::function<void(size_t i, const std::function<void(const void*, size_t)>& append)>& fill,
                                const std::map<std::string, std::string>& metadata = {{"format", "pt"}});
// Writes tensors in the given order (HF writes them sorted by name; callers choose).
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace wafer
