// tests/cli_test.cpp: the `wafer` binary end to end: every subcommand's happy path against the
// PyTorch reference, and bad input giving one "wafer: error:" line, exit code 1, no crash and
// nothing on disk damaged.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "core/file.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace wafer {
namespace {

namespace fs = std::filesystem;
using test::run_command;

std::string W() { return test::wafer_binary(); }
std::string tokdir() { return test::gpt2_tokenizer_dir(); }
const nlohmann::json& expected() {
  static nlohmann::json j = nlohmann::json::parse(read_file(test::reference_dir() + "/expected.json"));
  return j;
}
const nlohmann::json& model(const std::string& name) {
  for (const auto& m : expected()["models"])
    if (m["name"] == name) return m;
  throw std::runtime_error("no model " + name);
}
std::string join(const std::vector<int32_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(v[i]);
  }
  return s;
}
std::string last_line(const std::string& s) {
  std::string t = s;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

// Runs a command that must fail cleanly: exit 1, one line on stderr naming the problem.
void expect_clean_failure(const std::string& cmd, const std::string& needle, const std::string& input = "") {
  auto r = run_command(cmd, input);
  EXPECT_EQ(r.exit_code, 1) << cmd << "\nstderr: " << r.err;
  EXPECT_EQ(r.err.rfind("wafer: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "expected one line, got: " << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.err;
}

TEST(Cli, TokenizeEncodeDecodeRoundTrip) {
  std::string text = "Hello world! Don't panic.\n\xff\xfe invalid bytes <|endoftext|> too";
  auto enc = run_command(W() + " tokenize --tokenizer " + tokdir() + " --json", text);
  ASSERT_EQ(enc.exit_code, 0) << enc.err;
  auto ids = nlohmann::json::parse(enc.out).get<std::vector<int32_t>>();
  EXPECT_EQ(ids[0], 15496);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 50256), 0);
  auto dec = run_command(W() + " tokenize --tokenizer " + tokdir() + " --decode", join(ids));
  ASSERT_EQ(dec.exit_code, 0);
  EXPECT_EQ(dec.out, text);  // byte-exact, nothing added
  auto spec = run_command(W() + " tokenize --tokenizer " + tokdir() + " --allow-special", "a<|endoftext|>b");
  EXPECT_EQ(spec.out, "64 50256 65\n");
  auto ws = run_command(W() + " tokenize --tokenizer " + tokdir() + " --decode", "15496  995\n11,\t0");
  EXPECT_EQ(ws.out, "Hello world,!");
  expect_clean_failure(W() + " tokenize --tokenizer " + tokdir() + " --decode", "out of the vocabulary", "15496,99999");
  expect_clean_failure(W() + " tokenize --tokenizer " + tokdir() + " --decode", "expected token ids", "1,two");
  expect_clean_failure(W() + " tokenize --tokenizer /nonexistent", "found neither", "x");
}

TEST(Cli, InfoCountsParameters) {
  auto r = run_command(W() + " info --preset 111M --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["parameters"], 111050496);
  r = run_command(W() + " info --preset 13B --json");
  EXPECT_EQ(nlohmann::json::parse(r.out)["parameters"], 12853386240);
  r = run_command(W() + " info --model " + model("f32_gelu")["dir"].get<std::string>());
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("FLOPs/token"), std::string::npos);
  expect_clean_failure(W() + " info --preset 42M", "unknown preset '42M'");
}

TEST(Cli, GenerateGreedyMatchesPyTorch) {
  for (const char* name : {"f32_gelu", "bin_legacy_untied", "bf16_gelu_new"}) {
    const auto& m = model(name);
    auto r = run_command(W() + " generate --model " + m["dir"].get<std::string>() + " --ids " +
                         join(m["prompt"].get<std::vector<int32_t>>()) +
                         " --temperature 0 --max-new-tokens 24 --print-ids");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(last_line(r.out), join(m["greedy"].get<std::vector<int32_t>>())) << name;
  }
}

TEST(Cli, GenerateFromTextPromptSamplesDeterministically) {
  std::string dir = model("f32_gelu")["dir"];
  std::string cmd = W() + " generate --model " + dir + " --prompt 'Once upon a time' --max-new-tokens 12 " +
                    "--temperature 0.8 --top-k 40 --top-p 0.9 --seed 7 --print-ids";
  auto a = run_command(cmd), b = run_command(cmd);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.out.rfind("Once upon a time", 0), 0u);
  auto c = run_command(W() + " generate --model " + dir + " --prompt 'Once upon a time' --max-new-tokens 12 " +
                       "--temperature 0.8 --seed 8 --print-ids");
  EXPECT_NE(last_line(a.out), last_line(c.out));
}

TEST(Cli, EvalMatchesPyTorchPerplexity) {
  for (const char* name : {"f32_gelu", "mup_untied"}) {
    const auto& m = model(name);
    auto r = run_command(W() + " eval --model " + m["dir"].get<std::string>() + " --text " +
                         expected()["ppl_text"].get<std::string>() + " --ctx 48 --stride 20 --json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    double want = std::exp(m["ppl_nll"].get<double>() / m["ppl_scored"].get<double>());
    EXPECT_NEAR(j["perplexity"].get<double>() / want, 1.0, 1e-4) << name;
    EXPECT_EQ(j["scored"], m["ppl_scored"]);
  }
}

TEST(Cli, LogitsWritesOneTensor) {
  const auto& m = model("f16_sharded");
  std::string dir = m["dir"];
  SafetensorsFile exp(dir + "/expected_logits.safetensors");
  const auto* ids = reinterpret_cast<const int64_t*>(exp.tensors().at("input_ids").data);
  const int64_t T = exp.tensors().at("input_ids").shape[1];
  std::string s;
  for (int64_t t = 0; t < T; ++t) {
    if (t) s += ',';
    s += std::to_string(ids[t]);
  }
  std::string out = test::temp_dir("logits") + "/l.safetensors";
  auto r = run_command(W() + " logits --model " + dir + " --ids " + s + " --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  SafetensorsFile got(out);
  ASSERT_EQ(got.tensors().size(), 1u);
  const TensorRef& l = got.tensors().at("logits");
  EXPECT_EQ(l.dtype, DType::F32);
  EXPECT_EQ(l.shape, (std::vector<int64_t>{T, 50257}));
  const float* a = reinterpret_cast<const float*>(l.data);
  const float* b = reinterpret_cast<const float*>(exp.tensors().at("logits").data);
  float worst = 0;
  for (int64_t i = 0; i < T * 50257; ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  EXPECT_LT(worst, 1e-4f);
}

TEST(Cli, BadInputFailsCleanlyAndLeavesFilesAlone) {
  std::string good = model("f32_gelu")["dir"];
  std::string out = test::temp_dir("keep") + "/l.safetensors";
  std::ofstream(out) << "precious";
  std::string long_ids;
  for (int i = 0; i < 65; ++i) {
    if (i) long_ids += ',';
    long_ids += std::to_string(i);
  }
  expect_clean_failure(W() + " logits --model " + good + " --ids 1,2,50257 --out " + out, "out of the vocabulary");
  expect_clean_failure(W() + " logits --model " + good + " --ids " + long_ids + " --out " + out, "exceed the model's context");
  EXPECT_EQ(read_file(out), "precious");
  expect_clean_failure(W() + " generate --model " + good + " --ids " + long_ids, "longer than the model's context of 64");
  expect_clean_failure(W() + " generate --model " + good + " --ids 5,50300", "out of the vocabulary");
  expect_clean_failure(W() + " generate --model " + good + " --ids 1,x", "expected token ids");
  expect_clean_failure(W() + " generate --model /nonexistent --ids 1", "found no folder");
  expect_clean_failure(W() + " generate --model " + test::reference_dir() + "/bad_pickle_opcode --ids 1", "opcode");
  std::string trunc = test::temp_dir("trunc-cli");
  fs::copy(good, trunc, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  std::string bytes = read_file(trunc + "/model.safetensors");
  std::ofstream(trunc + "/model.safetensors", std::ios::binary) << bytes.substr(0, bytes.size() - 1000);
  expect_clean_failure(W() + " eval --model " + trunc + " --text " + expected()["ppl_text"].get<std::string>(),
                       "truncated");
  std::ofstream(trunc + "/config.json") << "{ not json";
  expect_clean_failure(W() + " generate --model " + trunc + " --ids 1", "not valid JSON");
  expect_clean_failure(W() + " eval --model " + good + " --text /nonexistent.txt", "cannot open");
  expect_clean_failure(W() + " eval --model " + good + " --text " + expected()["ppl_text"].get<std::string>() +
                           " --ctx 500",
                       "expected --ctx in [2, 64]");
}

TEST(Cli, InitWritesALoadableModel) {
  std::string dir = test::temp_dir("init");
  auto r = run_command(W() + " init --preset 111M --n-layer 2 --n-embd 48 --n-head 3 --n-positions 32 --dtype bf16 " +
                       "--tokenizer " + tokdir() + " --out " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir + "/vocab.json"));
  SafetensorsFile f(dir + "/model.safetensors");
  EXPECT_EQ(f.tensors().at("transformer.wte.weight").dtype, DType::BF16);
  EXPECT_EQ(f.tensors().count("lm_head.weight"), 0u);
  auto g = run_command(W() + " generate --model " + dir + " --prompt hi --max-new-tokens 3 --temperature 0");
  EXPECT_EQ(g.exit_code, 0) << g.err;
  expect_clean_failure(W() + " init --preset 111M --n-head 7 --out " + dir, "must be divisible by n_head");
}

}  // namespace
}  // namespace wafer
