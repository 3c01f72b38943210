// tests/gguf_model_test.cpp: a model through a gpt2 GGUF file: names and orientation as
// llama.cpp reads them, logits after the round trip (f32 exact, others within their format's
// error), greedy generation unchanged for f32, and the tokenizer carried in the metadata.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "infer/generate.h"
#include "infer/kv_cache.h"
#include "io/gguf.h"
#include "kernels/cpu/quant.h"
#include "model/batch_forward.h"
#include "model/forward.h"
#include "model/gguf_gpt2.h"
#include "model/model.h"
#include "test_util.h"

namespace wafer {
namespace {

ModelConfig tiny_config(bool tied) {
  ModelConfig c;
  c.vocab_size = 300, c.n_positions = 32, c.n_embd = 256, c.n_layer = 2, c.n_head = 4;
  c.tie_word_embeddings = tied;
  return c;
}

float max_abs(const std::vector<float>& v) {
  float m = 0;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

std::vector<float> logits_of(const Model& m, const std::vector<int32_t>& ids) {
  ForwardPass fp(m);
  const float* p = fp.forward(ids.data(), 1, int64_t(ids.size()), 0, {}, LogitsRows::All);
  return {p, p + ids.size() * size_t(m.config.vocab_size)};
}

TEST(GgufModel, NamesAndOrientationAsLlamaCpp) {
  bool tr;
  EXPECT_EQ(gguf_tensor_name("transformer.h.3.attn.c_attn.weight", &tr), "blk.3.attn_qkv.weight");
  EXPECT_TRUE(tr);
  EXPECT_EQ(gguf_tensor_name("h.0.mlp.c_proj.bias", &tr), "blk.0.ffn_down.bias");
  EXPECT_FALSE(tr);
  EXPECT_EQ(gguf_tensor_name("transformer.h.1.ln_2.weight", &tr), "blk.1.ffn_norm.weight");
  EXPECT_FALSE(tr);
  EXPECT_EQ(gguf_tensor_name("transformer.wte.weight", &tr), "token_embd.weight");
  EXPECT_FALSE(tr);
  EXPECT_EQ(gguf_tensor_name("lm_head.weight", &tr), "output.weight");

  Model m(tiny_config(false));
  init_weights(m, {.seed = 11});
  const std::string path = test::temp_dir("gguf_names") + "/m.gguf";
  save_gguf_model(m, path, GgufType::F32, nullptr);
  GgufFile f(path);
  const int64_t C = 256, F = 1024, V = 300, P = 32;
  EXPECT_EQ(f.get_string("general.architecture"), "gpt2");
  EXPECT_EQ(f.get_int("gpt2.embedding_length"), C);
  EXPECT_EQ(f.get_int("gpt2.feed_forward_length"), F);
  EXPECT_EQ(f.get_int("gpt2.block_count"), 2);
  EXPECT_EQ(f.get_int("gpt2.attention.head_count"), 4);
  EXPECT_EQ(f.get_int("gpt2.context_length"), P);
  EXPECT_EQ(f.get_int("general.file_type"), 0);
  // llama.cpp's create_tensor shapes (src/models/gpt2.cpp).
  EXPECT_EQ(f.find_tensor("token_embd.weight")->ne, (std::vector<int64_t>{C, V}));
  EXPECT_EQ(f.find_tensor("position_embd.weight")->ne, (std::vector<int64_t>{C, P}));
  EXPECT_EQ(f.find_tensor("blk.0.attn_qkv.weight")->ne, (std::vector<int64_t>{C, 3 * C}));
  EXPECT_EQ(f.find_tensor("blk.0.attn_qkv.bias")->ne, (std::vector<int64_t>{3 * C}));
  EXPECT_EQ(f.find_tensor("blk.1.attn_output.weight")->ne, (std::vector<int64_t>{C, C}));
  EXPECT_EQ(f.find_tensor("blk.1.ffn_up.weight")->ne, (std::vector<int64_t>{C, F}));
  EXPECT_EQ(f.find_tensor("blk.1.ffn_down.weight")->ne, (std::vector<int64_t>{F, C}));
  EXPECT_EQ(f.find_tensor("output.weight")->ne, (std::vector<int64_t>{C, V}));
  ASSERT_NE(f.find_tensor("output_norm.bias"), nullptr);
  // Transposed on disk: element (out o, in i) of ffn_up sits at o·C + i, wafer's c_fc at i·F + o.
  const GgufTensor* up = f.find_tensor("blk.1.ffn_up.weight");
  const float* disk = reinterpret_cast<const float*>(up->data);
  for (int64_t i : {int64_t(0), int64_t(7), C - 1})
    for (int64_t o : {int64_t(0), int64_t(5), F - 1}) EXPECT_EQ(disk[o * C + i], m.w.layers[1].fc_w[i * F + o]);
  // Tied: no output.weight (llama.cpp then reads token_embd).
  Model t(tiny_config(true));
  init_weights(t, {.seed = 12});
  save_gguf_model(t, path, GgufType::F32, nullptr);
  EXPECT_EQ(GgufFile(path).find_tensor("output.weight"), nullptr);
}

TEST(GgufModel, TypePolicyFollowsLlamaCpp) {
  const std::vector<int64_t> mat = {256, 512}, vec = {256}, odd = {96, 8}, tiny = {40, 8};
  EXPECT_EQ(gguf_tensor_type("blk.0.attn_norm.weight", vec, GgufType::Q4_K, true), GgufType::F32);
  EXPECT_EQ(gguf_tensor_type("position_embd.weight", mat, GgufType::Q8_0, true), GgufType::F32);
  EXPECT_EQ(gguf_tensor_type("position_embd.weight", mat, GgufType::F16, true), GgufType::F32);
  EXPECT_EQ(gguf_tensor_type("blk.0.ffn_up.weight", mat, GgufType::BF16, true), GgufType::BF16);
  EXPECT_EQ(gguf_tensor_type("blk.0.ffn_up.weight", mat, GgufType::Q4_K, true), GgufType::Q4_K);
  EXPECT_EQ(gguf_tensor_type("token_embd.weight", mat, GgufType::Q4_K, true), GgufType::Q6_K);   // the tied head
  EXPECT_EQ(gguf_tensor_type("token_embd.weight", mat, GgufType::Q4_0, false), GgufType::Q4_0);  // only the input
  EXPECT_EQ(gguf_tensor_type("output.weight", mat, GgufType::Q4_0, false), GgufType::Q6_K);
  EXPECT_EQ(gguf_tensor_type("output.weight", odd, GgufType::Q4_0, false), GgufType::Q8_0);  // 96 % 256
  EXPECT_EQ(gguf_tensor_type("blk.0.ffn_up.weight", mat, GgufType::Q6_K, true), GgufType::Q6_K);
  EXPECT_EQ(gguf_tensor_type("token_embd.weight", mat, GgufType::Q8_0, true), GgufType::Q8_0);
  EXPECT_EQ(gguf_tensor_type("blk.0.ffn_up.weight", odd, GgufType::Q4_K, true), GgufType::Q8_0);  // 96 % 256
  EXPECT_EQ(gguf_tensor_type("blk.0.ffn_up.weight", tiny, GgufType::Q8_0, true), GgufType::F16);  // 40 % 32
}

TEST(GgufModel, RoundTripLogitsAndGreedyGeneration) {
  const std::string dir = test::temp_dir("gguf_roundtrip");
  const std::vector<int32_t> ids = {1, 17, 250, 3, 99, 42, 7, 7, 123, 299};
  for (bool tied : {true, false}) {
    Model m(tiny_config(tied));
    init_weights(m, {.seed = 21});
    const std::vector<float> want = logits_of(m, ids);
    const float scale = max_abs(want);
    // Max |Δlogit| allowed, relative to the largest logit: exact for f32; then the formats' error.
    const std::pair<GgufType, float> cases[] = {{GgufType::F32, 0.0f},   {GgufType::F16, 0.01f},
                                                {GgufType::BF16, 0.05f}, {GgufType::Q8_0, 0.05f},
                                                {GgufType::Q4_0, 0.5f},  {GgufType::Q4_K, 0.5f},
                                                {GgufType::Q6_K, 0.1f}};
    for (const auto& [type, tol] : cases) {
      if (!tied && type != GgufType::F32 && type != GgufType::Q4_0) continue;  // the untied head: two suffice
      const std::string path = dir + "/m_" + gguf_type_name(type) + ".gguf";
      save_gguf_model(m, path, type, nullptr);
      auto back = load_hf_model(path);     // the loaders dispatch on .gguf
      ModelConfig want_config = m.config;  // GGUF keeps the epsilon as f32, as llama.cpp reads it
      want_config.layer_norm_epsilon = double(float(want_config.layer_norm_epsilon));
      EXPECT_EQ(back->config, want_config) << gguf_type_name(type);
      const std::vector<float> got = logits_of(*back, ids);
      const float diff = max_abs_diff(got, want);
      if (type == GgufType::F32) {
        EXPECT_EQ(got, want);
        EXPECT_EQ(back->params, m.params);
        GenerateOptions g{.max_new_tokens = 12, .sampling = {.temperature = 0}};
        EXPECT_EQ(generate(*back, ids, g).tokens, generate(m, ids, g).tokens);
      } else {
        EXPECT_LE(diff, tol * scale) << gguf_type_name(type) << " tied=" << tied;
        EXPECT_GT(diff, 0.0f) << gguf_type_name(type);  // the format did round something
      }
    }
  }
}

// In-memory quantized inference (--precision q8_0|q4_0|q4_k): the weights hold the values of a
// GGUF file of that type loaded back (dequantized), so the logits differ from that model's only
// by the activations' 8-bit rounding, and from fp32's within the format's error; the serving path
// (BatchForward, prompt in chunks) agrees with the whole-sequence pass to that rounding; decoding with the KV
// cache (single rows: the decode kernels) runs to its length.
TEST(QuantizedInference, HoldsTheGgufValuesAndEveryPathAgrees) {
  const std::string dir = test::temp_dir("quant_inference");
  const std::vector<int32_t> ids = {1, 17, 250, 3, 99, 42, 7, 7, 123, 299};
  const std::tuple<GgufType, QuantType, float> cases[] = {
      {GgufType::Q8_0, QuantType::Q8_0, 0.05f}, {GgufType::Q4_0, QuantType::Q4_0, 0.5f},
      {GgufType::Q4_K, QuantType::Q4_K, 0.5f}, {GgufType::Q6_K, QuantType::Q6_K, 0.1f}};
  for (bool tied : {true, false}) {
    Model m(tiny_config(tied));
    init_weights(m, {.seed = 21});
    const std::vector<float> want = logits_of(m, ids);
    const float scale = max_abs(want);
    for (const auto& [gt, qt, tol] : cases) {
      const std::string what = std::string(quant_type_name(qt)) + (tied ? " tied" : " untied");
      const std::string path = dir + "/m_" + gguf_type_name(gt) + ".gguf";
      save_gguf_model(m, path, gt, nullptr);
      auto deq = load_hf_model(path);
      const std::vector<float> ref = logits_of(*deq, ids);
      Model q(tiny_config(tied));
      init_weights(q, {.seed = 21});
      quantize_matrices(q, qt);
      ASSERT_NE(q.weight(q.w.layers[1].fc_proj_w).quant, nullptr) << what;
      EXPECT_EQ(q.weight(q.w.layers[1].fc_proj_w).quant->type, qt) << what;
      // the head as llama.cpp has it: q6_K but under q8_0
      EXPECT_EQ(q.weight(q.w.lm_head).quant->type, qt == QuantType::Q8_0 ? QuantType::Q8_0 : QuantType::Q6_K) << what;
      EXPECT_EQ(q.params[size_t(q.w.layers[0].fc_w - q.params.data()) + 4096], 0.0f) << "fp32 pages kept";
      const std::vector<float> got = logits_of(q, ids);
      ASSERT_EQ(got.size(), ref.size());
      const float d_ref = max_abs_diff(got, ref), d_want = max_abs_diff(got, want);
      EXPECT_LE(d_ref, 0.03f * scale) << what << ": more than the activations' rounding";
      EXPECT_GT(d_ref, 0.0f) << what << ": the activations were not quantized";
      EXPECT_LE(d_want, tol * scale) << what;
      KVCache cache(q, 1, 32);
      BatchForward bf(q);
      std::vector<float> served;
      for (size_t t0 = 0; t0 < ids.size(); t0 += 4) {
        TokenBatch b;
        for (size_t i = t0; i < std::min(ids.size(), t0 + 4); ++i) b.add(ids[i], 0, int32_t(i), true);
        const float* lg = bf.forward(b, cache.views(), 1);
        served.insert(served.end(), lg, lg + b.size() * q.config.vocab_size);
      }
      ASSERT_EQ(served.size(), got.size());
      // The two paths' fp32 attention and LayerNorm differ by round-off, which can move an
      // activation across an 8-bit rounding boundary: they agree to the activations' rounding.
      for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(served[i], got[i], 0.03f * scale) << what << " " << i;
      GenerateOptions g{.max_new_tokens = 8, .sampling = {.temperature = 0}};
      EXPECT_EQ(generate(q, ids, g).tokens.size(), 8u) << what;
    }
  }
}

// Decoding one row with quantized weights runs in one parallel region (model/decode_step.cpp):
// the same kernels on the same inputs as the general path, so every step's logits and the KV
// cache it writes are bit-identical to it, for any thread count, past a 256-key block.
TEST(GgufModel, QuantizedDecodeRegionIsBitIdenticalToTheGeneralPath) {
  const int saved = omp_get_max_threads();
  for (QuantType qt : {QuantType::Q8_0, QuantType::Q4_0, QuantType::Q4_K, QuantType::Q6_K})
    for (int threads : {1, 2, 3}) {
      const std::string what = std::string(quant_type_name(qt)) + ", " + std::to_string(threads) + " threads";
      ModelConfig c = tiny_config(qt != QuantType::Q4_0);
      const bool long_context = qt == QuantType::Q8_0 && threads == 2;
      c.n_positions = long_context ? 300 : 40;
      Model q(c);
      init_weights(q, {.seed = 23});
      quantize_matrices(q, qt);
      omp_set_num_threads(threads);
      KVCache region_kv(q, 1, c.n_positions), general_kv(q, 1, c.n_positions);
      ForwardPass region(q), general(q);
      general.set_one_region_decode(false);
      region.set_one_region_decode(true);
      std::vector<int32_t> ids{5, 77, 190, 3, 299, 41};
      region.forward(ids.data(), 1, int64_t(ids.size()), 0, region_kv.views(), LogitsRows::Last);
      general.forward(ids.data(), 1, int64_t(ids.size()), 0, general_kv.views(), LogitsRows::Last);
      const auto V = size_t(c.vocab_size);
      for (int64_t pos = int64_t(ids.size()); pos < c.n_positions; ++pos) {
        const int32_t tok = int32_t((pos * 37) % c.vocab_size);
        const float* a = region.forward(&tok, 1, 1, pos, region_kv.views(), LogitsRows::Last);
        const std::vector<float> got(a, a + V);
        const float* b = general.forward(&tok, 1, 1, pos, general_kv.views(), LogitsRows::Last);
        ASSERT_EQ(std::memcmp(got.data(), b, V * sizeof(float)), 0) << what << ", position " << pos;
      }
      EXPECT_EQ(region.one_region_decode_steps(), c.n_positions - int64_t(ids.size())) << what;
      EXPECT_EQ(general.one_region_decode_steps(), 0) << what;
      const int64_t kv_floats = c.n_positions * c.n_embd;
      for (size_t l = 0; l < region_kv.views().size(); ++l) {
        EXPECT_EQ(std::memcmp(region_kv.views()[l].k, general_kv.views()[l].k, size_t(kv_floats) * 4), 0) << what;
        EXPECT_EQ(std::memcmp(region_kv.views()[l].v, general_kv.views()[l].v, size_t(kv_floats) * 4), 0) << what;
      }
    }
  omp_set_num_threads(saved);
}

TEST(GgufModel, TokenizerTravelsInTheMetadata) {
  const std::string tok_dir = test::gpt2_tokenizer_dir();
  const GgufVocab vocab = read_gguf_vocab(tok_dir);
  ASSERT_EQ(vocab.tokens.size(), 50257u);
  ModelConfig c = tiny_config(true);
  c.vocab_size = 50257;
  c.n_layer = 1;
  Model m(c);
  init_weights(m, {.seed = 3});
  const std::string path = test::temp_dir("gguf_tok") + "/m.gguf";
  save_gguf_model(m, path, GgufType::Q8_0, &vocab);
  GgufFile f(path);
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), "gpt-2");
  EXPECT_EQ(f.get_strings("tokenizer.ggml.tokens")[262], "Ġthe");
  EXPECT_EQ(f.get_strings("tokenizer.ggml.merges")[0], "Ġ t");
  EXPECT_EQ(f.get_ints("tokenizer.ggml.token_type")[50256], 3);  // <|endoftext|>: CONTROL
  EXPECT_EQ(f.get_ints("tokenizer.ggml.token_type")[0], 1);
  EXPECT_EQ(f.get_int("tokenizer.ggml.eos_token_id"), 50256);
  auto from_gguf = load_gguf_tokenizer(path);
  auto from_dir = Tokenizer::load(tok_dir);
  const std::string text = "Hello world, it's a GGUF test<|endoftext|> 12345";
  EXPECT_EQ(from_gguf->encode(text, true), from_dir->encode(text, true));
  EXPECT_EQ(from_gguf->vocab_size(), 50257);
}

TEST(GgufModel, ExportAndQuantizeCommands) {
  const std::string dir = test::temp_dir("gguf_cli");
  Model m(tiny_config(true));
  init_weights(m, {.seed = 4});
  save_hf_model(m, dir + "/model");
  const std::string w = test::wafer_binary();
  auto r = test::run_command(w + " export --model " + dir + "/model --gguf --type q8_0 --out " + dir + "/m.gguf");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("gguf Q8_0"), std::string::npos) << r.out;
  r = test::run_command(w + " quantize --model " + dir + "/m.gguf --type q4_k --out " + dir + "/k.gguf");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  GgufFile k(dir + "/k.gguf");
  EXPECT_EQ(k.find_tensor("blk.0.ffn_up.weight")->type, GgufType::Q4_K);
  EXPECT_EQ(k.find_tensor("token_embd.weight")->type, GgufType::Q6_K);  // the tied head
  EXPECT_EQ(k.find_tensor("position_embd.weight")->type, GgufType::F32);
  EXPECT_EQ(k.get_int("general.file_type"), 14);
  r = test::run_command(w + " quantize --model " + dir + "/m.gguf --type f16 --out " + dir + "/bad.gguf");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("expected --type q8_0, q4_0, q4_k or q6_k"), std::string::npos) << r.err;
  r = test::run_command(w + " quantize --model " + dir + "/m.gguf --type q6_k --out " + dir + "/six.gguf");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  GgufFile six(dir + "/six.gguf");
  EXPECT_EQ(six.find_tensor("blk.1.attn_qkv.weight")->type, GgufType::Q6_K);
  EXPECT_EQ(six.find_tensor("token_embd.weight")->type, GgufType::Q6_K);  // llama.cpp's Q6_K keeps its head Q6_K
  EXPECT_EQ(six.get_int("general.file_type"), 18);
  for (const auto& e : std::filesystem::directory_iterator(dir))  // written through a temp name and a rename
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  EXPECT_FALSE(std::filesystem::exists(dir + "/bad.gguf"));
}

// llama-quantize's Q4_0 and Q4_K_M files hold Q6_K tensors (the output matrix, token_embd when
// tied; some attn_v and ffn_down under Q4_K_M). A file of wafer's Q4_0 with its token_embd
// rewritten as Q6_K gives exactly the logits of the values it holds; one with an ffn_down ([F, C]
// in the other orientation) rewritten loads within Q4_0's error of fp32.
TEST(GgufModel, LoadsQ6_KTensorsAsLlamaQuantizeWritesThem) {
  const std::string dir = test::temp_dir("gguf_q6k");
  const std::vector<int32_t> ids = {5, 250, 17, 3, 299, 64};
  Model m(tiny_config(true));
  init_weights(m, {.seed = 31});
  save_gguf_model(m, dir + "/q4.gguf", GgufType::Q4_0, nullptr);
  GgufFile q4(dir + "/q4.gguf");
  // q4.gguf with tensor `name` as Q6_K (quantized from its Q4_0 values) at `path`; returns the
  // Q6_K values dequantized.
  auto rewrite = [&](const std::string& name, const std::string& path) {
    std::vector<GgufTensorToWrite> tensors;
    std::vector<BlockQ6_K> six;
    std::vector<float> x;
    for (const GgufTensor& t : q4.tensors()) {
      tensors.push_back({t.name, t.type, t.ne, t.data});
      if (t.name != name) continue;
      x.resize(size_t(t.ne[0] * t.ne[1]));
      gguf_tensor_to_f32(x.data(), t);
      six.resize(x.size() / 256);
      quantize_q6_k(six.data(), x.data(), int64_t(x.size()));
      tensors.back() = {t.name, GgufType::Q6_K, t.ne, six.data()};
    }
    EXPECT_FALSE(six.empty()) << name;
    write_gguf(path, q4.metadata(), tensors);
    dequantize_q6_k(x.data(), six.data(), int64_t(x.size()));
    return x;
  };
  const std::vector<float> head = rewrite("token_embd.weight", dir + "/head.gguf");
  EXPECT_EQ(GgufFile(dir + "/head.gguf").find_tensor("token_embd.weight")->type, GgufType::Q6_K);
  auto loaded = load_hf_model(dir + "/head.gguf");
  auto want = load_hf_model(dir + "/q4.gguf");
  ASSERT_EQ(head.size(), size_t(m.config.vocab_size * m.config.n_embd));
  std::memcpy(want->w.wte, head.data(), head.size() * sizeof(float));  // [V, C] rows, as in the file
  EXPECT_EQ(logits_of(*loaded, ids), logits_of(*want, ids));
  rewrite("blk.1.ffn_down.weight", dir + "/down.gguf");
  auto down = load_hf_model(dir + "/down.gguf");
  const std::vector<float> fp32 = logits_of(m, ids), q4_logits = logits_of(*load_hf_model(dir + "/q4.gguf"), ids),
                           got = logits_of(*down, ids);
  EXPECT_LE(max_abs_diff(got, fp32), 0.5f * max_abs(fp32));
  EXPECT_GT(max_abs_diff(got, q4_logits), 0.0f);  // the Q6_K values, not the Q4_0 ones
}

// --precision on a quantized GGUF file keeps the file's own blocks where the policy gives their
// type (the values llama.cpp computes with, and no second quantization); other types are
// quantized again from the dequantized values.
TEST(GgufModel, QuantizedFileKeepsItsBlocks) {
  const std::string dir = test::temp_dir("gguf_keep");
  for (bool tied : {true, false}) {
    Model m(tiny_config(tied));
    init_weights(m, {.seed = 41});
    const std::string path = dir + (tied ? "/tied.gguf" : "/untied.gguf");
    save_gguf_model(m, path, GgufType::Q4_K, nullptr);
    const GgufFile f(path);
    auto a = load_hf_model(path);
    const auto given = gguf_quant_matrices(f, *a);
    EXPECT_EQ(given.size(), size_t(4 * m.config.n_layer + (tied ? 1 : 2)));
    quantize_matrices(*a, QuantType::Q4_K, &given);
    auto same_bytes = [&](const float* w, const std::string& name) {
      const QuantMatrix* q = a->weight(w).quant;
      const GgufTensor* t = f.find_tensor(name);
      return q && t && size_t(q->rows * quant_row_bytes(q->type, q->cols)) == t->nbytes &&
             std::memcmp(q->data, t->data, t->nbytes) == 0;
    };
    for (int64_t l = 0; l < m.config.n_layer; ++l) {
      const LayerWeights& w = a->w.layers[size_t(l)];
      const std::string blk = "blk." + std::to_string(l) + ".";
      EXPECT_TRUE(same_bytes(w.qkv_w, blk + "attn_qkv.weight")) << l;
      EXPECT_TRUE(same_bytes(w.fc_proj_w, blk + "ffn_down.weight")) << l;
    }
    EXPECT_EQ(a->weight(a->w.lm_head).quant->type, QuantType::Q6_K);
    EXPECT_TRUE(same_bytes(a->w.lm_head, tied ? "token_embd.weight" : "output.weight"));
    const std::vector<int32_t> ids = {3, 77, 150, 299};
    EXPECT_LE(max_abs_diff(logits_of(*a, ids), logits_of(m, ids)), 0.5f * max_abs(logits_of(m, ids)));
    auto b = load_hf_model(path);  // another type: quantized again, nothing taken from the file
    quantize_matrices(*b, QuantType::Q8_0, &given);
    EXPECT_EQ(b->weight(b->w.layers[0].qkv_w).quant->type, QuantType::Q8_0);
    EXPECT_EQ(b->weight(b->w.lm_head).quant->type, QuantType::Q8_0);

    // Loading straight to the type: the same model, its blocks read in place in the mapped file.
    auto direct = load_gguf_model(path, QuantType::Q4_K);
    ASSERT_TRUE(direct->weight_file);
    EXPECT_TRUE(direct->quant_storage.empty());  // nothing copied or quantized
    const QuantMatrix* qkv = direct->weight(direct->w.layers[1].qkv_w).quant;
    ASSERT_TRUE(qkv);
    EXPECT_EQ(qkv->data, direct->weight_file->find_tensor("blk.1.attn_qkv.weight")->data);
    EXPECT_EQ(logits_of(*direct, ids), logits_of(*a, ids));
    auto direct_q8 = load_gguf_model(path, QuantType::Q8_0);  // dequantized, then quantized again
    EXPECT_EQ(direct_q8->quant_storage.size(), direct_q8->quant.size());
    EXPECT_EQ(logits_of(*direct_q8, ids), logits_of(*b, ids));
  }
}

// The peak resident set of this process since reset_peak_rss, and now, in bytes (Linux
// /proc/self/status VmHWM and VmRSS); false where the kernel cannot reset the peak.
bool reset_peak_rss() {
  FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  const bool ok = std::fputs("5", f) >= 0;  // 5: reset the peak RSS to the current RSS
  return std::fclose(f) == 0 && ok;
}
int64_t status_kb(const char* key) {
  FILE* f = std::fopen("/proc/self/status", "r");
  char line[256];
  int64_t kb = -1;
  while (f && std::fgets(line, sizeof line, f))
    if (std::strncmp(line, key, std::strlen(key)) == 0) kb = std::atoll(line + std::strlen(key));
  if (f) std::fclose(f);
  return kb;
}

// AddressSanitizer's allocator keeps freed memory resident (its quarantine), so under it the
// resident set does not show what a load holds at once.
#if defined(__SANITIZE_ADDRESS__)  // GCC's -fsanitize=address
#define WAFER_TEST_ASAN 1
#elif defined(__has_feature)  // clang's
#if __has_feature(address_sanitizer)
#define WAFER_TEST_ASAN 1
#endif
#endif
#ifdef WAFER_TEST_ASAN
constexpr bool kResidentSetMeasuresTheLoad = false;
#else
constexpr bool kResidentSetMeasuresTheLoad = true;
#endif

// The growth of the peak resident set while load() runs, in bytes (-1 where the kernel cannot
// reset the peak, or the build's allocator keeps freed memory).
double peak_of_load(const std::function<std::unique_ptr<Model>()>& load) {
  if (!kResidentSetMeasuresTheLoad || !reset_peak_rss()) return -1.0;
  const int64_t before = status_kb("VmRSS:");
  auto m = load();
  return 1024.0 * double(status_kb("VmHWM:") - before);
}

ModelConfig memory_test_config() {  // fp32 matrices of 46 MB
  ModelConfig c;
  c.vocab_size = 4096, c.n_positions = 64, c.n_embd = 512, c.n_layer = 3, c.n_head = 8;
  return c;
}
double fp32_matrix_bytes(const ModelConfig& c) {
  return 4.0 * double(c.n_layer * 12 * c.n_embd * c.n_embd + c.vocab_size * c.n_embd);
}
// The peak of loading `path` (a folder or a GGUF file) whole in fp32 and then quantizing to t:
// what the lazy loads are measured against.
double peak_of_fp32_first_load(const std::string& path, QuantType t) {
  return peak_of_load([&] {
    auto m = load_hf_model(path);
    quantize_matrices(*m, t);
    return m;
  });
}

// A quantized GGUF file loaded at its own type never writes its matrices' fp32 pages, so the
// load's peak memory is a small part of the fp32 model's; at another type the matrices are
// dequantized one at a time. Loading to fp32 first (load_hf_model) commits them all.
TEST(GgufModel, QuantizedLoadCommitsNoFp32Matrices) {
  const ModelConfig c = memory_test_config();
  const std::string path = test::temp_dir("gguf_lazy") + "/q4_0.gguf";
  {
    Model m(c);
    init_weights(m, {.seed = 5});
    save_gguf_model(m, path, GgufType::Q4_0, nullptr);
  }
  const double fp32 = fp32_matrix_bytes(c);
  const double fp32_first = peak_of_fp32_first_load(path, QuantType::Q4_0);
  if (fp32_first < 0) GTEST_SKIP() << "no measure of the peak RSS here (clear_refs, or ASan's quarantine)";
  const double in_place = peak_of_load([&] { return load_gguf_model(path, QuantType::Q4_0); });
  const double requantized = peak_of_load([&] { return load_gguf_model(path, QuantType::Q8_0); });
  EXPECT_GT(fp32_first, 0.9 * fp32);
  EXPECT_LT(in_place, 0.1 * fp32) << "fp32 matrices " << fp32 / 1e6 << " MB, peak over the load " << in_place / 1e6;
  // q8_0 rows are 34/128 of fp32's bytes; one fp32 matrix (the 8 MB head) on top of them.
  EXPECT_LT(requantized, 0.5 * fp32) << "fp32 matrices " << fp32 / 1e6 << " MB, peak " << requantized / 1e6;
}

// An HF folder loaded quantized reads one matrix in fp32 at a time: the same model as loading
// it whole and quantizing, in a fraction of the memory.
TEST(GgufModel, QuantizedHfLoadReadsOneMatrixAtATime) {
  const ModelConfig c = memory_test_config();
  const std::string dir = test::temp_dir("hf_lazy");
  {
    Model m(c);
    init_weights(m, {.seed = 6});
    save_hf_model(m, dir);
  }
  const std::vector<int32_t> ids = {1, 500, 4000, 7};
  for (QuantType t : {QuantType::Q8_0, QuantType::Q4_K}) {
    auto whole = load_hf_model(dir);
    quantize_matrices(*whole, t);
    auto lazy = load_hf_model_quantized(dir, c, Shard::full(c), t);
    EXPECT_EQ(logits_of(*lazy, ids), logits_of(*whole, ids)) << quant_type_name(t);
  }
  const double fp32 = fp32_matrix_bytes(c);
  const double whole = peak_of_fp32_first_load(dir, QuantType::Q8_0);
  if (whole < 0) GTEST_SKIP() << "no measure of the peak RSS here (clear_refs, or ASan's quarantine)";
  const double lazy = peak_of_load([&] { return load_hf_model_quantized(dir, c, Shard::full(c), QuantType::Q8_0); });
  EXPECT_GT(whole, 0.9 * fp32);
  EXPECT_LT(lazy, 0.5 * fp32) << "fp32 matrices " << fp32 / 1e6 << " MB, peak over the load " << lazy / 1e6;
}

TEST(GgufModel, RefusesWhatLlamaCppCannotRun) {
  ModelConfig c = tiny_config(true);
  c.scale_attn_weights = false;
  Model m(c);
  EXPECT_THROW(save_gguf_model(m, test::temp_dir("gguf_refuse") + "/m.gguf", GgufType::F32, nullptr), Error);
  EXPECT_THROW(load_hf_model(test::temp_dir("gguf_refuse") + "/missing.gguf"), Error);
}

}  // namespace
}  // namespace wafer
