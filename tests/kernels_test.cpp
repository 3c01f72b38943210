// tests/kernels_test.cpp: every CPU kernel against a plain double-precision version, from one
// table: a new op adds a row (name, how to run it, tolerance).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "kernels/cpu/argmax.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/gelu.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/matmul.h"
#include "test_util.h"

namespace wafer {
namespace {

using test::randn;

float max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// Packed attention inputs [B, T, 3C] as the model lays them out.
struct AttnCase {
  int64_t B, Tq, Tk, H, D, pos0;
  bool causal;
};

float attention_error(const AttnCase& c) {
  const int64_t C = c.H * c.D;
  auto q = randn(size_t(c.B * c.Tq * C), 1), kv = randn(size_t(c.B * c.Tk * 2 * C), 2);
  AttentionShape s;
  s.B = c.B, s.Tq = c.Tq, s.Tk = c.Tk, s.H = c.H, s.D = c.D, s.q_pos0 = c.pos0, s.causal = c.causal;
  s.scale = 1.0f / std::sqrt(float(c.D));
  s.q_row = C, s.q_batch = c.Tq * C, s.kv_row = 2 * C, s.kv_batch = c.Tk * 2 * C, s.out_row = C, s.out_batch = c.Tq * C;
  std::vector<float> o1(size_t(c.B * c.Tq * C)), o2(o1.size()), l1(size_t(c.B * c.H * c.Tq)), l2(l1.size());
  attention_forward(o1.data(), l1.data(), q.data(), kv.data(), kv.data() + C, s);
  attention_forward_naive(o2.data(), l2.data(), q.data(), kv.data(), kv.data() + C, s);
  return std::max(max_diff(o1, o2), max_diff(l1, l2));
}

// Full attention over Tk keys vs two halves merged by their log-sum-exp.
float merge_error(int64_t B, int64_t T, int64_t Tk, int64_t split, int64_t H, int64_t D) {
  const int64_t C = H * D;
  auto q = randn(size_t(B * T * C), 3), k = randn(size_t(B * Tk * C), 4), v = randn(size_t(B * Tk * C), 5);
  AttentionShape s;
  s.B = B, s.Tq = T, s.H = H, s.D = D, s.causal = false, s.scale = 0.3f;
  s.q_row = C, s.q_batch = T * C, s.kv_row = C, s.out_row = C, s.out_batch = T * C;
  std::vector<float> full(size_t(B * T * C)), lf(size_t(B * H * T)), a(full.size()), la(lf.size()), b(full.size()),
      lb(lf.size());
  s.Tk = Tk, s.kv_batch = Tk * C;
  attention_forward(full.data(), lf.data(), q.data(), k.data(), v.data(), s);
  s.Tk = split;
  attention_forward(a.data(), la.data(), q.data(), k.data(), v.data(), s);
  s.Tk = Tk - split;
  attention_forward(b.data(), lb.data(), q.data(), k.data() + split * C, v.data() + split * C, s);
  attention_merge(a.data(), la.data(), b.data(), lb.data(), B, T, H, D);
  return std::max(max_diff(full, a), max_diff(lf, la));
}

float matmul_error(int64_t N, int64_t C, int64_t OC, bool bias) {
  auto x = randn(size_t(N * C), 6), w = randn(size_t(C * OC), 7), b = randn(size_t(OC), 8);
  std::vector<float> o1(size_t(N * OC)), o2(o1.size());
  matmul_forward(o1.data(), x.data(), w.data(), bias ? b.data() : nullptr, N, C, OC);
  matmul_forward_naive(o2.data(), x.data(), w.data(), bias ? b.data() : nullptr, N, C, OC);
  return max_diff(o1, o2);
}

float layernorm_error(int64_t N, int64_t C) {
  auto x = randn(size_t(N * C), 9, 3.0f), w = randn(size_t(C), 10), b = randn(size_t(C), 11);
  for (auto& e : x) e += 5.0f;  // an offset the two-pass variance must handle
  std::vector<float> out(x.size()), mean(static_cast<size_t>(N)), rstd(static_cast<size_t>(N)), want(x.size());
  layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, 1e-5f);
  for (int64_t n = 0; n < N; ++n) {
    double m = 0, v = 0;
    for (int64_t i = 0; i < C; ++i) m += x[size_t(n * C + i)];
    m /= double(C);
    for (int64_t i = 0; i < C; ++i) v += (x[size_t(n * C + i)] - m) * (x[size_t(n * C + i)] - m);
    v /= double(C);
    for (int64_t i = 0; i < C; ++i)
      want[size_t(n * C + i)] = float((x[size_t(n * C + i)] - m) / std::sqrt(v + 1e-5) * w[size_t(i)] + b[size_t(i)]);
  }
  return max_diff(out, want);
}

float gelu_error(bool tanh_form) {
  auto x = randn(4096, 12, 3.0f);
  std::vector<float> out(x.size()), want(x.size());
  (tanh_form ? gelu_tanh_forward : gelu_erf_forward)(out.data(), x.data(), int64_t(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    double v = x[i];
    want[i] = tanh_form ? float(0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))))
                        : float(0.5 * v * (1 + std::erf(v / std::sqrt(2.0))));
  }
  return max_diff(out, want);
}

float cross_entropy_error() {
  const int64_t N = 7, V = 50257;
  auto logits = randn(size_t(N * V), 13, 4.0f);
  std::vector<int32_t> t = {0, 5, 50256, 123, 9999, 7, 42};
  std::vector<float> loss(static_cast<size_t>(N)), want(static_cast<size_t>(N));
  cross_entropy_forward(loss.data(), logits.data(), t.data(), N, V);
  for (int64_t n = 0; n < N; ++n) {
    double m = -1e30, s = 0;
    for (int64_t v = 0; v < V; ++v) m = std::max(m, double(logits[size_t(n * V + v)]));
    for (int64_t v = 0; v < V; ++v) s += std::exp(double(logits[size_t(n * V + v)]) - m);
    want[size_t(n)] = float(m + std::log(s) - logits[size_t(n * V + t[size_t(n)])]);
  }
  return max_diff(loss, want);
}

// Backward vs central finite differences of L = Σ out · r for random r, at `probes` random
// coordinates of `x`; returns max |fd - analytic| / max |analytic| over the probes.
// forward(x) -> out; backward(x, r) -> dL/dx.
float finite_difference_error(std::vector<float> x, const std::function<std::vector<float>(const std::vector<float>&)>& forward,
                              const std::function<std::vector<float>(const std::vector<float>&, const std::vector<float>&)>& backward,
                              int probes = 24, float h = 1e-2f) {
  const std::vector<float> out = forward(x);
  const std::vector<float> r = randn(out.size(), 99);
  const std::vector<float> grad = backward(x, r);
  std::mt19937_64 rng(5);
  double worst = 0, scale = 0;
  for (float g : grad) scale = std::max(scale, double(std::fabs(g)));
  for (int p = 0; p < probes; ++p) {
    size_t i = rng() % x.size();
    const float keep = x[i];
    auto objective = [&](float v) {
      x[i] = v;
      std::vector<float> o = forward(x);
      double l = 0;
      for (size_t k = 0; k < o.size(); ++k) l += double(o[k]) * r[k];
      return l;
    };
    double fd = (objective(keep + h) - objective(keep - h)) / (2.0 * double(h));
    x[i] = keep;
    worst = std::max(worst, std::fabs(fd - double(grad[i])));
  }
  return float(worst / std::max(scale, 1e-12));
}

float layernorm_backward_error() {
  const int64_t N = 3, C = 16;
  auto w = randn(size_t(C), 21), b = randn(size_t(C), 22);
  auto fwd = [&](const std::vector<float>& x) {
    std::vector<float> o(x.size());
    layernorm_forward(o.data(), nullptr, nullptr, x.data(), w.data(), b.data(), N, C, 1e-5f);
    return o;
  };
  auto bwd = [&](const std::vector<float>& x, const std::vector<float>& dout) {
    std::vector<float> o(x.size()), mean(static_cast<size_t>(N)), rstd(static_cast<size_t>(N)), dx(x.size(), 0.0f),
        dw(static_cast<size_t>(C), 0.0f), db(static_cast<size_t>(C), 0.0f);
    layernorm_forward(o.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, 1e-5f);
    layernorm_backward(dx.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(), mean.data(), rstd.data(), N, C);
    return dx;
  };
  return finite_difference_error(randn(size_t(N * C), 20), fwd, bwd);
}

float gelu_backward_error(bool tanh_form) {
  auto fwd = [&](const std::vector<float>& x) {
    std::vector<float> o(x.size());
    (tanh_form ? gelu_tanh_forward : gelu_erf_forward)(o.data(), x.data(), int64_t(x.size()));
    return o;
  };
  auto bwd = [&](const std::vector<float>& x, const std::vector<float>& dout) {
    std::vector<float> dx(x.size(), 0.0f);
    (tanh_form ? gelu_tanh_backward : gelu_erf_backward)(dx.data(), x.data(), dout.data(), int64_t(x.size()));
    return dx;
  };
  return finite_difference_error(randn(64, 23, 2.0f), fwd, bwd);
}

// Causal attention over packed qkv [B, T, 3C]; the gradient is taken w.r.t. all of qkv.
float attention_backward_error() {
  const int64_t B = 2, T = 7, H = 2, D = 4, C = H * D;
  AttentionShape s;
  s.B = B, s.Tq = T, s.Tk = T, s.H = H, s.D = D, s.scale = 0.5f, s.causal = true;
  s.q_row = 3 * C, s.q_batch = T * 3 * C, s.kv_row = 3 * C, s.kv_batch = T * 3 * C, s.out_row = C, s.out_batch = T * C;
  auto fwd = [&](const std::vector<float>& qkv) {
    std::vector<float> o(size_t(B * T * C)), lse(size_t(B * H * T));
    attention_forward(o.data(), lse.data(), qkv.data(), qkv.data() + C, qkv.data() + 2 * C, s);
    return o;
  };
  auto bwd = [&](const std::vector<float>& qkv, const std::vector<float>& dout) {
    std::vector<float> o(size_t(B * T * C)), lse(size_t(B * H * T)), d(qkv.size(), 0.0f);
    attention_forward(o.data(), lse.data(), qkv.data(), qkv.data() + C, qkv.data() + 2 * C, s);
    attention_backward(d.data(), d.data() + C, d.data() + 2 * C, dout.data(), o.data(), lse.data(), qkv.data(),
                       qkv.data() + C, qkv.data() + 2 * C, s);
    return d;
  };
  return finite_difference_error(randn(size_t(B * T * 3 * C), 24), fwd, bwd, 40);
}

float matmul_backward_error() {
  const int64_t N = 5, C = 6, OC = 7;
  auto w = randn(size_t(C * OC), 25), bias = randn(size_t(OC), 26);
  auto fwd = [&](const std::vector<float>& x) {
    std::vector<float> o(size_t(N * OC));
    matmul_forward(o.data(), x.data(), w.data(), bias.data(), N, C, OC);
    return o;
  };
  auto bwd = [&](const std::vector<float>& x, const std::vector<float>& dout) {
    std::vector<float> dx(x.size(), 0.0f), dw(w.size(), 0.0f), db(bias.size(), 0.0f);
    matmul_backward(dx.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(), N, C, OC);
    return dx;
  };
  return finite_difference_error(randn(size_t(N * C), 27), fwd, bwd);
}

float cross_entropy_backward_error() {
  const int64_t N = 3, V = 11;
  std::vector<int32_t> t = {2, 0, 10};
  auto fwd = [&](const std::vector<float>& logits) {
    std::vector<float> l(static_cast<size_t>(N));
    cross_entropy_forward(l.data(), logits.data(), t.data(), N, V);
    return l;
  };
  auto bwd = [&](const std::vector<float>& logits, const std::vector<float>& dloss) {
    std::vector<float> d(logits.size());
    cross_entropy_backward(d.data(), logits.data(), t.data(), dloss.data(), N, V);
    return d;
  };
  return finite_difference_error(randn(size_t(N * V), 28), fwd, bwd);
}

// fast_exp / fast_erf / fast_tanh against libm over a wide range.
float fast_math_error(int which) {
  double worst = 0;
  for (int i = -200000; i <= 200000; ++i) {
    const float x = float(i) * (which == 0 ? 4.35e-4f : 6e-5f);  // exp: [-87, 87]
    if (which == 0) worst = std::max(worst, std::fabs(double(fast_exp(x)) - std::exp(double(x))) / std::exp(double(x)));
    if (which == 1) worst = std::max(worst, std::fabs(double(fast_erf(x)) - std::erf(double(x))));
    if (which == 2) worst = std::max(worst, std::fabs(double(fast_tanh(x)) - std::tanh(double(x))));
  }
  if (which == 0 && (fast_exp(-INFINITY) != 0.0f || fast_exp(-100.0f) != 0.0f)) return 1.0f;
  return float(worst);
}

struct OpRow {
  const char* name;
  std::function<float()> error;
  float tolerance;
};

const std::vector<OpRow>& op_table() {
  static const std::vector<OpRow> rows = {
      {"fast_exp relative", [] { return fast_math_error(0); }, 5e-7f},
      {"fast_erf absolute", [] { return fast_math_error(1); }, 1e-6f},
      {"fast_tanh absolute", [] { return fast_math_error(2); }, 5e-7f},
      {"matmul 1x8x5", [] { return matmul_error(1, 8, 5, true); }, 1e-5f},
      {"matmul 67x130x33 bias", [] { return matmul_error(67, 130, 33, true); }, 1e-4f},
      {"matmul 64x96x256 no bias", [] { return matmul_error(64, 96, 256, false); }, 1e-4f},
      {"layernorm 5x768", [] { return layernorm_error(5, 768); }, 1e-4f},
      {"layernorm 33x24", [] { return layernorm_error(33, 24); }, 1e-5f},
      {"gelu erf", [] { return gelu_error(false); }, 1e-5f},
      {"gelu tanh", [] { return gelu_error(true); }, 1e-5f},
      {"cross entropy V=50257", [] { return cross_entropy_error(); }, 1e-4f},
      {"attention causal T=1", [] { return attention_error({1, 1, 1, 2, 8, 0, true}); }, 1e-5f},
      {"attention causal T=100 (tiles, blocks)", [] { return attention_error({2, 100, 100, 3, 16, 0, true}); }, 1e-5f},
      {"attention causal T=200 D=64", [] { return attention_error({1, 200, 200, 2, 64, 0, true}); }, 1e-5f},
      {"attention decode pos0=129", [] { return attention_error({2, 1, 130, 3, 8, 129, true}); }, 1e-5f},
      {"attention chunk pos0=70", [] { return attention_error({1, 37, 107, 2, 8, 70, true}); }, 1e-5f},
      {"attention full (non-causal)", [] { return attention_error({2, 45, 150, 2, 8, 0, false}); }, 1e-5f},
      {"attention merge halves", [] { return merge_error(2, 19, 150, 70, 3, 8); }, 1e-5f},
      {"attention merge uneven", [] { return merge_error(1, 5, 9, 1, 2, 16); }, 1e-5f},
      // Backward rows: finite differences in fp32 (h = 1e-2) are good to a few 1e-3.
      {"matmul backward (finite differences)", [] { return matmul_backward_error(); }, 5e-3f},
      {"layernorm backward (finite differences)", [] { return layernorm_backward_error(); }, 5e-3f},
      {"gelu erf backward (finite differences)", [] { return gelu_backward_error(false); }, 5e-3f},
      {"gelu tanh backward (finite differences)", [] { return gelu_backward_error(true); }, 5e-3f},
      {"attention backward (finite differences)", [] { return attention_backward_error(); }, 5e-3f},
      {"cross entropy backward (finite differences)", [] { return cross_entropy_backward_error(); }, 5e-3f},
  };
  return rows;
}

class Ops : public ::testing::TestWithParam<size_t> {};

TEST_P(Ops, MatchesReference) {
  const OpRow& row = op_table()[GetParam()];
  float err = row.error();
  EXPECT_LE(err, row.tolerance) << row.name << ": max error " << err;
}

INSTANTIATE_TEST_SUITE_P(Table, Ops, ::testing::Range<size_t>(0, op_table().size()),
                         [](const auto& info) {
                           std::string n = op_table()[info.param].name;
                           for (auto& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

// Greedy's pick: the first index of the largest value, NaNs skipped unless first, on every ISA,
// for every length around the vector width, with ties, infinities and signed zeros.
TEST(Argmax, FirstLargestAsTheScalarLoopOnEveryIsa) {
  auto scalar = [](const std::vector<float>& x) {
    size_t best = 0;
    for (size_t i = 1; i < x.size(); ++i)
      if (x[i] > x[best]) best = i;
    return int32_t(best);
  };
  std::mt19937 g(5);
  std::vector<std::vector<float>> cases;
  for (size_t n : {size_t(1), size_t(15), size_t(16), size_t(17), size_t(33), size_t(50257)}) {
    std::vector<float> x(n);
    for (auto& v : x) v = float(int(g() % 7)) - 3.0f;  // many ties
    cases.push_back(x);
    x[n / 2] = NAN, cases.push_back(x);
    x[0] = NAN, cases.push_back(x);
    std::fill(x.begin(), x.end(), -INFINITY), cases.push_back(x);
    x[n - 1] = -0.0f, cases.push_back(x);
    x[0] = 0.0f, cases.push_back(x);
    std::fill(x.begin(), x.end(), NAN), x[n - 1] = 1.0f, cases.push_back(x);
  }
  const Isa saved = kernel_isa();
  for (Isa isa : {Isa::Avx512, Isa::Generic}) {
    set_kernel_isa(isa);
    for (size_t k = 0; k < cases.size(); ++k)
      EXPECT_EQ(argmax_row(cases[k].data(), int64_t(cases[k].size())), scalar(cases[k]))
          << "case " << k << " of size " << cases[k].size() << ", " << isa_name(kernel_isa());
  }
  set_kernel_isa(saved);
}

TEST(Attention, RowThatSeesNoKeyIsMinusInfinityAndZero) {
  AttentionShape s;
  s.B = 1, s.Tq = 1, s.Tk = 0, s.H = 1, s.D = 4, s.q_row = 4, s.kv_row = 4, s.out_row = 4, s.causal = false;
  std::vector<float> q(4, 1.0f), o(4, 7.0f), l(1, 0.0f);
  attention_forward(o.data(), l.data(), q.data(), q.data(), q.data(), s);
  EXPECT_EQ(l[0], -INFINITY);
  EXPECT_EQ(o[0], 0.0f);
}

TEST(Embedding, AddsTokenAndPositionRows) {
  std::vector<float> wte = {1, 2, 3, 4, 5, 6}, wpe = {10, 20, 30, 40, 50, 60}, out(4);
  std::vector<int32_t> tok = {2, 0}, pos = {1, 2};
  embedding_forward(out.data(), tok.data(), wte.data(), 0, 3, 2, 2, 2.0f);
  position_embedding_forward(out.data(), pos.data(), wpe.data(), 2, 2, 2.0f);
  EXPECT_EQ(out, (std::vector<float>{2 * (5 + 30), 2 * (6 + 40), 2 * (1 + 50), 2 * (2 + 60)}));
}

TEST(Embedding, VocabularyShardZeroesForeignTokens) {
  std::vector<float> wte_rows_2_3 = {5, 6, 7, 8}, out(4, 9.0f), dwte(4, 0.0f);
  std::vector<int32_t> tok = {2, 0};
  embedding_forward(out.data(), tok.data(), wte_rows_2_3.data(), 2, 2, 2, 2, 1.0f);
  EXPECT_EQ(out, (std::vector<float>{5, 6, 0, 0}));
  std::vector<float> dout = {1, 2, 3, 4};
  embedding_backward(dwte.data(), dout.data(), tok.data(), 2, 2, 2, 2, 1.0f);
  EXPECT_EQ(dwte, (std::vector<float>{1, 2, 0, 0}));
}

}  // namespace
}  // namespace wafer
