// kernels/cpu/quant.h: the block formats of ggml (llama.cpp's GGUF files), byte for byte, with
// quantize and dequantize routines. Quantize follows ggml's quantize_row_*_ref (the ones
// llama-quantize uses without an importance matrix), so a file wafer writes holds the bytes
// llama.cpp would write. Not here: matrix kernels on quantized weights, or the file format.
//
// Common to all: fp16 is IEEE half, little-endian; a row of n values is n / block-size blocks
// back to back; within a tensor, rows (ne[0], the fastest GGUF dimension) follow each other.
#pragma once
#include <cstddef>
#include <cstdint>

namespace wafer {

constexpr int64_t kQ8_0Block = 32;   // QK8_0
constexpr int64_t kQ4_0Block = 32;   // QK4_0
constexpr int64_t kQ4_KBlock = 256;  // QK_K

// ggml block_q8_0, 34 bytes for 32 values:
//   bytes 0-1   d      fp16 scale, d = max|x| / 127
//   bytes 2-33  qs[32] int8, value j at byte 2 + j
//   x[j] = d · qs[j]
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};

// ggml block_q4_0, 18 bytes for 32 values:
//   bytes 0-1   d      fp16 scale, d = m / -8 where m is the value of largest magnitude (sign kept)
//   bytes 2-17  qs[16] byte 2 + j holds value j in its low nibble and value j + 16 in its high
//   x[j] = d · (q[j] - 8), q in [0, 15]
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];
};

// ggml block_q4_K, 144 bytes for 256 values in 8 sub-blocks of 32:
//   bytes 0-1    d        fp16 super-block scale of the sub-block scales
//   bytes 2-3    dmin     fp16 super-block scale of the sub-block mins
//   bytes 4-15   scales   8 six-bit scales sc[s] and 8 six-bit mins m[s] (ggml's get_scale_min_k4):
//                           s < 4:  sc[s] = scales[s] & 63,  m[s] = scales[s + 4] & 63
//                           s >= 4: sc[s] = (scales[s + 4] & 15) | (scales[s - 4] >> 6) << 4
//                                   m[s]  = (scales[s + 4] >> 4) | (scales[s]     >> 6) << 4
//   bytes 16-143 qs[128]  four 32-byte groups g = 0..3; byte 16 + 32g + l holds value 64g + l
//                         (sub-block 2g) in its low nibble and value 64g + 32 + l (sub-block
//                         2g + 1) in its high nibble
//   x = d · sc[s] · q - dmin · m[s], q in [0, 15]
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[128];
};

static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_K) == 144,
              "ggml block layouts are packed byte for byte");

// The six-bit scale and min of sub-block s (0..7) of a q4_K block (ggml get_scale_min_k4).
inline void q4_k_scale_min(int s, const uint8_t* scales, uint8_t* sc, uint8_t* m) {
  if (s < 4) {
    *sc = scales[s] & 63;
    *m = scales[s + 4] & 63;
  } else {
    *sc = uint8_t((scales[s + 4] & 0xF) | ((scales[s - 4] >> 6) << 4));
    *m = uint8_t((scales[s + 4] >> 4) | ((scales[s] >> 6) << 4));
  }
}

// y[n / block] = quantize(x[n]); n must be a multiple of the block size.
void quantize_q8_0(BlockQ8_0* y, const float* x, int64_t n);
void quantize_q4_0(BlockQ4_0* y, const float* x, int64_t n);
void quantize_q4_k(BlockQ4_K* y, const float* x, int64_t n);

// y[n] = dequantize(x[n / block]).
void dequantize_q8_0(float* y, const BlockQ8_0* x, int64_t n);
void dequantize_q4_0(float* y, const BlockQ4_0* x, int64_t n);
void dequantize_q4_k(float* y, const BlockQ4_K* x, int64_t n);

}  // namespace wafer
