// tests/train_test.cpp: gradients against PyTorch autograd (float64) and ten AdamW steps with
// warmup, decay, clipping, weight decay and gradient accumulation against torch.optim.AdamW.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <span>

#include "core/file.h"
#include "core/format.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "train/loss_plot.h"
#include "train/replica_check.h"
#include "train/schedule.h"
#include "train/train_step.h"
#include "test_util.h"

namespace wafer {
namespace {

// The replica hash: equal buffers agree; a change of any one element, even its lowest bit or its
// sign, or of the length, gives another hash. One rank's check compares nothing and passes.
TEST(ReplicaHash, AnyOneElementChangesIt) {
  std::vector<float> x = {1.0f, -2.5f, 3.25f, 0.0f, 1e-30f, 7.0f, -0.0f};
  const uint64_t h = hash_floats(x.data(), int64_t(x.size()));
  EXPECT_EQ(h, hash_floats(std::vector<float>(x).data(), int64_t(x.size())));
  for (size_t i = 0; i < x.size(); ++i)
    for (uint32_t bit : {0u, 22u, 31u}) {
      std::vector<float> y = x;
      uint32_t u;
      std::memcpy(&u, &y[i], 4);
      u ^= 1u << bit;
      std::memcpy(&y[i], &u, 4);
      EXPECT_NE(hash_floats(y.data(), int64_t(y.size())), h) << "element " << i << " bit " << bit;
    }
  EXPECT_NE(hash_floats(x.data(), int64_t(x.size()) - 1), h);
  std::vector<float> zeros(8, 0.0f);
  EXPECT_NE(hash_floats(zeros.data(), 8), hash_floats(zeros.data(), 6));
  ModelConfig c;
  c.vocab_size = 64, c.n_positions = 8, c.n_embd = 16, c.n_layer = 1, c.n_head = 2;
  Model m(c);
  EXPECT_NO_THROW(check_replicas(m, ParallelState::single(), 1));
}

TEST(Format, HumanCountHasThreeSignificantDigits) {
  EXPECT_EQ(human_count(20293376), "20.3M");
  EXPECT_EQ(human_count(111050496), "111M");
  EXPECT_EQ(human_count(1315950592), "1.32B");
  EXPECT_EQ(human_count(12853386240.0), "12.9B");
  EXPECT_EQ(human_count(999950), "1.00M");
  EXPECT_EQ(human_count(950), "950");
}

TEST(LossPlot, TicksAreRoundAndCoverTheRange) {
  EXPECT_EQ(axis_ticks(5.98, 10.9), (std::vector<double>{5, 6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(axis_ticks(0, 240), (std::vector<double>{0, 50, 100, 150, 200, 250}));
  const auto t = axis_ticks(6.31, 6.93);  // step 0.2: 6.2 .. 7.0
  ASSERT_EQ(t.size(), 5u);
  EXPECT_NEAR(t.front(), 6.2, 1e-12);
  EXPECT_NEAR(t.back(), 7.0, 1e-12);
  EXPECT_EQ(axis_ticks(3, 3), (std::vector<double>{0, 1}));
}

const nlohmann::json& expected() {
  static nlohmann::json j = nlohmann::json::parse(read_file(test::reference_dir() + "/expected.json"));
  return j;
}

// max |a - b| / max |b| over one tensor.
double relative_error(const float* a, const float* b, size_t n) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < n; ++i) {
    diff = std::max(diff, double(std::fabs(a[i] - b[i])));
    scale = std::max(scale, double(std::fabs(b[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

// Compares every parameter-shaped tensor of `buffer` (laid out like m's parameters) with the
// file's tensor of the same name. With skip_key_bias, the K third of c_attn.bias is left out:
// softmax is invariant to adding q·b_k to a whole row of scores, so that gradient is exactly 0
// in exact arithmetic, and AdamW divides fp32 round-off (~1e-9) by sqrt(v) + eps into a step
// of size ~lr where the float64 reference takes none. Those values never change the loss.
void expect_tensors_match(const Model& m, std::span<const float> buffer, const SafetensorsFile& want, double tol,
                          const std::string& what, bool skip_key_bias = false) {
  size_t offset = 0;
  const size_t C = size_t(m.config.n_embd);
  for (const auto& s : parameter_specs(m.config)) {
    const TensorRef& t = want.tensors().at(s.name);
    ASSERT_EQ(t.dtype, DType::F32);
    const float* got = buffer.data() + offset;
    const float* ref = reinterpret_cast<const float*>(t.data);
    double err = relative_error(got, ref, size_t(s.numel()));
    if (skip_key_bias && s.name.find("attn.c_attn.bias") != std::string::npos) {  // Q and V thirds only
      std::vector<float> a(got, got + C), b(ref, ref + C);
      a.insert(a.end(), got + 2 * C, got + 3 * C);
      b.insert(b.end(), ref + 2 * C, ref + 3 * C);
      err = relative_error(a.data(), b.data(), a.size());
    }
    EXPECT_LT(err, tol) << what << " " << s.name << ": max |wafer - torch| / max |torch| = " << err;
    offset += size_t(s.numel());
  }
}

class Grads : public ::testing::TestWithParam<std::string> {};

TEST_P(Grads, LossAndEveryGradientMatchAutograd) {
  const std::string dir = test::reference_dir() + "/" + GetParam();
  auto m = load_hf_model(dir);
  auto batch = nlohmann::json::parse(read_file(dir + "/grads_batch.json"));
  TrainStep ts(*m, {});
  StepResult r = ts.compute_grads({batch_from_sequences(batch["input_ids"].get<std::vector<std::vector<int32_t>>>())});
  SafetensorsFile want(dir + "/expected_grads.safetensors");
  const double want_loss = *reinterpret_cast<const double*>(want.tensors().at("loss").data);
  EXPECT_NEAR(r.loss / want_loss, 1.0, 1e-4) << "wafer " << r.loss << ", torch " << want_loss;
  expect_tensors_match(*m, ts.grads(), want, 1e-4, "gradient");
  // The key bias's gradient is zero in exact arithmetic (see expect_tensors_match): check it is
  // round-off small next to the query bias's.
  const LayerWeights& g = ts.grad_views().layers[0];
  const int64_t C = m->config.n_embd;
  float kmax = 0, qmax = 0;
  for (int64_t i = 0; i < C; ++i) qmax = std::max(qmax, std::fabs(g.qkv_b[i])), kmax = std::max(kmax, std::fabs(g.qkv_b[C + i]));
  EXPECT_LT(kmax, 1e-5f * qmax);
}

INSTANTIATE_TEST_SUITE_P(Models, Grads, ::testing::Values("f32_gelu", "bf16_gelu_new", "bin_legacy_untied", "mup_untied"));

TEST(AdamW, TenStepsMatchTorch) {
  for (const auto& run : expected()["optimizer"]) {
    auto m = load_hf_model(run["dir"]);
    TrainStep ts(*m, {.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1}, 1.0);
    const auto& steps = run["steps"];
    LrSchedule sched{.peak = run["peak"], .warmup_steps = run["warmup"], .total_steps = int64_t(steps.size()),
                     .decay = decay_from_name(run["decay"]), .final_ratio = run["final_ratio"]};
    for (size_t s = 0; s < steps.size(); ++s) {
      std::vector<Batch> micro;
      for (const auto& mb : steps[s]) micro.push_back(batch_from_sequences(mb.get<std::vector<std::vector<int32_t>>>()));
      StepResult r = ts.step(micro, sched.lr(int64_t(s)));
      const double want = run["losses"][s];
      EXPECT_NEAR(r.loss / want, 1.0, 1e-5) << run["model"] << " step " << s;
    }
    SafetensorsFile want(run["expected"]);
    expect_tensors_match(*m, m->params, want, 1e-5, std::string("after 10 steps, ") + run["model"].get<std::string>(),
                         /*skip_key_bias=*/true);
  }
}

TEST(Schedule, WarmupThenDecay) {
  LrSchedule lin{.peak = 1.0, .warmup_steps = 4, .total_steps = 14, .decay = Decay::Linear, .final_ratio = 0.1};
  EXPECT_DOUBLE_EQ(lin.lr(0), 0.25);
  EXPECT_DOUBLE_EQ(lin.lr(3), 1.0);
  EXPECT_DOUBLE_EQ(lin.lr(4), 1.0);
  EXPECT_NEAR(lin.lr(13), 0.1, 1e-12);
  LrSchedule cos = lin;
  cos.decay = Decay::Cosine;
  EXPECT_NEAR(cos.lr(13), 0.1, 1e-12);
  EXPECT_NEAR(cos.lr(4 + 9 / 2.0), 0.55, 0.1);
}

}  // namespace
}  // namespace wafer
