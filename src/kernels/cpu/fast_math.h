// kernels/cpu/fast_math.h: exp, erf and tanh written so the compiler vectorises loops that call
// them (libm's scalar calls do not vectorise without -ffast-math, which would also break the
// -inf handling attention relies on). Accuracy: exp within 5e-7 relative, erf within 1e-6
// absolute (the formula's 1.5e-7 plus fp32 rounding, with or without FMA), tanh within 5e-7;
// exp(x) is exactly 0 below -87 (and for -inf).
#pragma once
#include <cmath>
#include <cstdint>
#include <bit>

namespace wafer {

inline float fast_exp(float x) {
  // Clamp with comparisons: std::fmin/fmax are libm calls that stop vectorisation.
  float xc = x < -87.0f ? -87.0f : x;
  xc = xc > 88.0f ? 88.0f : xc;
  // x = k·ln2 + r, |r| <= ln2/2 (Cody-Waite split of ln2), e^x = 2^k · e^r.
  // k = round(x / ln2) by the 1.5·2^23 shifter: exact for |x/ln2| < 2^22, and unlike
  // std::floor it vectorises without -fno-trapping-math.
  constexpr float shifter = 12582912.0f;
  const float k = (xc * 1.44269504088896341f + shifter) - shifter;
  const float r = xc - k * 0.693359375f + k * 2.12194440e-4f;
  // Cephes expf polynomial for e^r on [-ln2/2, ln2/2].
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const float scale = std::bit_cast<float>((int32_t(k) + 127) << 23);  // 2^k
  return x < -87.0f ? 0.0f : p * scale;
}

// Abramowitz & Stegun 7.1.26.
inline float fast_erf(float x) {
  const float a = std::fabs(x);
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  float y = 1.061405429f;
  y = y * t - 1.453152027f;
  y = y * t + 1.421413741f;
  y = y * t - 0.284496736f;
  y = y * t + 0.254829592f;
  y = 1.0f - y * t * fast_exp(-a * a);
  return std::copysign(y, x);
}

// tanh x = 1 - 2 / (e^{2x} + 1); odd, so computed on |x| to keep precision near 0 sensible.
inline float fast_tanh(float x) {
  const float a = std::fabs(x);
  const float e = fast_exp(2.0f * (a < 20.0f ? a : 20.0f));
  const float t = a < 1e-4f ? a : 1.0f - 2.0f / (e + 1.0f);
  return std::copysign(t, x);
}

}  // namespace wafer
