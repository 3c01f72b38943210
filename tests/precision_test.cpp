// tests/precision_test.cpp: the speed paths against the plain ones they replace: the decode
// matrix-vector kernels on every ISA (AVX-512, AVX2, baseline) in fp32 and bf16, the bf16 GEMM
// against fp32, a bf16 model against the same model in fp32 (forward, training, bf16-only
// inference), AdamW's fused clipping and bf16 copy, and the fallback where bf16 is missing.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/gemv.h"
#include "model/forward.h"
#include "model/model.h"
#include "test_util.h"
#include "train/adamw.h"
#include "train/train_step.h"

namespace wafer {
namespace {

using test::randn;

std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  convert_to_bf16(h.data(), v.data(), int64_t(v.size()));
  return h;
}

std::vector<float> widen(const std::vector<uint16_t>& h) {
  std::vector<float> v(h.size());
  for (size_t i = 0; i < h.size(); ++i) v[i] = bf16_to_f32(h[i]);
  return v;
}

// max |a - b| / max |b|
float rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0, s = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i])), s = std::max(s, std::fabs(b[i]));
  return m / s;
}

// Runs the test body once per ISA this CPU has, restoring the detected one after.
class EachIsa : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    saved_ = kernel_isa();
    if (set_kernel_isa(GetParam()) != GetParam()) GTEST_SKIP() << "this CPU lacks " << isa_name(GetParam());
  }
  void TearDown() override { set_kernel_isa(saved_); }
  Isa saved_ = Isa::Generic;
};

TEST_P(EachIsa, GemvMatchesDoublePrecision) {
  for (auto [C, OC] : {std::pair<int64_t, int64_t>{768, 2304}, {37, 45}, {3, 17}, {130, 1}}) {
    auto x = randn(size_t(C), 1), w = randn(size_t(C * OC), 2), bias = randn(size_t(OC), 3);
    auto w16 = to_bf16(w);
    auto ww = widen(w16);
    for (bool bf16 : {false, true}) {
      const std::vector<float>& ref_w = bf16 ? ww : w;
      const size_t n = static_cast<size_t>(OC);
      std::vector<float> y(n), yt(n), ref(n), ref_t(n);
      for (int64_t o = 0; o < OC; ++o) {
        double a = bias[size_t(o)];
        for (int64_t c = 0; c < C; ++c) a += double(x[size_t(c)]) * ref_w[size_t(c * OC + o)];
        ref[size_t(o)] = float(a);
      }
      // The transposed kernel reads W as [OC rows, C]: reuse w's storage as that matrix.
      for (int64_t o = 0; o < OC; ++o) {
        double t = 0;
        for (int64_t c = 0; c < C; ++c) t += double(x[size_t(c)]) * ref_w[size_t(o * C + c)];
        ref_t[size_t(o)] = float(0.5 * t);
      }
      gemv_forward(y.data(), x.data(), bf16 ? nullptr : w.data(), bf16 ? w16.data() : nullptr, bias.data(), C, OC);
      gemv_transposed(yt.data(), x.data(), bf16 ? nullptr : w.data(), bf16 ? w16.data() : nullptr, C, OC, 0.5f);
      EXPECT_LT(rel_error(y, ref), 1e-5f) << "forward C=" << C << " OC=" << OC << " bf16=" << bf16;
      EXPECT_LT(rel_error(yt, ref_t), 1e-5f) << "transposed C=" << C << " V=" << OC << " bf16=" << bf16;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, EachIsa, ::testing::Values(Isa::Avx512, Isa::Avx2, Isa::Generic),
                         [](const auto& info) { return std::string(isa_name(info.param)); });

TEST(Bf16Gemm, MatchesFp32WithinBf16Rounding) {
  if (!bf16_gemm_supported()) GTEST_SKIP() << "no bf16 GEMMs on this CPU (" << gemm_isa_name() << ")";
  const int64_t M = 67, N = 45, K = 130;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      auto a = randn(size_t(M * K), 1), b = randn(size_t(K * N), 2), c0 = randn(size_t(M * N), 3);
      const GemmOperand A{a.data(), nullptr, ta ? M : K, ta}, B{b.data(), nullptr, tb ? K : N, tb};
      std::vector<float> ref = c0, got = c0;
      gemm(Precision::F32, M, N, K, 0.5f, A, B, 1.0f, ref.data(), N);
      gemm(Precision::BF16, M, N, K, 0.5f, A, B, 1.0f, got.data(), N);
      // Each product rounds both factors to 8 bits of mantissa: ~2^-8 relative per term, and
      // sums of K random terms grow like sqrt(K), so 1% of the largest output is generous.
      const float err = rel_error(got, ref);
      EXPECT_LT(err, 1e-2f) << "ta=" << ta << " tb=" << tb;
      EXPECT_GT(err, 0.0f) << "bf16 rounding should show";  // it really ran in bf16
    }
}

ModelConfig small_config() {
  ModelConfig c;
  c.vocab_size = 300, c.n_positions = 64, c.n_embd = 64, c.n_layer = 2, c.n_head = 4;
  return c;
}

std::unique_ptr<Model> small_model() {
  auto m = std::make_unique<Model>(small_config());
  init_weights(*m, {.seed = 7});
  return m;
}

std::vector<float> logits_of(const Model& m, const std::vector<int32_t>& ids) {
  ForwardPass fp(m);
  const int64_t T = int64_t(ids.size()), V = m.config.vocab_size;
  const float* l = fp.forward(ids.data(), 1, T, 0, {}, LogitsRows::All);
  return std::vector<float>(l, l + T * V);
}

TEST(Bf16Model, LogitsCloseToFp32AndBf16OnlyInferenceAgrees) {
  if (!bf16_gemm_supported()) GTEST_SKIP() << "no bf16 GEMMs on this CPU";
  std::vector<int32_t> ids = {5, 17, 260, 3, 99, 42, 1, 7};
  auto m = small_model();
  const auto fp32 = logits_of(*m, ids);
  ASSERT_EQ(set_precision(*m, Precision::BF16), Precision::BF16);
  const auto mixed = logits_of(*m, ids);
  EXPECT_LT(rel_error(mixed, fp32), 3e-2f);
  EXPECT_GT(rel_error(mixed, fp32), 0.0f);
  // bf16 weights only: the fp32 matrices are gone, the embedding reads its bf16 copy.
  release_fp32_matrices(*m);
  const auto only = logits_of(*m, ids);
  EXPECT_LT(rel_error(only, fp32), 3e-2f);
  EXPECT_LT(rel_error(only, mixed), 2e-2f);
  EXPECT_THROW(set_precision(*m, Precision::F32), Error);
}

TEST(Bf16Model, TrainingFollowsFp32) {
  if (!bf16_gemm_supported()) GTEST_SKIP() << "no bf16 GEMMs on this CPU";
  std::mt19937 rng(3);
  Batch b;
  b.B = 4, b.T = 32;
  for (int64_t i = 0; i < b.B * b.T; ++i) {  // a learnable pattern: next = (tok * 7 + 1) % 300
    const int32_t t = int32_t(rng() % 300);
    b.tokens.push_back(t), b.targets.push_back((t * 7 + 1) % 300);
  }
  std::vector<double> losses[2];
  for (int k = 0; k < 2; ++k) {
    auto m = small_model();
    set_precision(*m, k ? Precision::BF16 : Precision::F32);
    TrainStep ts(*m, {}, 1.0);
    for (int s = 0; s < 30; ++s) losses[k].push_back(ts.step({b}, 3e-3).loss);
    if (k) {  // the bf16 copy tracks the master weights after every step
      std::vector<uint16_t> expect(m->params.size());
      convert_to_bf16(expect.data(), m->params.data(), int64_t(expect.size()));
      EXPECT_EQ(m->params_bf16, expect);
    }
  }
  EXPECT_LT(losses[1].back(), 0.7 * losses[1].front());  // it learns
  for (size_t s = 0; s < losses[0].size(); ++s)
    EXPECT_NEAR(losses[1][s], losses[0][s], 0.03 * losses[0][s]) << "step " << s;
}

TEST(AdamW, FusedClippingAndBf16CopyEqualSeparatePasses) {
  const size_t n = 1000;
  auto p0 = randn(n, 1), g = randn(n, 2);
  std::vector<ParamGroup> groups = {{0, 600, 1.0, true}, {600, 400, 0.5, false}};
  AdamW a(n, groups, {}), b(n, groups, {});
  std::vector<float> pa = p0, pb = p0, scaled = g;
  const float c = clip_coefficient(10.0, 1.0);
  EXPECT_FLOAT_EQ(c, float(1.0 / (10.0 + 1e-6)));
  EXPECT_EQ(clip_coefficient(0.5, 1.0), 1.0f);
  for (auto& x : scaled) x *= c;
  std::vector<uint16_t> copy(n);
  a.step(pa.data(), g.data(), 1e-2, c, copy.data());
  b.step(pb.data(), scaled.data(), 1e-2);
  EXPECT_EQ(pa, pb);  // bit for bit
  std::vector<uint16_t> expect(n);
  convert_to_bf16(expect.data(), pb.data(), int64_t(n));
  EXPECT_EQ(copy, expect);
}

TEST(Precision, ParsesAndFallsBackWithOneWarning) {
  EXPECT_EQ(parse_precision("fp32"), Precision::F32);
  EXPECT_EQ(parse_precision("bf16"), Precision::BF16);
  EXPECT_THROW(parse_precision("fp8"), Error);
  // Capping oneDNN below AVX512-BF16 must turn --precision bf16 into fp32 with a warning, and the
  // command still runs.
  const std::string dir = test::temp_dir("fallback");
  auto r = test::run_command("ONEDNN_MAX_CPU_ISA=AVX512_CORE " + test::wafer_binary() +
                             " bench --preset 111M --n-layer 1 --n-embd 64 --n-head 2 --vocab-size 500 --prefill 8"
                             " --decode-tokens 2 --repeats 1 --precision bf16 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("--precision bf16 needs AVX512-BF16 or AMX"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("\"precision\":\"fp32\""), std::string::npos) << r.out;
}

}  // namespace
}  // namespace wafer
