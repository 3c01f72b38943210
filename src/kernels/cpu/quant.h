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
constexpr int64_t kQ5_KBlock = 256;  // QK_K
constexpr int64_t kQ6_KBlock = 256;  // QK_K

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

// ggml block_q5_K, 176 bytes for 256 values in 8 sub-blocks of 32 (read only: llama-quantize's
// Q4_K_M and Q5_K_M files use it; wafer does not write it):
//   bytes 0-15    d, dmin, scales[12] as block_q4_K
//   bytes 16-47   qh[32]   the fifth bits: bit 2g of byte l is value 64g + l's, bit 2g + 1 value
//                          64g + 32 + l's
//   bytes 48-175  qs[128]  the low four bits, as block_q4_K's qs
//   x = d · sc[s] · q - dmin · m[s], q in [0, 31]
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};

// ggml block_q6_K, 210 bytes for 256 values in 16 sub-blocks of 16 (llama.cpp's type for the
// output matrix under its 4-bit and 5-bit file types, and for some attn_v / ffn_down in Q4_K_M):
//   bytes 0-127    ql[128]     low 4 bits: two halves h = 0, 1 of 64 bytes; byte 64h + l holds
//                              value 128h + l in its low nibble and 128h + 64 + l in its high
//                              one, byte 64h + 32 + l values 128h + 32 + l and 128h + 96 + l (l < 32)
//   bytes 128-191  qh[64]      high 2 bits: byte 32h + l holds, from bit 0 up, those of values
//                              128h + l, + 32, + 64, + 96
//   bytes 192-207  scales[16]  int8 scale of sub-block s (values 16s .. 16s + 15)
//   bytes 208-209  d           fp16 super-block scale
//   x = d · scales[s] · (q - 32), q in [0, 63]
struct BlockQ6_K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;
};

static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_K) == 144 &&
                  sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210,
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
void quantize_q6_k(BlockQ6_K* y, const float* x, int64_t n);

// y[n] = dequantize(x[n / block]).
void dequantize_q8_0(float* y, const BlockQ8_0* x, int64_t n);
void dequantize_q4_0(float* y, const BlockQ4_0* x, int64_t n);
void dequantize_q4_k(float* y, const BlockQ4_K* x, int64_t n);
void dequantize_q5_k(float* y, const BlockQ5_K* x, int64_t n);
void dequantize_q6_k(float* y, const BlockQ6_K* x, int64_t n);

}  // namespace wafer
