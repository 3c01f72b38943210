// io/safetensors.cpp: safetensors reading (mmap + validation) and atomic writing.
#include "io/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace wafer {

int64_t shape_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

bool shape_nbytes(const std::vector<int64_t>& shape, size_t elem_size, uint64_t* nbytes) {
  *nbytes = 0;
  for (int64_t d : shape)
    if (d == 0) return true;  // empty, however large the other dimensions
  uint64_t n = elem_size;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, uint64_t(d), &n)) return false;
  *nbytes = n;
  return true;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

SafetensorsFile::SafetensorsFile(const std::string& path) : SafetensorsFile(std::make_unique<MappedFile>(path)) {}

SafetensorsFile::SafetensorsFile(std::unique_ptr<MappedFile> file) : file_(std::move(file)) {
  const std::string& path = file_->path();
  const size_t size = file_->size();
  WAFER_CHECK(size >= 8, "[safetensors] ", path, ": expected at least 8 bytes (header length), found ", size,
              " (truncated file?)");
  uint64_t header_len;
  std::memcpy(&header_len, file_->data(), 8);
  WAFER_CHECK(header_len <= size - 8, "[safetensors] ", path, ": header length ", header_len,
              " exceeds the file's remaining ", size - 8, " bytes (truncated file?)");
  const char* header = reinterpret_cast<const char*>(file_->data() + 8);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header, header + header_len);
  } catch (const nlohmann::json::exception& e) {
    fail(str_cat("[safetensors] ", path, ": header is not valid JSON: ", e.what()));
  }
  WAFER_CHECK(j.is_object(), "[safetensors] ", path, ": expected a JSON object header");
  const uint8_t* data = file_->data() + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;

  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  std::vector<std::string> range_names;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (it.value().is_object())
        for (auto m = it.value().begin(); m != it.value().end(); ++m)
          if (m.value().is_string()) metadata_[m.key()] = m.value().get<std::string>();
      continue;
    }
    const auto& t = it.value();
    const std::string& name = it.key();
    WAFER_CHECK(t.is_object() && t.contains("dtype") && t["dtype"].is_string() && t.contains("shape") &&
                    t["shape"].is_array() && t.contains("data_offsets") && t["data_offsets"].is_array() &&
                    t["data_offsets"].size() == 2,
                "[safetensors] ", path, ": tensor '", name, "' needs dtype, shape and data_offsets [begin, end]");
    TensorRef ref;
    ref.name = name;
    ref.file = path;
    std::string dt = t["dtype"].get<std::string>();
    WAFER_CHECK(dtype_from_name(dt, &ref.dtype), "[safetensors] ", path, ": tensor '", name, "' has unknown dtype '",
                dt, "' (expected F32, F16, BF16, F64, I64, I32, I16, I8, U8 or BOOL)");
    for (const auto& d : t["shape"]) {
      WAFER_CHECK(d.is_number_unsigned() && d.get<uint64_t>() < (1ull << 40), "[safetensors] ", path, ": tensor '",
                  name, "' has an invalid shape ", t["shape"].dump());
      ref.shape.push_back(d.get<int64_t>());
    }
    const auto& off = t["data_offsets"];
    WAFER_CHECK(off[0].is_number_unsigned() && off[1].is_number_unsigned(), "[safetensors] ", path, ": tensor '", name,
                "' has non-integer data_offsets");
    uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    WAFER_CHECK(begin <= end && end <= data_size, "[safetensors] ", path, ": tensor '", name, "' data_offsets [",
                begin, ", ", end, ") out of range: the data section has ", data_size, " bytes (truncated file?)");
    uint64_t expected = 0;
    WAFER_CHECK(shape_nbytes(ref.shape, dtype_size(ref.dtype), &expected), "[safetensors] ", path, ": tensor '", name,
                "' ", dt, " ", shape_str(ref.shape), " has more bytes than 64 bits can count (corrupt header?)");
    WAFER_CHECK(end - begin == expected, "[safetensors] ", path, ": tensor '", name, "' ", dt, " ",
                shape_str(ref.shape), " needs ", expected, " bytes, its data_offsets span ", end - begin);
    ref.data = data + begin;
    ref.nbytes = end - begin;
    ranges.emplace_back(begin, end);
    range_names.push_back(name);
    tensors_.emplace(name, std::move(ref));
  }
  std::vector<size_t> order(ranges.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ranges[a] < ranges[b]; });
  for (size_t k = 1; k < order.size(); ++k) {
    const auto& prev = ranges[order[k - 1]];
    const auto& cur = ranges[order[k]];
    WAFER_CHECK(cur.first >= prev.second || cur.first == cur.second || prev.first == prev.second, "[safetensors] ",
                path, ": tensors '", range_names[order[k - 1]], "' and '", range_names[order[k]],
                "' overlap (byte ranges [", prev.first, ", ", prev.second, ") and [", cur.first, ", ", cur.second, "))");
  }
}

void write_safetensors_streamed(const std::string& path, const std::vector<TensorToWrite>& tensors,
                                const std::function<void(size_t i, const std::function<void(const void*, size_t)>& append)>& fill,
                                const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::vector<uint64_t> sizes;
  for (const auto& t : tensors) {
    const uint64_t n = uint64_t(shape_numel(t.shape)) * dtype_size(t.dtype);
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + n}}};
    sizes.push_back(n);
    offset += n;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // align the data section to 8 bytes, as HF does
  const uint64_t len = h.size();
  write_file_atomic(path, [&](const auto& append) {
    append(&len, 8);
    append(h.data(), h.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      uint64_t written = 0;
      fill(i, [&](const void* p, size_t n) {
        written += n;
        append(p, n);
      });
      WAFER_CHECK(written == sizes[i], "[safetensors] ", path, ": tensor '", tensors[i].name, "' expected ", sizes[i],
                  " bytes, was given ", written);
    }
  });
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  write_safetensors_streamed(
      path, tensors,
      [&](size_t i, const auto& append) {
        append(tensors[i].data, size_t(shape_numel(tensors[i].shape)) * dtype_size(tensors[i].dtype));
      },
      metadata);
}

}  // namespace wafer
