// kernels/cpu/quant.cpp: ggml's reference quantizers (quantize_row_q8_0_ref, _q4_0_ref, _q4_K_ref
// with make_qkx2_quants, _q6_K_ref with make_qx_quants) and dequantizers, re-derived from their
// published algorithms. The arithmetic is kept in ggml's order, in fp32, and without fused
// multiply-adds, so the bytes equal llama-quantize's on any build (a contracted a·b + c rounds
// differently).
#pragma GCC optimize("fp-contract=off")
#include "kernels/cpu/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"

namespace wafer {

namespace {

// Round to nearest, ties to even, for |v| < 2^22: adding 1.5·2^23 leaves the integer in the
// low mantissa bits (ggml's nearest_int; the magic-number form is what fixes the tie rule).
inline int nearest_int(float v) {
  float t = v + 12582912.f;
  int32_t i;
  std::memcpy(&i, &t, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// Fits x[i] ≈ scale · L[i] - the_min with L in [0, nmax], minimising Σ w·(error)²: starts from the
// min/max grid, then tries nstep + 1 grids of (nmax + rmin + rdelta·is) steps over the range,
// each refined by a weighted least-squares solve for scale and min (ggml make_qkx2_quants, the
// squared-error variant: use_mad = false for q4_K). Returns scale; *the_min is ≥ 0.
float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* the_min, uint8_t* Laux,
                    float rmin, float rdelta, int nstep) {
  float lo = x[0], hi = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < lo) lo = x[i];
    if (x[i] > hi) hi = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (lo > 0) lo = 0;
  if (hi == lo) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -lo;
    return 0.f;
  }
  float iscale = nmax / (hi - lo);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * (x[i] - lo));
    L[i] = uint8_t(std::max(0, std::min(nmax, l)));
    float diff = scale * L[i] + lo - x[i];
    best_error += w[i] * (diff * diff);
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (hi - lo);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = std::max(0, std::min(nmax, nearest_int(iscale * (x[i] - lo))));
      Laux[i] = uint8_t(l);
      sum_l += w[i] * l;
      sum_l2 += w[i] * l * l;
      sum_xl += w[i] * l * x[i];
    }
    float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        cur_error += w[i] * (diff * diff);
      }
      if (cur_error < best_error) {
        std::memcpy(L, Laux, size_t(n));
        best_error = cur_error;
        scale = this_scale;
        lo = this_min;
      }
    }
  }
  *the_min = -lo;
  return scale;
}

// Fits x[i] ≈ scale · (L[i] - nmax) with L in [0, 2·nmax), symmetric (no min): the grid that puts
// the value of largest magnitude at -nmax, refined by a least-squares scale weighted by x², then
// 18 nearby grids (nmax ± 0.1·is steps), the one of least weighted error kept (ggml
// make_qx_quants with rmse_type 1 and no importance weights, as q6_K's reference quantizer
// calls it). Returns scale.
float fit_symmetric_scale(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), max = x[i];
  if (amax < 1e-15f) {  // GROUP_MAX_EPS: all zero
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  auto level = [&](float iscale, int i) { return std::max(-nmax, std::min(nmax - 1, nearest_int(iscale * x[i]))); };
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = level(iscale, i);
    L[i] = int8_t(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = level(iscale, i);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = int8_t(nmax + level(iscale, i));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

}  // namespace

void quantize_q8_0(BlockQ8_0* y, const float* x, int64_t n) {
  for (int64_t b = 0; b < n / kQ8_0Block; ++b, x += kQ8_0Block) {
    float amax = 0;
    for (int j = 0; j < kQ8_0Block; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < kQ8_0Block; ++j) y[b].qs[j] = int8_t(std::roundf(x[j] * id));  // ties away from 0
  }
}

void quantize_q4_0(BlockQ4_0* y, const float* x, int64_t n) {
  for (int64_t b = 0; b < n / kQ4_0Block; ++b, x += kQ4_0Block) {
    float amax = 0, max = 0;  // the value of largest magnitude, its sign kept: it maps to q = 0
    for (int j = 0; j < kQ4_0Block; ++j)
      if (amax < std::fabs(x[j])) amax = std::fabs(x[j]), max = x[j];
    const float d = max / -8;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < 16; ++j) {
      // + 8.5 then truncation: round half up into [0, 16], and 16 (the far end) clamps to 15.
      const int q0 = std::min(15, int(int8_t(x[j] * id + 8.5f)));
      const int q1 = std::min(15, int(int8_t(x[16 + j] * id + 8.5f)));
      y[b].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

void quantize_q4_k(BlockQ4_K* y, const float* x, int64_t n) {
  uint8_t L[kQ4_KBlock], Laux[32];
  float weights[32], mins[8], scales[8];
  for (int64_t b = 0; b < n / kQ4_KBlock; ++b, x += kQ4_KBlock) {
    // 1. Per sub-block: fit scale and min, weighting each value by rms(sub-block) + |x|.
    float max_scale = 0, max_min = 0;  // scales are ≥ 0 since the min is subtracted
    for (int s = 0; s < 8; ++s) {
      const float* xs = x + 32 * s;
      float sum_x2 = 0;
      for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
      const float av_x = std::sqrt(sum_x2 / 32);
      for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
      scales[s] = fit_scale_min(32, 15, xs, weights, L + 32 * s, &mins[s], Laux, -1.f, 0.1f, 20);
      if (scales[s] > max_scale) max_scale = scales[s];
      if (mins[s] > max_min) max_min = mins[s];
    }
    // 2. Six-bit scales and mins against the super-block's d and dmin, packed as the layout says.
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    BlockQ4_K& blk = y[b];
    std::memset(blk.scales, 0, sizeof blk.scales);
    for (int s = 0; s < 8; ++s) {
      const uint8_t ls = std::min<uint8_t>(63, uint8_t(nearest_int(inv_scale * scales[s])));
      const uint8_t lm = std::min<uint8_t>(63, uint8_t(nearest_int(inv_min * mins[s])));
      if (s < 4) {
        blk.scales[s] = ls;
        blk.scales[s + 4] = lm;
      } else {
        blk.scales[s + 4] = uint8_t((ls & 0xF) | ((lm & 0xF) << 4));
        blk.scales[s - 4] |= uint8_t((ls >> 4) << 6);
        blk.scales[s] |= uint8_t((lm >> 4) << 6);
      }
    }
    blk.d = f32_to_f16(max_scale / 63.f);
    blk.dmin = f32_to_f16(max_min / 63.f);
    // 3. Requantize every value against the rounded scales it will be read back with.
    for (int s = 0; s < 8; ++s) {
      uint8_t sc, m;
      q4_k_scale_min(s, blk.scales, &sc, &m);
      const float d = f16_to_f32(blk.d) * sc;
      if (d == 0) continue;
      const float dm = f16_to_f32(blk.dmin) * m;
      for (int l = 0; l < 32; ++l)
        L[32 * s + l] = uint8_t(std::max(0, std::min(15, nearest_int((x[32 * s + l] + dm) / d))));
    }
    for (int g = 0; g < 4; ++g)
      for (int l = 0; l < 32; ++l) blk.qs[32 * g + l] = uint8_t(L[64 * g + l] | (L[64 * g + 32 + l] << 4));
  }
}

void quantize_q6_k(BlockQ6_K* y, const float* x, int64_t n) {
  int8_t L[kQ6_KBlock];
  float scales[16];
  for (int64_t b = 0; b < n / kQ6_KBlock; ++b, x += kQ6_KBlock) {
    BlockQ6_K& blk = y[b];
    // 1. Per sub-block of 16 a symmetric scale; the one of largest magnitude, sign kept, sets d.
    float max_scale = 0, max_abs_scale = 0;
    for (int s = 0; s < 16; ++s) {
      scales[s] = fit_symmetric_scale(16, 32, x + 16 * s, L + 16 * s);
      if (std::fabs(scales[s]) > max_abs_scale) max_abs_scale = std::fabs(scales[s]), max_scale = scales[s];
    }
    if (max_abs_scale < 1e-15f) {
      std::memset(&blk, 0, sizeof blk);
      continue;
    }
    // 2. int8 scales against d (the largest maps to -128), then every value requantized against
    //    the rounded scale it will be read back with (a zero scale keeps step 1's values).
    const float iscale = -128.f / max_scale;
    blk.d = f32_to_f16(1 / iscale);
    for (int s = 0; s < 16; ++s) blk.scales[s] = int8_t(std::min(127, nearest_int(iscale * scales[s])));
    for (int s = 0; s < 16; ++s) {
      const float d = f16_to_f32(blk.d) * blk.scales[s];
      if (d == 0) continue;
      for (int i = 0; i < 16; ++i) L[16 * s + i] = int8_t(std::max(-32, std::min(31, nearest_int(x[16 * s + i] / d))) + 32);
    }
    // 3. Pack as the layout says.
    for (int h = 0; h < 2; ++h) {
      const int8_t* q = L + 128 * h;
      for (int l = 0; l < 32; ++l) {
        blk.ql[64 * h + l] = uint8_t((q[l] & 0xF) | (q[l + 64] & 0xF) << 4);
        blk.ql[64 * h + 32 + l] = uint8_t((q[l + 32] & 0xF) | (q[l + 96] & 0xF) << 4);
        blk.qh[32 * h + l] = uint8_t(q[l] >> 4 | (q[l + 32] >> 4) << 2 | (q[l + 64] >> 4) << 4 | (q[l + 96] >> 4) << 6);
      }
    }
  }
}

void dequantize_q8_0(float* y, const BlockQ8_0* x, int64_t n) {
  for (int64_t b = 0; b < n / kQ8_0Block; ++b, y += kQ8_0Block) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQ8_0Block; ++j) y[j] = x[b].qs[j] * d;
  }
}

void dequantize_q4_0(float* y, const BlockQ4_0* x, int64_t n) {
  for (int64_t b = 0; b < n / kQ4_0Block; ++b, y += kQ4_0Block) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = ((x[b].qs[j] & 0xF) - 8) * d;
      y[j + 16] = ((x[b].qs[j] >> 4) - 8) * d;
    }
  }
}

namespace {
// One q4_K or q5_K super-block: the two share d, dmin, the six-bit scales and mins and the nibble
// layout; q5_K adds a fifth bit per value from qh (null for q4_K).
void dequantize_k_superblock(float* y, uint16_t d16, uint16_t dmin16, const uint8_t* scales, const uint8_t* qs,
                             const uint8_t* qh) {
  const float d = f16_to_f32(d16), dmin = f16_to_f32(dmin16);
  for (int g = 0; g < 4; ++g) {
    uint8_t sc, m;
    q4_k_scale_min(2 * g, scales, &sc, &m);
    const float d1 = d * sc, m1 = dmin * m;
    q4_k_scale_min(2 * g + 1, scales, &sc, &m);
    const float d2 = d * sc, m2 = dmin * m;
    const uint8_t* q = qs + 32 * g;
    for (int l = 0; l < 32; ++l) *y++ = d1 * float((q[l] & 0xF) + (qh ? ((qh[l] >> (2 * g)) & 1) * 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * float((q[l] >> 4) + (qh ? ((qh[l] >> (2 * g + 1)) & 1) * 16 : 0)) - m2;
  }
}
}  // namespace

void dequantize_q4_k(float* y, const BlockQ4_K* x, int64_t n) {
  for (int64_t b = 0; b < n / kQ4_KBlock; ++b)
    dequantize_k_superblock(y + b * kQ4_KBlock, x[b].d, x[b].dmin, x[b].scales, x[b].qs, nullptr);
}

void dequantize_q5_k(float* y, const BlockQ5_K* x, int64_t n) {
  for (int64_t b = 0; b < n / kQ5_KBlock; ++b)
    dequantize_k_superblock(y + b * kQ5_KBlock, x[b].d, x[b].dmin, x[b].scales, x[b].qs, x[b].qh);
}

void dequantize_q6_k(float* y, const BlockQ6_K* x, int64_t n) {
  for (int64_t b = 0; b < n / kQ6_KBlock; ++b, y += kQ6_KBlock) {
    const float d = f16_to_f32(x[b].d);
    for (int h = 0; h < 2; ++h) {
      const uint8_t *ql = x[b].ql + 64 * h, *qh = x[b].qh + 32 * h;
      const int8_t* sc = x[b].scales + 8 * h;
      float* o = y + 128 * h;
      for (int l = 0; l < 32; ++l) {
        const int s = l / 16;  // value 128h + 32k + l lies in sub-block 8h + 2k + l / 16
        o[l] = d * sc[s] * float(((ql[l] & 0xF) | (qh[l] & 3) << 4) - 32);
        o[l + 32] = d * sc[s + 2] * float(((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32);
        o[l + 64] = d * sc[s + 4] * float((ql[l] >> 4 | ((qh[l] >> 4) & 3) << 4) - 32);
        o[l + 96] = d * sc[s + 6] * float((ql[l + 32] >> 4 | ((qh[l] >> 6) & 3) << 4) - 32);
      }
    }
  }
}

}  // namespace wafer
