// io/tensor_source.h: a named tensor as some file holds it (dtype, shape, raw bytes), the common
// currency of the safetensors and torch .bin readers. Bytes point into a mapped file or a
// buffer the reader owns; they live as long as the reader.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace wafer {

struct TensorRef {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // contiguous, row-major, little-endian
  size_t nbytes = 0;
  std::string file;               // where it came from, for messages
};

int64_t shape_numel(const std::vector<int64_t>& shape);
// numel × elem_size of a shape read from a file (dims >= 0), or false when it does not fit in 64
// bits: a header's claim to check against the bytes present, before any multiplication wraps.
bool shape_nbytes(const std::vector<int64_t>& shape, size_t elem_size, uint64_t* nbytes);
std::string shape_str(const std::vector<int64_t>& shape);  // "[768, 2304]"

}  // namespace wafer
