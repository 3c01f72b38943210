// io/gguf.h: the GGUF v3 container of llama.cpp, read and written. Layout (little-endian):
//   "GGUF", u32 version (3), u64 tensor count, u64 key-value count;
//   key-values: string key, u32 value type, value (an array: u32 element type, u64 count, elements);
//   tensor infos: string name, u32 n_dims (≤ 4), u64 ne[n_dims] (ne[0] the fastest dimension, so a
//   torch [out, in] matrix is ne = [in, out]), u32 ggml type, u64 offset into the data section;
//   padding to general.alignment (u32, default 32), then the data section, each tensor at an
//   aligned offset. A string is u64 length + bytes, no terminator.
// Reading memory-maps the file (or takes a caller's buffer) and validates every count, length
// and range against its size; a bad file throws wafer::Error, never reads out of bounds.
// Not here: which tensors a model has (model/), the block formats (kernels/cpu/quant.h).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/file.h"

namespace wafer {

// ggml_type values (gguf-py GGMLQuantizationType) of the tensor types wafer reads and writes.
enum class GgufType : uint32_t { F32 = 0, F16 = 1, Q4_0 = 2, Q8_0 = 8, Q4_K = 12, Q5_K = 13, Q6_K = 14, BF16 = 30 };
// GGUF metadata value types (gguf-py GGUFValueType).
enum class GgufValueType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12
};

// "F32", "Q4_K", ...; false / "?" when not one of ours.
const char* gguf_type_name(GgufType t);
bool gguf_type_from_name(const std::string& s, GgufType* out);  // case-insensitive
bool gguf_type_known(uint32_t t);
// Values per block and bytes per block (1 and the element size for the float types).
int64_t gguf_block_size(GgufType t);
size_t gguf_type_size(GgufType t);
// Bytes of a tensor of shape ne; ne[0] must be a multiple of the block size.
size_t gguf_nbytes(GgufType t, const std::vector<int64_t>& ne);

// One metadata value: a scalar is stored as an array of one. Integers (and bool) live in `ints`
// (u64 values above 2^63 - 1 keep their bits), floats in `floats`, strings in `strings`.
struct GgufValue {
  GgufValueType type = GgufValueType::U32;  // the value's type; ARRAY for arrays
  GgufValueType elem = GgufValueType::U32;  // the element type (== type for scalars)
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;

  bool is_array() const { return type == GgufValueType::ARRAY; }
  size_t size() const;  // elements

  static GgufValue u32(uint32_t v);
  static GgufValue i32(int32_t v);
  static GgufValue u64(uint64_t v);
  static GgufValue f32(float v);
  static GgufValue boolean(bool v);
  static GgufValue str(std::string v);
  static GgufValue str_array(std::vector<std::string> v);
  static GgufValue i32_array(std::vector<int32_t> v);
};

using GgufMetadata = std::vector<std::pair<std::string, GgufValue>>;  // in file order

struct GgufTensor {
  std::string name;
  GgufType type = GgufType::F32;
  std::vector<int64_t> ne;  // ne[0] fastest
  uint64_t offset = 0;      // into the data section
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
};

class GgufFile {
 public:
  // Maps and parses `path`.
  explicit GgufFile(const std::string& path);
  // Parses a buffer the caller keeps alive as long as this object (tests, fuzzing). `source`
  // names it in messages.
  GgufFile(std::span<const uint8_t> bytes, const std::string& source);

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  const GgufMetadata& metadata() const { return metadata_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const std::string& source() const { return source_; }

  // Metadata look-ups; the typed getters throw naming the key when it is missing or of another
  // kind. get_int accepts any integer scalar type, get_float F32 or F64.
  const GgufValue* find(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;
  const std::vector<std::string>& get_strings(const std::string& key) const;  // array of strings
  const std::vector<int64_t>& get_ints(const std::string& key) const;         // array of integers
  const GgufTensor* find_tensor(const std::string& name) const;
  // Drops t's pages of a mapped file from the resident set once it has been copied out
  // (MappedFile::release_pages); a no-op for a caller's buffer.
  void release_pages(const GgufTensor& t) const;

 private:
  void parse(std::span<const uint8_t> bytes);

  std::unique_ptr<MappedFile> file_;
  std::string source_;
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  GgufMetadata metadata_;
  std::map<std::string, size_t> key_index_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// Converts a tensor of any of our types to fp32 (dequantizing): out holds numel values.
void gguf_tensor_to_f32(float* out, const GgufTensor& t);

// A tensor to write: `data` holds gguf_nbytes(type, ne) bytes.
struct GgufTensorToWrite {
  std::string name;
  GgufType type;
  std::vector<int64_t> ne;
  const void* data;
};

// Writes a GGUF v3 file (through a temporary name and a rename). The alignment is
// general.alignment's value when the metadata has it, else 32. Tensors are laid out in order.
void write_gguf(const std::string& path, const GgufMetadata& metadata, const std::vector<GgufTensorToWrite>& tensors);
// The same bytes into a function that appends (for tests and in-memory use).
void write_gguf_to(const std::function<void(const void*, size_t)>& append, const GgufMetadata& metadata,
                   const std::vector<GgufTensorToWrite>& tensors);

}  // namespace wafer
