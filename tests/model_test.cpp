// tests/model_test.cpp: wafer's forward pass, generation and perplexity against the float64
// PyTorch reference (tools/pyref) on random models in every HF layout wafer reads.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "core/file.h"
#include "infer/generate.h"
#include "infer/kv_cache.h"
#include "infer/perplexity.h"
#include "io/safetensors.h"
#include "model/forward.h"
#include "model/sharding.h"
#include "model/weight_files.h"
#include "test_util.h"

namespace wafer {
namespace {

const nlohmann::json& expected() {
  static nlohmann::json j = nlohmann::json::parse(read_file(test::reference_dir() + "/expected.json"));
  return j;
}

class ReferenceModel : public ::testing::TestWithParam<std::string> {
 protected:
  nlohmann::json entry() {
    for (const auto& m : expected()["models"])
      if (m["name"] == GetParam()) return m;
    ADD_FAILURE() << "no reference model " << GetParam();
    return {};
  }
};

float max_abs_diff(const float* a, const float* b, size_t n, size_t* where) {
  float worst = 0;
  for (size_t i = 0; i < n; ++i) {
    float d = std::fabs(a[i] - b[i]);
    if (d > worst || std::isnan(d)) {
      worst = std::isnan(d) ? INFINITY : d;
      *where = i;
    }
  }
  return worst;
}

TEST_P(ReferenceModel, LogitsMatchPyTorch) {
  const std::string dir = entry()["dir"];
  auto m = load_hf_model(dir);
  SafetensorsFile exp(dir + "/expected_logits.safetensors");
  const TensorRef& want = exp.tensors().at("logits");
  const TensorRef& ids64 = exp.tensors().at("input_ids");
  const int64_t B = ids64.shape[0], T = ids64.shape[1], V = m->config.vocab_size;
  ASSERT_EQ(V, 50257);
  std::vector<int32_t> ids(size_t(B * T));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(reinterpret_cast<const int64_t*>(ids64.data)[i]);
  ForwardPass fp(*m);
  const float* got = fp.forward(ids.data(), B, T, 0, {}, LogitsRows::All);
  const float* ref = reinterpret_cast<const float*>(want.data);
  size_t at = 0;
  float diff = max_abs_diff(got, ref, size_t(B * T * V), &at);
  float scale = 0;
  for (size_t i = 0; i < size_t(B * T * V); ++i) scale = std::max(scale, std::fabs(ref[i]));
  EXPECT_LT(diff, 1e-4f) << "max |wafer - torch| = " << diff << " at flat index " << at << " (wafer " << got[at]
                         << ", torch " << ref[at] << "); logits reach " << scale;
  EXPECT_GT(scale, 1.0f) << "reference logits too flat to test anything";
}

TEST_P(ReferenceModel, KVCacheDecodingMatchesFullForward) {
  const std::string dir = entry()["dir"];
  auto m = load_hf_model(dir);
  SafetensorsFile exp(dir + "/expected_logits.safetensors");
  const TensorRef& want = exp.tensors().at("logits");
  const auto* ids64 = reinterpret_cast<const int64_t*>(exp.tensors().at("input_ids").data);
  const int64_t T = exp.tensors().at("input_ids").shape[1], V = m->config.vocab_size;
  KVCache cache(*m, 1, T);
  ForwardPass fp(*m);
  // Prefill 6 tokens, then one at a time: each step's logits equal row t of the full pass.
  std::vector<int32_t> ids(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) ids[size_t(t)] = int32_t(ids64[t]);
  fp.forward(ids.data(), 1, 6, 0, cache.views(), LogitsRows::Last);
  cache.advance(6);
  for (int64_t t = 6; t < T; ++t) {
    const float* got = fp.forward(&ids[size_t(t)], 1, 1, t, cache.views(), LogitsRows::Last);
    cache.advance(1);
    size_t at = 0;
    float diff = max_abs_diff(got, reinterpret_cast<const float*>(want.data) + t * V, size_t(V), &at);
    EXPECT_LT(diff, 1e-4f) << "position " << t;
  }
}

TEST_P(ReferenceModel, GreedyContinuationMatchesPyTorch) {
  auto e = entry();
  auto m = load_hf_model(e["dir"]);
  std::vector<int32_t> prompt = e["prompt"].get<std::vector<int32_t>>();
  std::vector<int32_t> want = e["greedy"].get<std::vector<int32_t>>();
  GenerateResult r = generate(*m, prompt, {.max_new_tokens = 24, .sampling = {.temperature = 0}, .stop_token = 50256});
  EXPECT_EQ(r.tokens, want);
}

TEST_P(ReferenceModel, PerplexityMatchesPyTorch) {
  auto e = entry();
  auto m = load_hf_model(e["dir"]);
  std::vector<int32_t> ids = expected()["ppl_ids"].get<std::vector<int32_t>>();
  PerplexityResult r = perplexity(*m, ids, {.ctx = e["ppl_ctx"], .stride = e["ppl_stride"]});
  const double want_nll = e["ppl_nll"].get<double>() / e["ppl_scored"].get<double>();
  EXPECT_EQ(r.scored, e["ppl_scored"].get<int64_t>());
  EXPECT_NEAR(r.perplexity() / std::exp(want_nll), 1.0, 1e-4) << "wafer " << r.perplexity() << ", torch "
                                                               << std::exp(want_nll);
}

INSTANTIATE_TEST_SUITE_P(Layouts, ReferenceModel,
                         ::testing::Values("f32_gelu", "bf16_gelu_new", "f16_sharded", "bin_legacy_untied",
                                           "mup_untied"));

// Cutting a model into every tp × stage shard and putting the pieces back gives the model again,
// tied or untied, with the vocabulary padded for tp (2 and 3) and stages split unevenly.
TEST(Sharding, ExtractThenGatherIsIdentity) {
  for (bool tied : {true, false}) {
    ModelConfig c = *preset("111M");
    c.n_layer = 3, c.n_embd = 48, c.n_head = 3, c.vocab_size = 1000, c.n_positions = 32;
    c.tie_word_embeddings = tied;
    Model full(c);
    init_weights(full, {.seed = 3});
    for (int tp : {1, 3})
      for (auto stages : {std::vector<std::pair<int64_t, int64_t>>{{0, 3}}, {{0, 2}, {2, 3}}, {{0, 1}, {1, 2}, {2, 3}}}) {
        std::vector<float> back(full.params.size(), -1.0f);
        for (size_t st = 0; st < stages.size(); ++st)
          for (int r = 0; r < tp; ++r) {
            const Shard sh = Shard::of(c, r, tp, stages[st].first, stages[st].second, st == 0, st + 1 == stages.size());
            auto m = extract_shard(full, sh);
            EXPECT_EQ(int64_t(m->params.size()), shard_parameter_count(c, sh));
            unshard_flat(c, sh, m->params.data(), back.data(), [&](const ParamSpec& s) {
              return (!s.tp_replicated || r == 0) && (st == 0 || s.name != "transformer.wte.weight");
            });
          }
        EXPECT_TRUE(std::equal(back.begin(), back.end(), full.params.begin(), full.params.end())) << "tp " << tp << ", " << stages.size() << " stages, tied " << tied;
      }
  }
}

// Each rank reads only its slices out of the file: every tp × stage shard loaded from a saved
// whole model (f32, and bf16 converted on the way) equals the shard cut from the model in memory,
// and a partial range (a ZeRO-1 rank's moments) equals that range of the shard.
TEST(Sharding, LoadingASliceEqualsCuttingTheWholeModel) {
  for (bool tied : {true, false}) {
    ModelConfig c = *preset("111M");
    c.n_layer = 3, c.n_embd = 48, c.n_head = 3, c.vocab_size = 1000, c.n_positions = 32;
    c.tie_word_embeddings = tied;
    Model full(c);
    init_weights(full, {.seed = 5});
    for (DType dt : {DType::F32, DType::BF16}) {
      const std::string dir = test::temp_dir("slices");
      save_hf_model(full, dir, {.dtype = dt});
      auto whole = load_hf_model(dir);  // the same conversion, whole
      for (int tp : {1, 3})
        for (auto stages : {std::vector<std::pair<int64_t, int64_t>>{{0, 3}}, {{0, 1}, {1, 3}}}) {
          for (size_t st = 0; st < stages.size(); ++st)
            for (int r = 0; r < tp; ++r) {
              const Shard sh = Shard::of(c, r, tp, stages[st].first, stages[st].second, st == 0, st + 1 == stages.size());
              auto cut = extract_shard(*whole, sh);
              auto read = load_hf_model(dir, c, sh);
              ASSERT_EQ(read->params, cut->params) << "tp " << tp << " rank " << r << " stage " << st << " tied " << tied;
              const int64_t n = int64_t(cut->params.size()), lo = n / 3 + 7, hi = 2 * n / 3 + 1;
              std::vector<float> part(size_t(hi - lo));
              read_shard_range(WeightFiles::open_hf_folder(dir), dir, "", c, sh, lo, hi, part.data());
              EXPECT_TRUE(std::equal(part.begin(), part.end(), cut->params.begin() + lo)) << "range of tp " << tp;
            }
        }
    }
  }
}

TEST(Model, SaveThenLoadRoundTrips) {
  auto m = load_hf_model(expected()["models"][3]["dir"]);  // untied, from .bin
  std::string dir = test::temp_dir("roundtrip");
  save_hf_model(*m, dir);
  auto back = load_hf_model(dir);
  EXPECT_EQ(back->config, m->config);
  EXPECT_EQ(back->params, m->params);
  SafetensorsFile f(dir + "/model.safetensors");
  EXPECT_EQ(f.tensors().count("lm_head.weight"), 1u);
  EXPECT_EQ(f.tensors().at("transformer.h.0.attn.c_attn.weight").shape, (std::vector<int64_t>{24, 72}));
}

TEST(Model, PresetParameterCounts) {
  EXPECT_EQ(parameter_count(*preset("111M")), 111050496);
  EXPECT_EQ(parameter_count(*preset("13B")), 12853386240);
  EXPECT_EQ(parameter_count(*preset("gpt2")), 124439808 + (1024 - 1024) * 768);
  for (const auto& name : preset_names()) {
    ModelConfig c = *preset(name);
    int64_t sum = 0;
    for (const auto& s : parameter_specs(c)) sum += s.numel();
    EXPECT_EQ(sum, parameter_count(c)) << name;
  }
}

TEST(Model, ConfigJsonRoundTrips) {
  for (const auto& name : preset_names()) {
    ModelConfig c = *preset(name);
    c.mup_base_width = 256;
    c.mup_embeddings_scale = 10;
    EXPECT_EQ(config_from_json(nlohmann::json::parse(config_to_json(c).dump()), "test"), c) << name;
  }
}

TEST(Model, InitFollowsTheRules) {
  ModelConfig c = *preset("111M");
  c.n_layer = 2, c.n_embd = 64, c.n_head = 4, c.n_inner = 256, c.vocab_size = 1000, c.n_positions = 128;
  Model m(c);
  init_weights(m, {.seed = 5});
  auto stats = [](const float* p, size_t n) {
    double s = 0, mx = 0;
    for (size_t i = 0; i < n; ++i) s += double(p[i]) * p[i], mx = std::max(mx, double(std::fabs(p[i])));
    return std::pair{std::sqrt(s / double(n)), mx};
  };
  auto [wte_std, wte_max] = stats(m.w.wte, size_t(c.vocab_size * c.n_embd));
  EXPECT_NEAR(wte_std, 0.02 * 0.8796, 0.001);  // std of N(0,1) truncated at ±2 is 0.8796
  EXPECT_LE(wte_max, 0.04 + 1e-7);
  auto [proj_std, proj_max] = stats(m.w.layers[0].fc_proj_w, size_t(c.ffn() * c.n_embd));
  EXPECT_NEAR(proj_std, 0.02 / 2.0 * 0.8796, 0.0005);  // σ/sqrt(2L), L = 2
  EXPECT_EQ(m.w.layers[1].ln1_w[3], 1.0f);
  EXPECT_EQ(m.w.layers[1].qkv_b[3], 0.0f);
}

}  // namespace
}  // namespace wafer
