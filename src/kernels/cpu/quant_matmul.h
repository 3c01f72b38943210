// kernels/cpu/quant_matmul.h: matrix products with ggml-quantized weights (q8_0, q4_0, q4_K, q6_K), the
// way llama.cpp computes them: each activation row is quantized to 8 bits once per call, and
// every block's dot product is an exact integer sum times the two block scales. At N = 1
// (decode) each weight byte is read once. Not here: the block formats (quant.h), GGUF files.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace wafer {

enum class QuantType { Q8_0, Q4_0, Q4_K, Q6_K };

const char* quant_type_name(QuantType t);  // "q8_0", "q4_0", "q4_k", "q6_k"
// The inverse of quant_type_name; throws wafer::Error on any other name.
QuantType quant_type_from_name(const std::string& name);
int64_t quant_block_values(QuantType t);  // values per block: 32, 32, 256, 256
int64_t quant_block_bytes(QuantType t);   // bytes per block: 34, 18, 144, 210
// Bytes of one quantized row of `cols` values; throws unless cols is a positive multiple of
// the block size.
int64_t quant_row_bytes(QuantType t, int64_t cols);

// W[rows, cols]: `rows` rows of `cols` values, each row quantized along its length, rows back to
// back (rows · quant_row_bytes(type, cols) bytes, any alignment). For a dense layer this is the
// transpose of HF Conv1D's [C, OC] weight: rows = OC, cols = C, so the reduction runs along each
// row, as in ggml (GGUF ne[0] = cols).
struct QuantMatrix {
  QuantType type = QuantType::Q8_0;
  int64_t rows = 0, cols = 0;
  const uint8_t* data = nullptr;
};

// W[OC, C] quantized from HF Conv1D w[C, OC] fp32 (transposed on the way).
std::vector<uint8_t> quantize_matrix_conv1d(QuantType t, const float* w, int64_t C, int64_t OC);
// W[rows, cols] quantized from w[rows, cols] fp32, row-major.
std::vector<uint8_t> quantize_matrix_rows(QuantType t, const float* w, int64_t rows, int64_t cols);

// out[N, rows] = scale · (x[N, cols] · Wᵀ) + bias[rows] (bias may be null).
// x is quantized per row first (see quant_activation_values); then out[n, r] is, up to fp32
// rounding, the dot product of dequantize(W[r]) with those activation values. The result is
// bit-identical on every ISA path, for any thread count, and for a row whatever N it came in.
void quant_matmul(float* out, const float* x, const QuantMatrix& w, const float* bias, int64_t N, float scale);

// --- One activation row inside a caller's parallel region (model/decode_step.cpp) ---
// x[cols] quantized as quant_matmul quantizes a row for weights of `type`. Each thread of a
// decode step quantizes the same input into its own QuantActRow (as cheap as the barrier that
// sharing one would need), then computes its range of a matrix's rows from it.
struct QuantActRow {
  QuantType type = QuantType::Q8_0;
  int64_t cols = 0;
  std::vector<int8_t> q_storage;  // q, 64-byte aligned inside it
  std::vector<float> d;
  std::vector<int32_t> s;
  int8_t* q = nullptr;
  QuantActRow() = default;
  QuantActRow(const QuantActRow&) = delete;  // q points into q_storage
  QuantActRow& operator=(const QuantActRow&) = delete;
  QuantActRow(QuantActRow&&) = default;
  QuantActRow& operator=(QuantActRow&&) = default;
};
void quantize_activation_row(QuantActRow& a, QuantType t, const float* x, int64_t cols);
// out[r] = scale · (x · W[r]ᵀ) + bias[r] for r in [r0, r1) (bias may be null): the value
// quant_matmul gives row r, bit for bit. Serial; the caller splits the rows between threads.
void quant_matmul_rows(float* out, const QuantActRow& x, const QuantMatrix& w, const float* bias, int64_t r0,
                       int64_t r1, float scale);

// y[cols] = the activation values quant_matmul multiplies for weights of type t, d · q with
// q = round(x / d) in int8: blocks of 32 (q8_0, q4_0 weights) or 256 (q4_K, q6_K: as ggml's q8_K)
// with an fp32 d = max|x| / 127. For tests and error studies.
void quant_activation_values(float* y, QuantType t, const float* x, int64_t cols);

}  // namespace wafer
