// io/gguf.cpp: GGUF parsing (every read bounds-checked by a cursor), tensor conversion to fp32,
// and writing. The checks follow ggml's gguf.cpp (version 2 or 3, at most 4 dimensions, names
// shorter than 64 bytes, power-of-two alignment, no arrays of arrays) plus wafer's own: no
// duplicate keys or tensors, tensors inside the data section and not overlapping.
#include "io/gguf.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/quant.h"

namespace wafer {

namespace {

constexpr size_t kMaxName = 64;   // GGML_MAX_NAME, terminator included
constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS

bool value_type_known(uint32_t t) { return t <= uint32_t(GgufValueType::F64); }

// Bytes of one element on disk; strings count their 8-byte length only (the minimum).
size_t value_min_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8:
    case GgufValueType::I8:
    case GgufValueType::BOOL:
      return 1;
    case GgufValueType::U16:
    case GgufValueType::I16:
      return 2;
    case GgufValueType::U32:
    case GgufValueType::I32:
    case GgufValueType::F32:
      return 4;
    default:
      return 8;  // U64, I64, F64, STRING
  }
}

bool is_int_type(GgufValueType t) {
  return t != GgufValueType::F32 && t != GgufValueType::F64 && t != GgufValueType::STRING && t != GgufValueType::ARRAY;
}

// Reads little-endian values from [data, data + size), each read checked against what is left.
class Cursor {
 public:
  Cursor(std::span<const uint8_t> bytes, const std::string& source) : bytes_(bytes), source_(source) {}
  size_t pos() const { return pos_; }
  size_t left() const { return bytes_.size() - pos_; }

  void need(uint64_t n, const std::string& what) const {
    WAFER_CHECK(n <= left(), "[gguf] ", source_, ": ", what, " needs ", n, " bytes at offset ", pos_, ", the file has ",
                left(), " left (truncated file?)");
  }
  template <typename T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const std::string& what) {
    const uint64_t n = read<uint64_t>(what + " (length)");
    need(n, what);
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), size_t(n));
    pos_ += size_t(n);
    return s;
  }

 private:
  std::span<const uint8_t> bytes_;
  const std::string& source_;
  size_t pos_ = 0;
};

void read_element(Cursor& c, GgufValueType t, GgufValue* v, const std::string& what) {
  switch (t) {
    case GgufValueType::U8:
      v->ints.push_back(c.read<uint8_t>(what));
      return;
    case GgufValueType::I8:
      v->ints.push_back(c.read<int8_t>(what));
      return;
    case GgufValueType::U16:
      v->ints.push_back(c.read<uint16_t>(what));
      return;
    case GgufValueType::I16:
      v->ints.push_back(c.read<int16_t>(what));
      return;
    case GgufValueType::U32:
      v->ints.push_back(c.read<uint32_t>(what));
      return;
    case GgufValueType::I32:
      v->ints.push_back(c.read<int32_t>(what));
      return;
    case GgufValueType::U64:
      v->ints.push_back(int64_t(c.read<uint64_t>(what)));
      return;
    case GgufValueType::I64:
      v->ints.push_back(c.read<int64_t>(what));
      return;
    case GgufValueType::BOOL:
      v->ints.push_back(c.read<uint8_t>(what) != 0);
      return;
    case GgufValueType::F32:
      v->floats.push_back(c.read<float>(what));
      return;
    case GgufValueType::F64:
      v->floats.push_back(c.read<double>(what));
      return;
    case GgufValueType::STRING:
      v->strings.push_back(c.read_string(what));
      return;
    case GgufValueType::ARRAY:
      break;
  }
  WAFER_ASSERT(false);
}

GgufValue read_value(Cursor& c, const std::string& key, const std::string& source) {
  const uint32_t type = c.read<uint32_t>("the type of key '" + key + "'");
  WAFER_CHECK(value_type_known(type), "[gguf] ", source, ": key '", key, "' has value type ", type,
              ", expected 0..12 (GGUFValueType)");
  GgufValue v;
  v.type = v.elem = GgufValueType(type);
  uint64_t n = 1;
  if (v.type == GgufValueType::ARRAY) {
    const uint32_t elem = c.read<uint32_t>("the element type of key '" + key + "'");
    WAFER_CHECK(value_type_known(elem) && elem != uint32_t(GgufValueType::ARRAY), "[gguf] ", source, ": key '", key,
                "' is an array of type ", elem, ", expected 0..12 other than 9 (no arrays of arrays)");
    v.elem = GgufValueType(elem);
    n = c.read<uint64_t>("the length of key '" + key + "'");
    // Each element takes at least value_min_size bytes, so a count the file cannot hold is
    // refused before anything is allocated for it.
    WAFER_CHECK(n <= c.left() / value_min_size(v.elem), "[gguf] ", source, ": key '", key, "' claims ", n,
                " elements, more than the ", c.left(), " bytes left can hold (truncated file?)");
  }
  const std::string what = "the value of key '" + key + "'";
  for (uint64_t i = 0; i < n; ++i) read_element(c, v.elem, &v, what);
  return v;
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

const char* gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::F32:
      return "F32";
    case GgufType::F16:
      return "F16";
    case GgufType::BF16:
      return "BF16";
    case GgufType::Q8_0:
      return "Q8_0";
    case GgufType::Q4_0:
      return "Q4_0";
    case GgufType::Q4_K:
      return "Q4_K";
    case GgufType::Q5_K:
      return "Q5_K";
    case GgufType::Q6_K:
      return "Q6_K";
  }
  return "?";
}

namespace {
// Every tensor type wafer reads, in the order messages list them.
constexpr GgufType kKnownTypes[] = {GgufType::F32,  GgufType::F16,  GgufType::BF16, GgufType::Q8_0,
                                    GgufType::Q4_0, GgufType::Q4_K, GgufType::Q5_K, GgufType::Q6_K};

// "F32=0, F16=1, ...": the known types with their ggml numbers, for the unknown-type message.
std::string known_types_list() {
  std::string out;
  for (GgufType k : kKnownTypes) out += str_cat(out.empty() ? "" : ", ", gguf_type_name(k), "=", uint32_t(k));
  return out;
}
}  // namespace

bool gguf_type_known(uint32_t t) {
  for (GgufType k : kKnownTypes)
    if (uint32_t(k) == t) return true;
  return false;
}

bool gguf_type_from_name(const std::string& s, GgufType* out) {
  std::string u = s;
  for (char& ch : u) ch = char(std::toupper(static_cast<unsigned char>(ch)));
  for (GgufType k : kKnownTypes)
    if (u == gguf_type_name(k)) return *out = k, true;
  return false;
}

int64_t gguf_block_size(GgufType t) {
  switch (t) {
    case GgufType::Q8_0:
      return kQ8_0Block;
    case GgufType::Q4_0:
      return kQ4_0Block;
    case GgufType::Q4_K:
      return kQ4_KBlock;
    case GgufType::Q5_K:
      return kQ5_KBlock;
    case GgufType::Q6_K:
      return kQ6_KBlock;
    default:
      return 1;
  }
}

size_t gguf_type_size(GgufType t) {
  switch (t) {
    case GgufType::F32:
      return 4;
    case GgufType::F16:
    case GgufType::BF16:
      return 2;
    case GgufType::Q8_0:
      return sizeof(BlockQ8_0);
    case GgufType::Q4_0:
      return sizeof(BlockQ4_0);
    case GgufType::Q4_K:
      return sizeof(BlockQ4_K);
    case GgufType::Q5_K:
      return sizeof(BlockQ5_K);
    case GgufType::Q6_K:
      return sizeof(BlockQ6_K);
  }
  return 0;
}

size_t gguf_nbytes(GgufType t, const std::vector<int64_t>& ne) {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return size_t(n / gguf_block_size(t)) * gguf_type_size(t);
}

size_t GgufValue::size() const {
  if (elem == GgufValueType::STRING) return strings.size();
  if (elem == GgufValueType::F32 || elem == GgufValueType::F64) return floats.size();
  return ints.size();
}

GgufValue GgufValue::u32(uint32_t v) {
  GgufValue r;
  r.type = r.elem = GgufValueType::U32;
  r.ints = {v};
  return r;
}
GgufValue GgufValue::i32(int32_t v) {
  GgufValue r;
  r.type = r.elem = GgufValueType::I32;
  r.ints = {v};
  return r;
}
GgufValue GgufValue::u64(uint64_t v) {
  GgufValue r;
  r.type = r.elem = GgufValueType::U64;
  r.ints = {int64_t(v)};
  return r;
}
GgufValue GgufValue::f32(float v) {
  GgufValue r;
  r.type = r.elem = GgufValueType::F32;
  r.floats = {v};
  return r;
}
GgufValue GgufValue::boolean(bool v) {
  GgufValue r;
  r.type = r.elem = GgufValueType::BOOL;
  r.ints = {v};
  return r;
}
GgufValue GgufValue::str(std::string v) {
  GgufValue r;
  r.type = r.elem = GgufValueType::STRING;
  r.strings.push_back(std::move(v));
  return r;
}
GgufValue GgufValue::str_array(std::vector<std::string> v) {
  GgufValue r;
  r.type = GgufValueType::ARRAY, r.elem = GgufValueType::STRING;
  r.strings = std::move(v);
  return r;
}
GgufValue GgufValue::i32_array(std::vector<int32_t> v) {
  GgufValue r;
  r.type = GgufValueType::ARRAY, r.elem = GgufValueType::I32;
  r.ints.assign(v.begin(), v.end());
  return r;
}

// ---- reading ----

GgufFile::GgufFile(const std::string& path) : file_(std::make_unique<MappedFile>(path)), source_(path) {
  parse({file_->data(), file_->size()});
}

GgufFile::GgufFile(std::span<const uint8_t> bytes, const std::string& source) : source_(source) { parse(bytes); }

void GgufFile::parse(std::span<const uint8_t> bytes) {
  Cursor c(bytes, source_);
  c.need(4, "the magic");
  WAFER_CHECK(std::memcmp(bytes.data(), "GGUF", 4) == 0, "[gguf] ", source_,
              ": expected the magic 'GGUF' at offset 0 (not a GGUF file)");
  c.read<uint32_t>("the magic");
  version_ = c.read<uint32_t>("the version");
  WAFER_CHECK(version_ == 2 || version_ == 3, "[gguf] ", source_, ": expected version 3 (or 2), found ", version_);
  const uint64_t n_tensors = c.read<uint64_t>("the tensor count");
  const uint64_t n_kv = c.read<uint64_t>("the key-value count");
  // A key-value takes at least 13 bytes (length, type, one byte of value), a tensor info 24.
  WAFER_CHECK(n_kv <= c.left() / 13, "[gguf] ", source_, ": ", n_kv, " key-values cannot fit in the ", c.left(),
              " bytes left (truncated or corrupt file?)");
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.read_string("key " + std::to_string(i));
    WAFER_CHECK(!key_index_.count(key), "[gguf] ", source_, ": duplicate key '", key, "'");
    GgufValue v = read_value(c, key, source_);
    key_index_[key] = metadata_.size();
    metadata_.emplace_back(std::move(key), std::move(v));
  }
  if (const GgufValue* a = find("general.alignment")) {
    WAFER_CHECK(a->type == GgufValueType::U32, "[gguf] ", source_, ": general.alignment must be a u32");
    const uint64_t al = uint64_t(a->ints[0]);
    WAFER_CHECK(al != 0 && (al & (al - 1)) == 0, "[gguf] ", source_,
                ": general.alignment must be a power of two, found ", al);
    alignment_ = uint32_t(al);
  }

  WAFER_CHECK(n_tensors <= c.left() / 24, "[gguf] ", source_, ": ", n_tensors, " tensor infos cannot fit in the ",
              c.left(), " bytes left (truncated or corrupt file?)");
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensor t;
    t.name = c.read_string("the name of tensor " + std::to_string(i));
    WAFER_CHECK(t.name.size() < kMaxName, "[gguf] ", source_, ": tensor name '", t.name.substr(0, 80), "' is ",
                t.name.size(), " bytes, expected fewer than ", kMaxName);
    WAFER_CHECK(!tensor_index_.count(t.name), "[gguf] ", source_, ": duplicate tensor '", t.name, "'");
    const std::string what = "tensor '" + t.name + "'";
    const uint32_t n_dims = c.read<uint32_t>("the n_dims of " + what);
    WAFER_CHECK(n_dims >= 1 && n_dims <= kMaxDims, "[gguf] ", source_, ": ", what, " has ", n_dims,
                " dimensions, expected 1 to ", kMaxDims);
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = c.read<uint64_t>("the shape of " + what);
      WAFER_CHECK(ne >= 1 && ne < (uint64_t(1) << 62) && !__builtin_mul_overflow(numel, int64_t(ne), &numel), "[gguf] ",
                  source_, ": ", what, " has an invalid dimension ", ne);
      t.ne.push_back(int64_t(ne));
    }
    const uint32_t type = c.read<uint32_t>("the type of " + what);
    WAFER_CHECK(gguf_type_known(type), "[gguf] ", source_, ": ", what, " has ggml type ", type,
                ", which wafer does not read (", known_types_list(), ")");
    t.type = GgufType(type);
    WAFER_CHECK(t.ne[0] % gguf_block_size(t.type) == 0, "[gguf] ", source_, ": ", what, " is ", gguf_type_name(t.type),
                " with ne[0] = ", t.ne[0], ", not a multiple of its block of ", gguf_block_size(t.type));
    uint64_t nbytes;
    WAFER_CHECK(!__builtin_mul_overflow(uint64_t(numel / gguf_block_size(t.type)), gguf_type_size(t.type), &nbytes),
                "[gguf] ", source_, ": ", what, " is too large");
    t.nbytes = size_t(nbytes);
    t.offset = c.read<uint64_t>("the offset of " + what);
    tensor_index_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }

  const uint64_t data_start = align_up(c.pos(), alignment_);
  const uint64_t data_size = data_start <= bytes.size() ? bytes.size() - data_start : 0;
  for (GgufTensor& t : tensors_) {
    WAFER_CHECK(t.offset % alignment_ == 0, "[gguf] ", source_, ": tensor '", t.name, "' offset ", t.offset,
                " is not a multiple of the alignment ", alignment_);
    WAFER_CHECK(t.offset <= data_size && t.nbytes <= data_size - t.offset, "[gguf] ", source_, ": tensor '", t.name,
                "' (", t.nbytes, " bytes at offset ", t.offset, ") runs past the data section's ", data_size,
                " bytes (truncated file?)");
    t.data = bytes.data() + data_start + t.offset;
  }
  std::vector<const GgufTensor*> order;
  for (const GgufTensor& t : tensors_) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < order.size(); ++k)
    WAFER_CHECK(order[k]->offset >= order[k - 1]->offset + order[k - 1]->nbytes, "[gguf] ", source_, ": tensors '",
                order[k - 1]->name, "' and '", order[k]->name, "' overlap");
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata_[it->second].second;
}

namespace {
const GgufValue& need_key(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.find(key);
  WAFER_CHECK(v, "[gguf] ", f.source(), ": expected metadata key '", key, "', not found");
  return *v;
}
}  // namespace

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue& v = need_key(*this, key);
  WAFER_CHECK(!v.is_array() && is_int_type(v.type), "[gguf] ", source_, ": expected key '", key,
              "' to be an integer, found value type ", uint32_t(v.type));
  return v.ints[0];
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = need_key(*this, key);
  WAFER_CHECK(v.type == GgufValueType::F32 || v.type == GgufValueType::F64, "[gguf] ", source_, ": expected key '", key,
              "' to be a float, found value type ", uint32_t(v.type));
  return v.floats[0];
}

const std::string& GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = need_key(*this, key);
  WAFER_CHECK(v.type == GgufValueType::STRING, "[gguf] ", source_, ": expected key '", key,
              "' to be a string, found value type ", uint32_t(v.type));
  return v.strings[0];
}

const std::vector<std::string>& GgufFile::get_strings(const std::string& key) const {
  const GgufValue& v = need_key(*this, key);
  WAFER_CHECK(v.is_array() && v.elem == GgufValueType::STRING, "[gguf] ", source_, ": expected key '", key,
              "' to be an array of strings");
  return v.strings;
}

const std::vector<int64_t>& GgufFile::get_ints(const std::string& key) const {
  const GgufValue& v = need_key(*this, key);
  WAFER_CHECK(v.is_array() && is_int_type(v.elem), "[gguf] ", source_, ": expected key '", key,
              "' to be an array of integers");
  return v.ints;
}

const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

void GgufFile::release_pages(const GgufTensor& t) const {
  if (file_) file_->release_pages(t.data, t.nbytes);
}

namespace {
// Blocks straight from the file when it keeps them 2-byte aligned (the fp16 scale), else copied.
template <typename Block>
void dequantize_blocks(float* out, const GgufTensor& t, int64_t n, void (*dequantize)(float*, const Block*, int64_t)) {
  if (reinterpret_cast<uintptr_t>(t.data) % alignof(Block) == 0) {
    dequantize(out, reinterpret_cast<const Block*>(t.data), n);
    return;
  }
  std::vector<Block> copy(t.nbytes / sizeof(Block));
  std::memcpy(copy.data(), t.data, t.nbytes);
  dequantize(out, copy.data(), n);
}
}  // namespace

void gguf_tensor_to_f32(float* out, const GgufTensor& t) {
  int64_t n = 1;
  for (int64_t d : t.ne) n *= d;
  switch (t.type) {
    case GgufType::F32:
      convert_to_f32(out, t.data, DType::F32, size_t(n));
      return;
    case GgufType::F16:
      convert_to_f32(out, t.data, DType::F16, size_t(n));
      return;
    case GgufType::BF16:
      convert_to_f32(out, t.data, DType::BF16, size_t(n));
      return;
    case GgufType::Q8_0:
      dequantize_blocks<BlockQ8_0>(out, t, n, dequantize_q8_0);
      return;
    case GgufType::Q4_0:
      dequantize_blocks<BlockQ4_0>(out, t, n, dequantize_q4_0);
      return;
    case GgufType::Q4_K:
      dequantize_blocks<BlockQ4_K>(out, t, n, dequantize_q4_k);
      return;
    case GgufType::Q5_K:
      dequantize_blocks<BlockQ5_K>(out, t, n, dequantize_q5_k);
      return;
    case GgufType::Q6_K:
      dequantize_blocks<BlockQ6_K>(out, t, n, dequantize_q6_k);
      return;
  }
  WAFER_ASSERT(false);
}

// ---- writing ----

namespace {

template <typename T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}
void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

void put_element(std::string& out, GgufValueType t, const GgufValue& v, size_t i) {
  switch (t) {
    case GgufValueType::U8:
    case GgufValueType::BOOL:
      put<uint8_t>(out, uint8_t(v.ints[i]));
      return;
    case GgufValueType::I8:
      put<int8_t>(out, int8_t(v.ints[i]));
      return;
    case GgufValueType::U16:
      put<uint16_t>(out, uint16_t(v.ints[i]));
      return;
    case GgufValueType::I16:
      put<int16_t>(out, int16_t(v.ints[i]));
      return;
    case GgufValueType::U32:
      put<uint32_t>(out, uint32_t(v.ints[i]));
      return;
    case GgufValueType::I32:
      put<int32_t>(out, int32_t(v.ints[i]));
      return;
    case GgufValueType::U64:
    case GgufValueType::I64:
      put<int64_t>(out, v.ints[i]);
      return;
    case GgufValueType::F32:
      put<float>(out, float(v.floats[i]));
      return;
    case GgufValueType::F64:
      put<double>(out, v.floats[i]);
      return;
    case GgufValueType::STRING:
      put_string(out, v.strings[i]);
      return;
    case GgufValueType::ARRAY:
      break;
  }
  WAFER_ASSERT(false);
}

}  // namespace

void write_gguf_to(const std::function<void(const void*, size_t)>& append, const GgufMetadata& metadata,
                   const std::vector<GgufTensorToWrite>& tensors) {
  uint64_t alignment = 32;
  for (const auto& [key, v] : metadata)
    if (key == "general.alignment") {
      WAFER_CHECK(
          v.type == GgufValueType::U32 && !v.ints.empty() && v.ints[0] > 0 && (v.ints[0] & (v.ints[0] - 1)) == 0,
          "[gguf] general.alignment must be a u32 power of two");
      alignment = uint64_t(v.ints[0]);
    }
  std::string head = "GGUF";
  put<uint32_t>(head, 3);
  put<uint64_t>(head, tensors.size());
  put<uint64_t>(head, metadata.size());
  for (const auto& [key, v] : metadata) {
    WAFER_ASSERT(v.elem != GgufValueType::ARRAY && (v.is_array() || v.elem == v.type) &&
                 (v.is_array() || v.size() == 1));
    put_string(head, key);
    put<uint32_t>(head, uint32_t(v.type));
    if (v.is_array()) {
      put<uint32_t>(head, uint32_t(v.elem));
      put<uint64_t>(head, v.size());
    }
    for (size_t i = 0; i < v.size(); ++i) put_element(head, v.elem, v, i);
  }
  std::vector<uint64_t> sizes;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    WAFER_CHECK(t.name.size() < kMaxName, "[gguf] tensor name '", t.name, "' must be shorter than ", kMaxName,
                " bytes");
    WAFER_CHECK(!t.ne.empty() && t.ne.size() <= kMaxDims && t.ne[0] % gguf_block_size(t.type) == 0, "[gguf] tensor '",
                t.name, "': ", t.ne.size(), " dims, ne[0] = ", t.ne.empty() ? 0 : t.ne[0],
                "; expected 1 to 4 dims and ne[0] a multiple of ", gguf_block_size(t.type), " for ",
                gguf_type_name(t.type));
    put_string(head, t.name);
    put<uint32_t>(head, uint32_t(t.ne.size()));
    for (int64_t d : t.ne) put<uint64_t>(head, uint64_t(d));
    put<uint32_t>(head, uint32_t(t.type));
    put<uint64_t>(head, offset);
    sizes.push_back(gguf_nbytes(t.type, t.ne));
    offset = align_up(offset + sizes.back(), alignment);
  }
  head.append(size_t(align_up(head.size(), alignment) - head.size()), '\0');
  append(head.data(), head.size());
  static const char zeros[256] = {};
  for (size_t i = 0; i < tensors.size(); ++i) {
    append(tensors[i].data, size_t(sizes[i]));
    for (uint64_t pad = align_up(sizes[i], alignment) - sizes[i]; pad > 0;) {
      const size_t k = size_t(std::min<uint64_t>(pad, sizeof zeros));
      append(zeros, k);
      pad -= k;
    }
  }
}

void write_gguf(const std::string& path, const GgufMetadata& metadata, const std::vector<GgufTensorToWrite>& tensors) {
  write_file_atomic(path, [&](const auto& append) { write_gguf_to(append, metadata, tensors); });
}

}  // namespace wafer
