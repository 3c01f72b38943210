// tests/train_cli_test.cpp: `wafer prepare`, `wafer train` and `wafer grads` end to end: exact
// resume (after --stop-at and after kill -9), refusal of corrupt checkpoints and shards, a NaN
// stop that keeps the last checkpoint, the HF export (also of μP models).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/file.h"
#include "io/safetensors.h"
#include "model/forward.h"
#include "model/model.h"
#include "test_util.h"
#include "train/data.h"

namespace wafer {
namespace {

namespace fs = std::filesystem;
using test::run_command;

std::string W() { return test::wafer_binary(); }

// A small dataset from a few fortune files, made once.
const std::string& dataset() {
  static std::string dir = [] {
    std::string d = test::temp_dir("dataset");
    auto r = run_command(W() + " prepare --input /usr/share/games/fortunes/science /usr/share/games/fortunes/computers "
                               "--tokenizer " + test::gpt2_tokenizer_dir() + " --out " + d + " --val-fraction 0.05");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return d;
  }();
  return dir;
}

std::string train_cmd(const std::string& out, const std::string& extra = "") {
  return W() + " train --preset 111M --n-layer 2 --n-embd 48 --n-head 3 --n-positions 64 --data " + dataset() +
         " --out " + out + " --steps 30 --batch 4 --seq 32 --micro-batches 2 --lr 2e-3 --checkpoint-every 5 " +
         "--eval-every 10 --quiet " + extra;
}

// (step, loss or val_loss) of every metrics line, as exact doubles.
std::vector<std::pair<int64_t, double>> losses(const std::string& run) {
  std::vector<std::pair<int64_t, double>> v;
  std::istringstream in(read_file(run + "/metrics.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    v.emplace_back(j["step"].get<int64_t>(), j.contains("loss") ? j["loss"].get<double>() : -j["val_loss"].get<double>());
  }
  return v;
}

const std::string straight_dir = test::temp_dir("straight");

const std::vector<std::pair<int64_t, double>>& straight_run() {
  static std::vector<std::pair<int64_t, double>> v = [] {
    auto r = run_command(train_cmd(straight_dir));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return losses(straight_dir);
  }();
  return v;
}

TEST(TrainCli, LossFallsAndMetricsAreComplete) {
  const auto& v = straight_run();
  ASSERT_EQ(v.size(), 33u);  // 30 steps + 3 validation points
  EXPECT_LT(v[29 + 2].second, v[0].second - 1.0) << "training loss should fall by more than a nat";
}

// The plot a newcomer opens first: a readable parameter count in the title, round tick values.
TEST(TrainCli, LossPlotHasReadableTitleAndRoundTicks) {
  straight_run();
  const std::string svg = read_file(straight_dir + "/loss.svg");
  EXPECT_NE(svg.find("parameters, batch 8 x 32"), std::string::npos) << svg.substr(0, 400);
  const std::regex label(R"(text-anchor="end">([^<]*)</text>)");
  int n = 0;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), label); it != std::sregex_iterator(); ++it, ++n) {
    const std::string v = (*it)[1];
    EXPECT_LE(v.size(), 4u) << "tick label " << v << " is not a round number";
    const double x = std::stod(v) * 10;
    EXPECT_NEAR(x, std::round(x), 1e-9) << "tick label " << v;
  }
  EXPECT_GE(n, 3) << "too few loss tick labels";
}

TEST(TrainCli, PrepareSaysWhatItReadAndWhatItSkipped) {
  const std::string in = test::temp_dir("prep-in"), out = test::temp_dir("prep-out");
  write_file_atomic(in + "/a.txt", "Some text to learn from.\n");
  write_file_atomic(in + "/b.dat", std::string("\x00\x01\xff\xfe binary", 12));
  auto r = run_command(W() + " prepare --input " + in + " --tokenizer " + test::gpt2_tokenizer_dir() + " --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("read 1 text files"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("skipped 1 file that is not UTF-8 text (binary data, such as " + in + "/b.dat)"),
            std::string::npos)
      << r.out;
}

TEST(TrainCli, ResumeAfterStopIsBitIdentical) {
  std::string run = test::temp_dir("stopped");
  auto a = run_command(train_cmd(run, "--stop-at 20"));
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_FALSE(fs::exists(run + "/final"));
  auto b = run_command(train_cmd(run, "--resume"));
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(losses(run), straight_run());
}

TEST(TrainCli, ResumeAfterKillNineIsBitIdentical) {
  std::string run = test::temp_dir("killed");
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", (train_cmd(run) + " >/dev/null 2>&1").c_str(), (char*)nullptr);
    _exit(127);
  }
  // Kill the whole process group once the run is between checkpoints (step 12..28).
  bool killed = false;
  for (int i = 0; i < 6000 && !killed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (!fs::exists(run + "/metrics.jsonl")) continue;
    std::string m = read_file(run + "/metrics.jsonl");
    size_t lines = size_t(std::count(m.begin(), m.end(), '\n'));
    if (lines >= 13) {
      ::kill(pid, SIGKILL);
      std::system(("pkill -9 -f 'out " + run + "' 2>/dev/null").c_str());
      killed = true;
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(killed);
  ASSERT_FALSE(fs::exists(run + "/final")) << "the run finished before it could be killed";
  auto r = run_command(train_cmd(run, "--resume"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(losses(run), straight_run());
}

TEST(TrainCli, CorruptCheckpointAndShardAreRefused) {
  std::string run = test::temp_dir("corrupt");
  ASSERT_EQ(run_command(train_cmd(run, "--stop-at 5")).exit_code, 0);
  std::string ckpt = run + "/ckpt-00000005/model.safetensors";
  std::string bytes = read_file(ckpt);
  bytes[bytes.size() / 2] ^= 0x55;
  std::ofstream(ckpt, std::ios::binary) << bytes;
  auto r = run_command(train_cmd(run, "--resume"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("checksum mismatch"), std::string::npos) << r.err;
  auto fresh = run_command(train_cmd(run));
  EXPECT_EQ(fresh.exit_code, 1);
  EXPECT_NE(fresh.err.find("already holds a run"), std::string::npos) << fresh.err;

  std::string data = test::temp_dir("bad-data");
  fs::copy(dataset(), data, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  std::string shard = read_file(data + "/train_000.bin");
  std::ofstream(data + "/train_000.bin", std::ios::binary) << shard.substr(0, shard.size() - 10);
  EXPECT_THROW(Dataset d(data), Error);
  auto t = run_command(W() + " train --preset 111M --n-layer 1 --n-embd 24 --n-head 3 --data " + data + " --out " +
                       test::temp_dir("x") + " --steps 1");
  EXPECT_EQ(t.exit_code, 1);
  EXPECT_NE(t.err.find("truncated"), std::string::npos) << t.err;
  shard[100] ^= 0x1;
  std::ofstream(data + "/train_000.bin", std::ios::binary) << shard;
  try {
    Dataset d(data);
    FAIL() << "expected a checksum error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("checksum"), std::string::npos) << e.what();
  }
}

TEST(TrainCli, NonFiniteLossStopsAndKeepsTheLastCheckpoint) {
  std::string run = test::temp_dir("nan");
  auto r = run_command(W() + " train --preset 111M --n-layer 2 --n-embd 48 --n-head 3 --n-positions 64 --data " +
                       dataset() + " --out " + run + " --steps 20 --batch 2 --seq 16 --lr 1e30 --warmup 1 " +
                       "--checkpoint-every 1 --quiet");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("non-finite"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("step "), std::string::npos) << r.err;
  std::string latest = read_file(run + "/latest");
  latest.pop_back();
  EXPECT_NO_THROW(load_hf_model(run + "/" + latest));  // intact and loadable
}

TEST(TrainCli, FinalFolderIsAnHfModelAndMupExportKeepsLogits) {
  std::string run = test::temp_dir("mup");
  auto r = run_command(W() + " train --preset 111M --mup --n-layer 2 --n-embd 48 --n-head 3 --n-positions 64 --data " +
                       dataset() + " --out " + run + " --steps 4 --batch 2 --seq 16 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto trained = load_hf_model(run + "/ckpt-00000004");
  auto exported = load_hf_model(run + "/final");
  EXPECT_TRUE(trained->config.is_mup());
  EXPECT_FALSE(exported->config.is_mup());
  EXPECT_FALSE(exported->config.tie_word_embeddings);
  std::string cfg = read_file(run + "/final/config.json");
  EXPECT_EQ(cfg.find("mup_"), std::string::npos) << "the export must be plain HF GPT-2";
  SafetensorsFile f(run + "/final/model.safetensors");
  EXPECT_EQ(f.tensors().at("lm_head.weight").dtype, DType::F32);
  std::vector<int32_t> ids = {464, 3290, 318, 257, 1332, 286, 262, 6334, 13};
  ForwardPass a(*trained), b(*exported);
  const int64_t V = 50257, T = int64_t(ids.size());
  std::vector<float> la(a.forward(ids.data(), 1, T, 0, {}, LogitsRows::All),
                        a.forward(ids.data(), 1, T, 0, {}, LogitsRows::All) + T * V);
  const float* lb = b.forward(ids.data(), 1, T, 0, {}, LogitsRows::All);
  float worst = 0;
  for (int64_t i = 0; i < T * V; ++i) worst = std::max(worst, std::fabs(la[size_t(i)] - lb[i]));
  EXPECT_LT(worst, 1e-4f);
  auto g = run_command(W() + " generate --model " + run + "/final --prompt Hello --max-new-tokens 4 --temperature 0");
  EXPECT_EQ(g.exit_code, 0) << g.err;
}

TEST(TrainCli, GradsMatchesAutogradNorms) {
  for (const char* name : {"f32_gelu", "mup_untied"}) {
    std::string dir = test::reference_dir() + "/" + name;
    std::string out = test::temp_dir("grads") + "/g.json";
    auto r = run_command(W() + " grads --model " + dir + " --batch " + dir + "/grads_batch.json --out " + out);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(read_file(out));
    SafetensorsFile want(dir + "/expected_grads.safetensors");
    EXPECT_NEAR(j["loss"].get<double>() / *reinterpret_cast<const double*>(want.tensors().at("loss").data), 1.0, 1e-4);
    int checked = 0;
    for (const auto& [k, t] : want.tensors()) {
      if (k == "loss") continue;
      const float* g = reinterpret_cast<const float*>(t.data);
      double n = 0;
      for (int64_t i = 0; i < shape_numel(t.shape); ++i) n += double(g[i]) * g[i];
      EXPECT_NEAR(j["grad_norms"][k].get<double>(), std::sqrt(n), 1e-4 * std::sqrt(n) + 1e-9) << name << " " << k;
      ++checked;
    }
    EXPECT_EQ(checked, int(j["grad_norms"].size()));
  }

  std::string bad = test::temp_dir("badbatch") + "/b.json";
  std::ofstream(bad) << "{\"input_ids\": [[1, 2, 99999]]}";
  auto r = run_command(W() + " grads --model " + test::reference_dir() + "/f32_gelu --batch " + bad + " --out /tmp/x.json");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("out of the vocabulary"), std::string::npos) << r.err;
}

// Recomputation runs the same kernels on the same inputs: every gradient bit-identical to keeping
// every activation (gelu and the tanh form, tied and untied μP, two micro-batches), and ten
// training steps with the same losses to the last bit.
TEST(TrainCli, RecomputeGivesBitIdenticalGradientsAndLosses) {
  for (const char* name : {"f32_gelu", "bf16_gelu_new", "mup_untied"}) {
    const std::string dir = test::reference_dir() + "/" + name, out = test::temp_dir("recompute");
    std::string files[3];
    int k = 0;
    for (const char* rc : {"none", "selective", "full"}) {
      files[k] = out + "/" + rc + ".safetensors";
      auto r = run_command(W() + " grads --model " + dir + " --batch " + dir + "/grads_batch.json --out " + out +
                           "/g.json --grads-out " + files[k] + " --micro-batches 2 --recompute " + rc);
      ASSERT_EQ(r.exit_code, 0) << rc << ": " << r.err;
      ++k;
    }
    EXPECT_EQ(read_file(files[1]), read_file(files[0])) << name << ": selective recompute changed a gradient";
    EXPECT_EQ(read_file(files[2]), read_file(files[0])) << name << ": full recompute changed a gradient";
  }
  const std::string run = test::temp_dir("recompute-run"), ref = test::temp_dir("recompute-ref");
  auto r = run_command(train_cmd(run, "--recompute full --stop-at 10"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto q = run_command(train_cmd(ref, "--stop-at 10"));
  ASSERT_EQ(q.exit_code, 0) << q.err;
  const auto got = losses(run), want = losses(ref);
  ASSERT_EQ(got.size(), 11u);  // 10 steps and the validation point at step 10
  EXPECT_EQ(got, want) << "full recompute changed a training loss";
}

TEST(Data, BatchesAreAPureFunctionOfSeedAndIndex) {
  Dataset d(dataset());
  Batch a = d.train_batch(7, 3, 2, 16), b = d.train_batch(7, 3, 2, 16), c = d.train_batch(7, 4, 2, 16);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_NE(a.tokens, c.tokens);
  for (size_t i = 0; i + 1 < 16; ++i) EXPECT_EQ(a.targets[i], a.tokens[i + 1]);
  EXPECT_GT(d.val_tokens(), 100);
}

}  // namespace
}  // namespace wafer
