// tests/quant_test.cpp: the ggml block formats. Hand-built blocks whose bytes follow from the
// published formulas (worked out in the comments, not by calling our code), and round trips of
// random data within each format's error bound.
#include "kernels/cpu/quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "test_util.h"

namespace wafer {
namespace {

template <typename Block>
std::vector<uint8_t> bytes_of(const Block& b) {
  std::vector<uint8_t> v(sizeof(Block));
  std::memcpy(v.data(), &b, sizeof(Block));
  return v;
}

TEST(Quant, Q8_0HandBuiltBlock) {
  // max|x| = 127 makes d = 1 exactly (fp16 0x3c00, bytes 00 3c) and q = round(x), ties away from 0.
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = float(j - 16);
  x[0] = -127, x[1] = 2.5f, x[2] = -2.5f, x[3] = 0.49f, x[31] = 100.2f;
  BlockQ8_0 b;
  quantize_q8_0(&b, x, 32);
  std::vector<uint8_t> want = {0x00, 0x3c};
  int8_t q[32];
  for (int j = 0; j < 32; ++j) q[j] = int8_t(j - 16);
  q[0] = -127, q[1] = 3, q[2] = -3, q[3] = 0, q[31] = 100;
  for (int j = 0; j < 32; ++j) want.push_back(uint8_t(q[j]));
  EXPECT_EQ(bytes_of(b), want);
  float y[32];
  dequantize_q8_0(y, &b, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], float(q[j]));
}

TEST(Quant, Q4_0HandBuiltBlock) {
  // The value of largest magnitude is -8 (first of -8 and 8), so d = -8 / -8 = 1 (bytes 00 3c)
  // and q = min(15, trunc(x + 8.5)): -8 → 0, 0.5 → 9, -0.5 → 8, 7.4 → 15, 8 → 16 → 15.
  float x[32] = {};
  x[0] = -8, x[1] = 0.5f, x[2] = -0.5f, x[3] = 7.4f, x[4] = 8, x[16] = 3, x[17] = -3.6f, x[31] = 1.49f;
  int q[32];
  for (int j = 0; j < 32; ++j) q[j] = 8;  // x = 0 → trunc(8.5) = 8
  q[0] = 0, q[1] = 9, q[2] = 8, q[3] = 15, q[4] = 15, q[16] = 11, q[17] = 4, q[31] = 9;
  BlockQ4_0 b;
  quantize_q4_0(&b, x, 32);
  std::vector<uint8_t> want = {0x00, 0x3c};
  for (int j = 0; j < 16; ++j) want.push_back(uint8_t(q[j] | (q[j + 16] << 4)));  // low nibble: value j
  EXPECT_EQ(bytes_of(b), want);
  float y[32];
  dequantize_q4_0(y, &b, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], float(q[j] - 8));
}

TEST(Quant, Q4_KHandBuiltQuantizedBlock) {
  // Every sub-block is the ramp 0..15 twice: min 0, max 15, so the first grid (scale 1, min 0)
  // is exact and no other grid beats it. Then max_scale = 1: every six-bit scale is 63 and
  // d = fp16(1/63) = 2^-6 · (1 + 16/1024) = 0x2410; all mins are 0 (dmin = 0). Packing 63 for
  // s ≥ 4: scales[s + 4] = 63 & 15 = 0x0f and scales[s - 4] |= (63 >> 4) << 6, so bytes 0-3 are
  // 0xff, bytes 4-7 (the mins) 0, bytes 8-11 0x0f. Requantizing against d·63 ≈ 1 gives back q = x.
  std::vector<float> x(256);
  for (int i = 0; i < 256; ++i) x[i] = float(i % 16);
  BlockQ4_K b;
  quantize_q4_k(&b, x.data(), 256);
  std::vector<uint8_t> want = {0x10, 0x24, 0x00, 0x00};
  for (int i = 0; i < 4; ++i) want.push_back(0xff);
  for (int i = 0; i < 4; ++i) want.push_back(0x00);
  for (int i = 0; i < 4; ++i) want.push_back(0x0f);
  for (int g = 0; g < 4; ++g)
    for (int l = 0; l < 32; ++l) want.push_back(uint8_t((l % 16) | ((l % 16) << 4)));
  EXPECT_EQ(bytes_of(b), want);
}

TEST(Quant, Q4_KHandBuiltDequantize) {
  // d = 1 (0x3c00), dmin = 0.5 (0x3800); six-bit scales sc[s] = 10 + 7s and mins m[s] = 60 - 5s,
  // packed by hand per the layout; nibble q of value i = (i · 7) mod 16.
  uint8_t sc[8], m[8];
  for (int s = 0; s < 8; ++s) sc[s] = uint8_t(10 + 7 * s), m[s] = uint8_t(60 - 5 * s);
  uint8_t bytes[144] = {0x00, 0x3c, 0x00, 0x38};
  uint8_t* scales = bytes + 4;
  for (int s = 0; s < 4; ++s) {
    scales[s] = uint8_t(sc[s] | ((sc[s + 4] >> 4) << 6));
    scales[s + 4] = uint8_t(m[s] | ((m[s + 4] >> 4) << 6));
    scales[s + 8] = uint8_t((sc[s + 4] & 15) | ((m[s + 4] & 15) << 4));
  }
  auto q_of = [](int i) { return (i * 7) % 16; };
  for (int g = 0; g < 4; ++g)
    for (int l = 0; l < 32; ++l) bytes[16 + 32 * g + l] = uint8_t(q_of(64 * g + l) | (q_of(64 * g + 32 + l) << 4));
  BlockQ4_K b;
  std::memcpy(&b, bytes, 144);
  for (int s = 0; s < 8; ++s) {
    uint8_t got_sc, got_m;
    q4_k_scale_min(s, b.scales, &got_sc, &got_m);
    EXPECT_EQ(got_sc, sc[s]) << s;
    EXPECT_EQ(got_m, m[s]) << s;
  }
  float y[256];
  dequantize_q4_k(y, &b, 256);
  for (int i = 0; i < 256; ++i) {
    const int s = i / 32;
    EXPECT_EQ(y[i], 1.0f * sc[s] * q_of(i) - 0.5f * m[s]) << i;
  }
}

TEST(Quant, Q5_KHandBuiltDequantize) {
  // d = 1, dmin = 0.5 and the six-bit scales and mins of Q4_KHandBuiltDequantize; five-bit q of
  // value i = (i · 11) mod 32: low nibble in qs as block_q4_K's, the fifth bit of value 64g + l
  // at bit 2g of qh[l], of value 64g + 32 + l at bit 2g + 1.
  uint8_t sc[8], m[8];
  for (int s = 0; s < 8; ++s) sc[s] = uint8_t(10 + 7 * s), m[s] = uint8_t(60 - 5 * s);
  uint8_t bytes[176] = {0x00, 0x3c, 0x00, 0x38};
  for (int s = 0; s < 4; ++s) {
    bytes[4 + s] = uint8_t(sc[s] | ((sc[s + 4] >> 4) << 6));
    bytes[8 + s] = uint8_t(m[s] | ((m[s + 4] >> 4) << 6));
    bytes[12 + s] = uint8_t((sc[s + 4] & 15) | ((m[s + 4] & 15) << 4));
  }
  auto q_of = [](int i) { return (i * 11) % 32; };
  for (int g = 0; g < 4; ++g)
    for (int l = 0; l < 32; ++l) {
      const int lo = q_of(64 * g + l), hi = q_of(64 * g + 32 + l);
      bytes[48 + 32 * g + l] = uint8_t((lo & 15) | ((hi & 15) << 4));
      bytes[16 + l] |= uint8_t((lo >> 4) << (2 * g) | (hi >> 4) << (2 * g + 1));
    }
  BlockQ5_K b;
  std::memcpy(&b, bytes, 176);
  float y[256];
  dequantize_q5_k(y, &b, 256);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(y[i], 1.0f * sc[i / 32] * float(q_of(i)) - 0.5f * m[i / 32]) << i;
}

TEST(Quant, Q6_KHandBuiltDequantize) {
  // d = 0.5 (0x3800); int8 scales sc[s] = 9s - 70 (negative and positive); six-bit q of value i =
  // (5i + 3) mod 64, its low nibble and high two bits packed by hand per the layout.
  auto q_of = [](int i) { return (5 * i + 3) % 64; };
  uint8_t bytes[210] = {};
  for (int i = 0; i < 256; ++i) {
    const int h = i / 128, k = i % 128 / 32, l = i % 32;  // value 128h + 32k + l
    const int ql = 64 * h + 32 * (k % 2) + l;             // k = 0, 2 low nibbles; 1, 3 at +32
    bytes[ql] |= uint8_t((q_of(i) & 15) << (k >= 2 ? 4 : 0));
    bytes[128 + 32 * h + l] |= uint8_t((q_of(i) >> 4) << (2 * k));
  }
  int8_t sc[16];
  for (int s = 0; s < 16; ++s) bytes[192 + s] = uint8_t(sc[s] = int8_t(9 * s - 70));
  bytes[208] = 0x00, bytes[209] = 0x38;
  BlockQ6_K b;
  std::memcpy(&b, bytes, 210);
  float y[256];
  dequantize_q6_k(y, &b, 256);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(y[i], 0.5f * sc[i / 16] * float(q_of(i) - 32)) << i;
}

TEST(Quant, Q6_KHandBuiltQuantizedBlock) {
  // Integers in [-32, 31] with -32 in every sub-block: each sub-block's first grid (iscale 1) is
  // exact and no other beats it, so every sub-block scale is 1, d = fp16(1 / -128) = -2^-7
  // (0xa000) and every int8 scale -128; requantizing against d·(-128) = 1 gives q = x + 32.
  auto q_of = [](int i) { return i % 16 == 0 ? 0 : (7 * i) % 64; };
  std::vector<float> x(256);
  for (int i = 0; i < 256; ++i) x[size_t(i)] = float(q_of(i) - 32);
  BlockQ6_K b;
  quantize_q6_k(&b, x.data(), 256);
  EXPECT_EQ(b.d, 0xa000);
  for (int s = 0; s < 16; ++s) EXPECT_EQ(b.scales[s], -128) << s;
  // q(1) = q(65) = 7; q(33) = q(97) = 39: ql[1] = 0x77, ql[33] = 0x77, qh[1] = 2 << 2 | 2 << 6.
  EXPECT_EQ(b.ql[1], 0x77);
  EXPECT_EQ(b.ql[33], 0x77);
  EXPECT_EQ(b.qh[1], 0x88);
  float y[256];
  dequantize_q6_k(y, &b, 256);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(y[i], x[size_t(i)]) << i;
}

// Max |x - dequantize(quantize(x))| over blocks of `block` values, relative to each block's max|x|.
template <typename Block>
float worst_relative_error(void (*quantize)(Block*, const float*, int64_t),
                           void (*dequantize)(float*, const Block*, int64_t), int64_t block,
                           const std::vector<float>& x) {
  const int64_t n = int64_t(x.size());
  std::vector<Block> q(size_t(n / block));
  std::vector<float> y(x.size());
  quantize(q.data(), x.data(), n);
  dequantize(y.data(), q.data(), n);
  float worst = 0;
  for (int64_t b = 0; b < n / block; ++b) {
    float amax = 0, err = 0;
    for (int64_t j = b * block; j < (b + 1) * block; ++j) {
      amax = std::max(amax, std::fabs(x[size_t(j)]));
      err = std::max(err, std::fabs(x[size_t(j)] - y[size_t(j)]));
    }
    worst = std::max(worst, err / amax);
  }
  return worst;
}

TEST(Quant, RoundTripErrorBounds) {
  const std::vector<float> x = test::randn(256 * 64, 7, 0.02f);
  // q8_0: half a step (max/127/2) plus the fp16 rounding of d (2^-11 relative, times |q| ≤ 127).
  EXPECT_LT(worst_relative_error(quantize_q8_0, dequantize_q8_0, kQ8_0Block, x), 0.5f / 127 + 1.0f / 2048);
  // q4_0: half a step (max/8/2) for most values; a value of the other sign near max clamps at
  // q = 15 (7d instead of 8d), an error of up to one step.
  EXPECT_LE(worst_relative_error(quantize_q4_0, dequantize_q4_0, kQ4_0Block, x), 1.0f / 8 + 1.0f / 1024);
  // q4_K: 15 steps over each 32-value sub-block's range (≤ 2·max), six-bit scales and mins.
  const float e4k = worst_relative_error(quantize_q4_k, dequantize_q4_k, kQ4_KBlock, x);
  EXPECT_LT(e4k, 0.2f);
  EXPECT_GT(e4k, 0.0f);
  // q6_K: half a step of a 16-value sub-block's scale (≤ max/32/2) plus the int8 rounding of
  // that scale against d (max/128/2 per unit, times |q - 32| ≤ 32) and d's fp16 rounding.
  const float e6k = worst_relative_error(quantize_q6_k, dequantize_q6_k, kQ6_KBlock, x);
  EXPECT_LT(e6k, 1.0f / 64 + 1.0f / 256 + 1.0f / 1024);
  EXPECT_GT(e6k, 0.0f);
  // All zeros stay zeros (d = 0, no division by zero).
  std::vector<float> z(256, 0.0f), y(256, 1.0f);
  std::vector<BlockQ4_K> qk(1);
  quantize_q4_k(qk.data(), z.data(), 256);
  dequantize_q4_k(y.data(), qk.data(), 256);
  for (float v : y) EXPECT_EQ(v, 0.0f);
  std::vector<BlockQ6_K> q6(1);
  quantize_q6_k(q6.data(), z.data(), 256);
  dequantize_q6_k(y.data(), q6.data(), 256);
  for (float v : y) EXPECT_EQ(v, 0.0f);
  std::vector<BlockQ8_0> q8(8);
  quantize_q8_0(q8.data(), z.data(), 256);
  dequantize_q8_0(y.data(), q8.data(), 256);
  for (float v : y) EXPECT_EQ(v, 0.0f);
}

}  // namespace
}  // namespace wafer
