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
  // All zeros stay zeros (d = 0, no division by zero).
  std::vector<float> z(256, 0.0f), y(256, 1.0f);
  std::vector<BlockQ4_K> qk(1);
  quantize_q4_k(qk.data(), z.data(), 256);
  dequantize_q4_k(y.data(), qk.data(), 256);
  for (float v : y) EXPECT_EQ(v, 0.0f);
  std::vector<BlockQ8_0> q8(8);
  quantize_q8_0(q8.data(), z.data(), 256);
  dequantize_q8_0(y.data(), q8.data(), 256);
  for (float v : y) EXPECT_EQ(v, 0.0f);
}

}  // namespace
}  // namespace wafer
