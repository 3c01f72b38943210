// core/dtype.h: the element types wafer reads and writes, their sizes and names, and
// the 16-bit float conversions (bf16, IEEE f16) to and from fp32.
#pragma once
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace wafer {

enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL };

size_t dtype_size(DType t);
// Safetensors spelling: "F32", "BF16", ...
std::string dtype_name(DType t);
// Parses a safetensors dtype name; false when unknown.
bool dtype_from_name(const std::string& s, DType* out);

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even, NaN kept quiet (the rule torch uses).
// Branch-free (a select), so loops that call it vectorise.
inline uint16_t f32_to_bf16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t quiet_nan = (u >> 16) | 0x40u;
  return uint16_t((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}

// A weight element as fp32, for kernels that read fp32 or bf16 matrices with one template:
// fp32 as it is, bf16 bits widened.
inline float weight_to_f32(float v) { return v; }
inline float weight_to_f32(uint16_t bf16) { return bf16_to_f32(bf16); }

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Converts n elements of type `t` at `src` to fp32 at `dst`. Float types only.
void convert_to_f32(float* dst, const void* src, DType t, size_t n);
// Converts n fp32 values to `t` (F32, F16 or BF16) at `dst`.
void convert_from_f32(void* dst, const float* src, DType t, size_t n);

}  // namespace wafer
