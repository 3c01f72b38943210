// kernels/cpu/argmax.cpp: two passes on AVX-512, the maximum (NaNs skipped: vmaxps returns its
// second operand when the first is NaN), then the first element equal to it; a scalar loop
// elsewhere.
#include "kernels/cpu/argmax.h"

#include <immintrin.h>

#include <cmath>

#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/lane_sums.h"

namespace wafer {

namespace {

int32_t argmax_scalar(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return int32_t(best);
}

// x[0] is not NaN, so some element equals the maximum found.
[[gnu::target("avx512f,avx512bw,avx512dq")]] int32_t argmax_avx512(const float* x, int64_t n) {
  const __m512 lowest = _mm512_set1_ps(-INFINITY);
  __m512 m = lowest;
  for (int64_t i = 0; i < n; i += 16)
    m = _mm512_maskz_max_ps(0xffff, _mm512_mask_loadu_ps(lowest, lane_mask(n - i), x + i), m);
  // Across the lanes (zero-masked extracts: GCC 12 warns of an undefined source otherwise).
  const __m256 m8 = _mm256_max_ps(_mm512_maskz_extractf32x8_ps(0xff, m, 0), _mm512_maskz_extractf32x8_ps(0xff, m, 1));
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  const __m512 best = _mm512_set1_ps(_mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4))));
  for (int64_t i = 0;; i += 16)
    if (const __mmask16 hit =
            _mm512_mask_cmp_ps_mask(lane_mask(n - i), _mm512_maskz_loadu_ps(lane_mask(n - i), x + i), best, _CMP_EQ_OQ))
      return int32_t(i + __builtin_ctz(hit));
}

}  // namespace

int32_t argmax_row(const float* x, int64_t n) {
  if (kernel_isa() >= Isa::Avx512 && !std::isnan(x[0])) return argmax_avx512(x, n);
  return argmax_scalar(x, n);
}

}  // namespace wafer
