// tests/quant_matmul_test.cpp: the quantized-weight matmul against a double-precision product of
// the dequantized weights with the same quantized activations (tight), against the fp32 product
// (the format's error, printed), bit-identity across ISA paths, batch rows and thread counts,
// and the shape checks. A disabled test measures decode bandwidth.
#include "kernels/cpu/quant_matmul.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/gemv.h"
#include "kernels/cpu/quant.h"
#include "test_util.h"

namespace wafer {
namespace {

using test::randn;

constexpr QuantType kTypes[] = {QuantType::Q8_0, QuantType::Q4_0, QuantType::Q4_K, QuantType::Q6_K};
constexpr Isa kIsas[] = {Isa::Generic, Isa::Avx2, Isa::Avx512, Isa::Amx};

// Restores the ISA in use when the test started.
struct IsaGuard {
  Isa saved = kernel_isa();
  ~IsaGuard() { set_kernel_isa(saved); }
};

struct Shape {
  int64_t rows, cols;
};

// Row lengths with and without a tail after the 16-block groups of the q8_0 / q4_0 kernels
// (5 blocks, 12 blocks) and after the K-quants' groups of 4 super-blocks.
std::vector<Shape> shapes_for(QuantType t) {
  if (t == QuantType::Q4_K || t == QuantType::Q6_K) return {{1, 256}, {7, 768}, {33, 512}, {5, 1536}};
  return {{1, 32}, {7, 512}, {33, 1184}, {5, 896}};
}

// W[rows, cols] as fp32 from its quantized bytes. With `abs_mins`, q4_K's dmin gets its sign
// flipped, so each value is d·sc·q + dmin·m: the sum of the magnitudes of its two parts.
std::vector<float> dequantize_matrix(QuantType t, std::vector<uint8_t> q, int64_t rows, int64_t cols,
                                     bool abs_mins = false) {
  std::vector<float> w(size_t(rows * cols));
  const int64_t rb = quant_row_bytes(t, cols);
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* row = q.data() + r * rb;
    float* y = w.data() + r * cols;
    switch (t) {
      case QuantType::Q8_0: dequantize_q8_0(y, reinterpret_cast<BlockQ8_0*>(row), cols); break;
      case QuantType::Q4_0: dequantize_q4_0(y, reinterpret_cast<BlockQ4_0*>(row), cols); break;
      case QuantType::Q4_K: {
        auto* b = reinterpret_cast<BlockQ4_K*>(row);
        if (abs_mins)
          for (int64_t i = 0; i < cols / 256; ++i) b[i].dmin ^= 0x8000;
        dequantize_q4_k(y, b, cols);
        break;
      }
      case QuantType::Q6_K: dequantize_q6_k(y, reinterpret_cast<BlockQ6_K*>(row), cols); break;
    }
  }
  return w;
}

// Random blocks byte by byte (every scale, min and quant bit pattern, q8_0's -128 included),
// with finite positive fp16 scales in [2^-8, 2^-7) (q6_K's int8 scales stay random, -128 included).
std::vector<uint8_t> random_blocks(QuantType t, int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> q(size_t(rows * quant_row_bytes(t, cols)));
  for (auto& b : q) b = uint8_t(rng());
  const int64_t bb = quant_block_bytes(t), nscales = t == QuantType::Q4_K ? 2 : 1;
  const size_t first = t == QuantType::Q6_K ? 208 : 0;  // where the fp16 scales start in a block
  for (size_t off = 0; off < q.size(); off += size_t(bb))
    for (int64_t k = 0; k < nscales; ++k) {
      const uint16_t h = uint16_t(0x1c00 | (rng() & 0x3ff));  // exponent 7: 2^-8 · (1 + m/1024)
      std::memcpy(&q[off + first + 2 * size_t(k)], &h, 2);
    }
  return q;
}

// out[n, r] = scale · Σ_c wd[r, c] · xa[n, c] + bias[r] in double; mag[n, r] the same with |·|
// and wabs for wd (the size of the terms, for the tolerance).
void reference(std::vector<double>* out, std::vector<double>* mag, const std::vector<float>& wd,
               const std::vector<float>& wabs, const std::vector<float>& xa, const std::vector<float>& bias, int64_t N,
               int64_t rows, int64_t cols, float scale) {
  out->assign(size_t(N * rows), 0.0);
  mag->assign(size_t(N * rows), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t r = 0; r < rows; ++r) {
      double s = 0, m = 0;
      for (int64_t c = 0; c < cols; ++c) {
        const double xv = xa[size_t(n * cols + c)];
        s += double(wd[size_t(r * cols + c)]) * xv;
        m += std::fabs(double(wabs[size_t(r * cols + c)]) * xv);
      }
      (*out)[size_t(n * rows + r)] = scale * s + bias[size_t(r)];
      (*mag)[size_t(n * rows + r)] = std::fabs(scale) * m + std::fabs(bias[size_t(r)]);
    }
}

std::vector<float> run(QuantType t, const std::vector<uint8_t>& q, int64_t rows, int64_t cols, const float* x,
                       const float* bias, int64_t N, float scale) {
  std::vector<float> out(size_t(N * rows));
  quant_matmul(out.data(), x, QuantMatrix{t, rows, cols, q.data()}, bias, N, scale);
  return out;
}

// Checks every ISA path on W (quantized bytes q) against the double reference; returns the
// outputs of the widest path.
void expect_matches_reference(QuantType t, const std::vector<uint8_t>& q, int64_t rows, int64_t cols, int64_t N,
                              uint64_t seed) {
  const auto x = randn(size_t(N * cols), seed);
  const auto bias = randn(size_t(rows), seed + 1);
  const float scale = 0.75f;
  std::vector<float> xa(x.size());
  for (int64_t n = 0; n < N; ++n) quant_activation_values(xa.data() + n * cols, t, x.data() + n * cols, cols);
  std::vector<double> want, mag;
  reference(&want, &mag, dequantize_matrix(t, q, rows, cols), dequantize_matrix(t, q, rows, cols, true), xa, bias,
            N, rows, cols, scale);
  IsaGuard guard;
  for (Isa isa : kIsas) {
    if (set_kernel_isa(isa) != isa) continue;
    const auto got = run(t, q, rows, cols, x.data(), bias.data(), N, scale);
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], want[i], 1e-5 * mag[i] + 1e-30)
          << quant_type_name(t) << " " << isa_name(isa) << " rows " << rows << " cols " << cols << " N " << N
          << " at " << i;
  }
}

TEST(QuantMatmul, TypeNamesAndSizes) {
  EXPECT_STREQ(quant_type_name(QuantType::Q4_K), "q4_k");
  for (QuantType t : kTypes) EXPECT_EQ(quant_type_from_name(quant_type_name(t)), t);
  EXPECT_THROW(quant_type_from_name("q5_0"), Error);
  EXPECT_EQ(quant_block_values(QuantType::Q8_0), 32);
  EXPECT_EQ(quant_block_values(QuantType::Q4_K), 256);
  EXPECT_EQ(quant_row_bytes(QuantType::Q8_0, 64), 68);
  EXPECT_EQ(quant_row_bytes(QuantType::Q4_0, 64), 36);
  EXPECT_EQ(quant_row_bytes(QuantType::Q4_K, 512), 288);
  EXPECT_EQ(quant_block_values(QuantType::Q6_K), 256);
  EXPECT_EQ(quant_row_bytes(QuantType::Q6_K, 768), 630);
}

TEST(QuantMatmul, ActivationValuesAreInt8TimesBlockScale) {
  // Block of 32 with max|x| = 127: d = 1, so the values are round(x), ties away from zero.
  std::vector<float> x(64, 0.0f), y(64);
  x[0] = -127, x[1] = 2.5f, x[2] = -2.5f, x[3] = 0.49f, x[31] = 100.2f;
  x[32] = 1;  // second block: d = 1/127, values exact
  quant_activation_values(y.data(), QuantType::Q4_0, x.data(), 64);
  EXPECT_EQ(y[0], -127);
  EXPECT_EQ(y[1], 3);
  EXPECT_EQ(y[2], -3);
  EXPECT_EQ(y[3], 0);
  EXPECT_EQ(y[31], 100);
  EXPECT_FLOAT_EQ(y[32], 1.0f);
  for (QuantType t : kTypes) {  // every layout reads back what was stored
    const int64_t cols = 512;
    const auto r = randn(size_t(cols), 5);
    std::vector<float> v(static_cast<size_t>(cols));
    quant_activation_values(v.data(), t, r.data(), cols);
    for (int64_t c = 0; c < cols; ++c) ASSERT_NEAR(v[size_t(c)], r[size_t(c)], 0.02) << quant_type_name(t) << " " << c;
  }
}

TEST(QuantMatmul, MatchesDequantizedReference) {
  uint64_t seed = 100;
  for (QuantType t : kTypes)
    for (const Shape& s : shapes_for(t))
      for (int64_t N : {1, 3, 17}) {
        seed += 2;
        const auto w = randn(size_t(s.rows * s.cols), seed, 0.05f);
        expect_matches_reference(t, quantize_matrix_rows(t, w.data(), s.rows, s.cols), s.rows, s.cols, N, seed + 1);
      }
}

TEST(QuantMatmul, MatchesReferenceOnRandomBlockBytes) {
  uint64_t seed = 200;
  for (QuantType t : kTypes)
    for (const Shape& s : shapes_for(t)) {
      seed += 2;
      expect_matches_reference(t, random_blocks(t, s.rows, s.cols, seed), s.rows, s.cols, 3, seed + 1);
    }
}

TEST(QuantMatmul, ErrorAgainstFp32ProductWithinFormat) {
  // max |quant - fp32| / max |fp32| over outputs: 8-bit on both sides ~1%, 4-bit weights more.
  const double bound[] = {0.02, 0.2, 0.12, 0.04};
  const int64_t rows = 64, cols = 1024, N = 3;
  for (QuantType t : kTypes) {
    const auto w = randn(size_t(rows * cols), 300, 0.05f);
    const auto x = randn(size_t(N * cols), 301);
    const auto got = run(t, quantize_matrix_rows(t, w.data(), rows, cols), rows, cols, x.data(), nullptr, N, 1.0f);
    double max_err = 0, max_ref = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t r = 0; r < rows; ++r) {
        double ref = 0;
        for (int64_t c = 0; c < cols; ++c) ref += double(w[size_t(r * cols + c)]) * x[size_t(n * cols + c)];
        max_err = std::max(max_err, std::fabs(got[size_t(n * rows + r)] - ref));
        max_ref = std::max(max_ref, std::fabs(ref));
      }
    const double rel = max_err / max_ref;
    std::printf("%s: max relative error against fp32 %.4f\n", quant_type_name(t), rel);
    EXPECT_LT(rel, bound[int(t)]) << quant_type_name(t);
    EXPECT_GT(rel, 0.0) << quant_type_name(t);  // the product did go through quantization
  }
}

TEST(QuantMatmul, Conv1dLayoutIsTheTransposedRows) {
  const int64_t C = 512, OC = 37;
  const auto w = randn(size_t(C * OC), 400);  // [C, OC]
  std::vector<float> wt(w.size());            // [OC, C]
  for (int64_t c = 0; c < C; ++c)
    for (int64_t o = 0; o < OC; ++o) wt[size_t(o * C + c)] = w[size_t(c * OC + o)];
  for (QuantType t : kTypes)
    EXPECT_EQ(quantize_matrix_conv1d(t, w.data(), C, OC), quantize_matrix_rows(t, wt.data(), OC, C))
        << quant_type_name(t);
}

TEST(QuantMatmul, IsaPathsAreBitIdentical) {
  IsaGuard guard;
  uint64_t seed = 500;
  for (QuantType t : kTypes)
    for (const Shape& s : shapes_for(t))
      for (bool raw : {false, true}) {
        const auto w = randn(size_t(s.rows * s.cols), ++seed, 0.05f);
        const auto q = raw ? random_blocks(t, s.rows, s.cols, seed) : quantize_matrix_rows(t, w.data(), s.rows, s.cols);
        const int64_t N = 21;  // passes of 4 rows and one alone (AVX-512, AVX2); a tile of 16 and one of 5 (AMX)
        const auto x = randn(size_t(N * s.cols), ++seed);
        set_kernel_isa(Isa::Generic);
        const auto want = run(t, q, s.rows, s.cols, x.data(), nullptr, N, 1.0f);
        for (Isa isa : {Isa::Avx2, Isa::Avx512, Isa::Amx}) {
          if (set_kernel_isa(isa) != isa) {
            std::printf("%s: not on this CPU, not compared\n", isa_name(isa));
            continue;
          }
          const auto got = run(t, q, s.rows, s.cols, x.data(), nullptr, N, 1.0f);
          EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
              << quant_type_name(t) << " " << isa_name(isa) << " rows " << s.rows << " cols " << s.cols
              << (raw ? " random bytes" : "");
        }
      }
}

TEST(QuantMatmul, BatchRowEqualsSingleRowCall) {
  const int64_t N = 17;
  for (QuantType t : kTypes) {
    const Shape s = shapes_for(t)[2];
    const auto w = randn(size_t(s.rows * s.cols), 600, 0.05f);
    const auto q = quantize_matrix_rows(t, w.data(), s.rows, s.cols);
    const auto x = randn(size_t(N * s.cols), 601);
    const auto bias = randn(size_t(s.rows), 602);
    const auto all = run(t, q, s.rows, s.cols, x.data(), bias.data(), N, 0.5f);
    for (int64_t n = 0; n < N; ++n) {
      const auto one = run(t, q, s.rows, s.cols, x.data() + n * s.cols, bias.data(), 1, 0.5f);
      EXPECT_EQ(std::memcmp(one.data(), all.data() + n * s.rows, one.size() * sizeof(float)), 0)
          << quant_type_name(t) << " row " << n;
    }
  }
}

TEST(QuantMatmul, ThreadCountDoesNotChangeResults) {
  const int64_t rows = 67, cols = 1280, N = 3;  // large enough to run threaded
  const int saved = omp_get_max_threads();
  for (QuantType t : kTypes) {
    const auto w = randn(size_t(rows * cols), 700, 0.05f);
    const auto q = quantize_matrix_rows(t, w.data(), rows, cols);
    const auto x = randn(size_t(N * cols), 701);
    omp_set_num_threads(1);
    const auto one = run(t, q, rows, cols, x.data(), nullptr, N, 1.0f);
    omp_set_num_threads(3);
    const auto three = run(t, q, rows, cols, x.data(), nullptr, N, 1.0f);
    EXPECT_EQ(std::memcmp(one.data(), three.data(), one.size() * sizeof(float)), 0) << quant_type_name(t);
  }
  omp_set_num_threads(saved);
}

// The decode region's pieces: an activation row quantized once, any range of rows from it.
TEST(QuantMatmul, RowRangesEqualTheWholeProduct) {
  for (QuantType t : kTypes) {
    const Shape s = shapes_for(t)[2];
    const auto w = randn(size_t(s.rows * s.cols), 800, 0.05f);
    const auto q = quantize_matrix_rows(t, w.data(), s.rows, s.cols);
    const auto x = randn(size_t(s.cols), 801);
    const auto bias = randn(size_t(s.rows), 802);
    const auto whole = run(t, q, s.rows, s.cols, x.data(), bias.data(), 1, 0.5f);
    QuantActRow a;
    quantize_activation_row(a, t, x.data(), s.cols);
    const QuantMatrix m{t, s.rows, s.cols, q.data()};
    std::vector<float> got(size_t(s.rows), -1.0f);
    for (int64_t r0 = 0; r0 < s.rows; r0 += 5) quant_matmul_rows(got.data(), a, m, bias.data(), r0, std::min(s.rows, r0 + 5), 0.5f);
    EXPECT_EQ(std::memcmp(got.data(), whole.data(), got.size() * sizeof(float)), 0) << quant_type_name(t);
    QuantActRow other;  // a row quantized for another type is refused, as is a range past the end
    quantize_activation_row(other, t == QuantType::Q4_0 ? QuantType::Q8_0 : QuantType::Q4_0, x.data(), s.cols);
    EXPECT_THROW(quant_matmul_rows(got.data(), other, m, nullptr, 0, 1, 1.0f), Error) << quant_type_name(t);
    EXPECT_THROW(quant_matmul_rows(got.data(), a, m, nullptr, 0, s.rows + 1, 1.0f), Error) << quant_type_name(t);
  }
}

TEST(QuantMatmul, RowLengthNotAMultipleOfTheBlockThrows) {
  std::vector<float> x(600, 1.0f), out(4);
  std::vector<uint8_t> bytes(4096);
  auto message = [&](QuantType t, int64_t cols) -> std::string {
    try {
      quant_matmul(out.data(), x.data(), QuantMatrix{t, 2, cols, bytes.data()}, nullptr, 1, 1.0f);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(message(QuantType::Q8_0, 48).find("multiple of 32 for q8_0 weights, found 48"), std::string::npos)
      << message(QuantType::Q8_0, 48);
  EXPECT_NE(message(QuantType::Q4_K, 544).find("multiple of 256 for q4_k weights, found 544"), std::string::npos)
      << message(QuantType::Q4_K, 544);
  EXPECT_NE(message(QuantType::Q4_0, 0).find("found 0"), std::string::npos);
  EXPECT_THROW(quantize_matrix_rows(QuantType::Q4_0, x.data(), 2, 40), Error);
  EXPECT_THROW(quantize_matrix_conv1d(QuantType::Q4_K, x.data(), 300, 2), Error);
  EXPECT_THROW(quant_row_bytes(QuantType::Q8_0, 33), Error);
}

// Decode bandwidth at N = 1 for W of 2048 inputs × 8192 outputs (weight bytes read per second),
// against the fp32 gemv. Enough copies of the matrix to miss the last-level cache.
// Run: OMP_NUM_THREADS=1 test_gguf --gtest_also_run_disabled_tests --gtest_filter='*DecodeBandwidth*'
TEST(QuantMatmulBench, DISABLED_DecodeBandwidth) {
  const int64_t C = 2048, OC = 8192, kTarget = int64_t(192) << 20, reps = 40;
  const auto w = randn(size_t(C * OC), 800, 0.05f);  // [C, OC]
  const auto x = randn(size_t(C), 801);
  std::vector<float> y(static_cast<size_t>(OC)), ref(static_cast<size_t>(OC));
  auto time_gbps = [&](int64_t bytes, int copies, const std::function<void(int)>& call) {
    call(0);  // warm up
    double best = 1e30;
    for (int64_t i = 0; i < reps; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      call(int(i % copies));
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return double(bytes) / best / 1e9;
  };
  std::vector<std::vector<float>> wf(2, w);
  const double fp32 = time_gbps(int64_t(w.size() * 4), 2, [&](int k) {
    gemv_forward(ref.data(), x.data(), wf[size_t(k)].data(), nullptr, nullptr, C, OC);
  });
  std::printf("fp32 gemv_forward %lldx%lld: %.1f GB/s (%s, %d threads)\n", (long long)C, (long long)OC, fp32,
              isa_name(kernel_isa()), omp_get_max_threads());
  for (QuantType t : kTypes) {
    const auto q = quantize_matrix_conv1d(t, w.data(), C, OC);
    const int copies = int(std::max<int64_t>(1, kTarget / int64_t(q.size())));
    std::vector<std::vector<uint8_t>> qs(size_t(copies), q);
    const double gbps = time_gbps(int64_t(q.size()), copies, [&](int k) {
      quant_matmul(y.data(), x.data(), QuantMatrix{t, OC, C, qs[size_t(k)].data()}, nullptr, 1, 1.0f);
    });
    double err = 0, mx = 0;
    for (int64_t o = 0; o < OC; ++o) err = std::max(err, double(std::fabs(y[size_t(o)] - ref[size_t(o)]))),
                                     mx = std::max(mx, double(std::fabs(ref[size_t(o)])));
    std::printf("%s quant_matmul N=1: %.1f GB/s of weights, %.2f ms per call, %.2fx fp32's time (max rel err %.4f)\n",
                quant_type_name(t), gbps, double(q.size()) / gbps / 1e6, fp32 * double(q.size()) / (gbps * 4.0 * double(w.size())), err / mx);
    EXPECT_LT(err / mx, 0.2);
  }
}

}  // namespace
}  // namespace wafer
