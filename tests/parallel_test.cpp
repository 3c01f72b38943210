// tests/parallel_test.cpp: every parallel layout computes what one rank computes. Each test runs
// `wafer` under mpirun (1 thread per rank, --oversubscribe) and compares with the single-rank
// results made once by the Setup test (a ctest fixture): loss and every gradient tensor within
// 1e-5 relative, ten training steps' losses within 1e-5 relative, greedy tokens identical; plus
// resharded resume, layout errors and a rank killed mid-step.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "core/file.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace wafer {
namespace {

using test::run_command;
using test::train_losses;
namespace fs = std::filesystem;

std::string W() { return test::wafer_binary(); }
const std::string& dir() {
  static const std::string d = WAFER_PARALLEL_DIR;
  return d;
}
std::string mpirun(int ranks) {
  return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 mpirun -np " +
         std::to_string(ranks) + " --oversubscribe --mca btl_vader_single_copy_mechanism none " + W();
}
std::string model_a() { return dir() + "/model-4L4H"; }  // 4 blocks, 4 heads, C = 64
std::string model_b() { return dir() + "/model-3L3H"; }  // 3 blocks, 3 heads, C = 48

// Ten training steps: 4 sequences of 32 tokens in 2 micro-batches per step.
std::string train_args(const std::string& out, int64_t steps = 10) {
  return " train --init " + model_a() + " --data " + dir() + "/data --out " + out + " --steps " +
         std::to_string(steps) + " --batch 4 --seq 32 --micro-batches 2 --lr 2e-3 --warmup 2 --eval-every 0 "
         "--checkpoint-every 5 --quiet";
}

// The single-rank results every layout is compared with (ctest runs this first, as a fixture).
TEST(Setup, DISABLED_MakeModelsAndReferences) {
  fs::remove_all(dir());
  fs::create_directories(dir());
  const std::string shape = " --preset 111M --n-positions 64 --seed 7 --n-inner 0";
  ASSERT_EQ(run_command(W() + " init" + shape + " --n-layer 4 --n-embd 64 --n-head 4 --out " + model_a()).exit_code, 0);
  ASSERT_EQ(run_command(W() + " init" + shape + " --n-layer 3 --n-embd 48 --n-head 3 --out " + model_b()).exit_code, 0);
  ASSERT_EQ(run_command(W() + " init --preset 256M --n-layer 1 --n-embd 68 --n-head 17 --n-positions 64 --out " + dir() +
                        "/model-17H").exit_code, 0);
  // 12 sequences of 32 tokens: divisible by dp 2 x 2 micro-batches, by 4 micro-batches, and
  // 12·32 rows by tp 3 (sequence parallelism shards rows).
  std::mt19937 rng(5);
  nlohmann::json rows = nlohmann::json::array();
  for (int b = 0; b < 12; ++b) {
    nlohmann::json r = nlohmann::json::array();
    for (int t = 0; t < 32; ++t) r.push_back(int(rng() % 50257));
    rows.push_back(r);
  }
  write_file_atomic(dir() + "/batch.json", nlohmann::json{{"input_ids", rows}}.dump());
  for (const std::string m : {"a", "b"}) {
    auto r = run_command(W() + " grads --model " + (m == "a" ? model_a() : model_b()) + " --batch " + dir() +
                         "/batch.json --out " + dir() + "/ref-" + m + ".json --grads-out " + dir() + "/ref-" + m +
                         ".safetensors");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  auto p = run_command(W() + " prepare --input /usr/share/games/fortunes/science --tokenizer " +
                       test::gpt2_tokenizer_dir() + " --out " + dir() + "/data --val-fraction 0.05");
  ASSERT_EQ(p.exit_code, 0) << p.err;
  auto t = run_command(W() + train_args(dir() + "/ref-train"));
  ASSERT_EQ(t.exit_code, 0) << t.err;
  auto g = run_command(W() + " generate --model " + model_a() + " --ids 464,3290,318 --max-new-tokens 12 "
                       "--temperature 0 --print-ids");
  ASSERT_EQ(g.exit_code, 0) << g.err;
  write_file_atomic(dir() + "/ref-generate.txt", g.out);
}

// Loss and every gradient of a layout against one rank's.
void expect_same_grads(const std::string& model, int ranks, const std::string& flags) {
  const std::string which = model == "a" ? model_a() : model_b();
  const std::string out = test::temp_dir("grads");
  auto r = run_command(mpirun(ranks) + " grads --model " + which + " --batch " + dir() + "/batch.json --out " + out +
                       "/g.json --grads-out " + out + "/g.safetensors " + flags);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  test::expect_same_grads(out + "/g.json", out + "/g.safetensors", dir() + "/ref-" + model + ".json",
                          dir() + "/ref-" + model + ".safetensors", flags);
}

void expect_same_training(int ranks, const std::string& flags) {
  const std::string run = test::temp_dir("train") + "/run";
  auto r = run_command(mpirun(ranks) + train_args(run) + " " + flags);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<double> got = train_losses(run), want = train_losses(dir() + "/ref-train");
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i] / want[i], 1.0, 1e-5) << "step " << i + 1 << " " << flags;
  // Each step reports its pipeline bubble and the bytes each kind of parallelism moved.
  std::istringstream in(read_file(run + "/metrics.jsonl"));
  std::string line;
  std::getline(in, line);
  auto first = nlohmann::json::parse(line);
  EXPECT_TRUE(first.contains("bubble") && first.contains("bubble_ideal") && first.contains("bytes")) << line;
}

struct GradCase {
  const char* name;
  const char* model;
  int ranks;
  const char* flags;
};
void PrintTo(const GradCase& c, std::ostream* os) { *os << c.ranks << " ranks: " << c.flags; }
class Grads : public testing::TestWithParam<GradCase> {};
TEST_P(Grads, MatchOneRank) { expect_same_grads(GetParam().model, GetParam().ranks, GetParam().flags); }
INSTANTIATE_TEST_SUITE_P(
    Layouts, Grads,
    testing::Values(GradCase{"tp2", "a", 2, "--tp 2"}, GradCase{"tp2_sp", "a", 2, "--tp 2 --sp"},
                    GradCase{"pp2_1f1b", "a", 2, "--pp 2 --micro-batches 4"},
                    GradCase{"pp2_gpipe", "a", 2, "--pp 2 --micro-batches 4 --schedule gpipe"},
                    GradCase{"pp2_uneven", "a", 2, "--pp 2 --stage-layers 3,1 --micro-batches 4"},
                    GradCase{"cp2", "a", 2, "--cp 2"}, GradCase{"dp2", "a", 2, "--dp 2 --micro-batches 2"},
                    GradCase{"tp2_pp2", "a", 4, "--tp 2 --pp 2 --micro-batches 2"},
                    GradCase{"tp2_pp2_sp_gpipe", "a", 4, "--tp 2 --pp 2 --sp --micro-batches 2 --schedule gpipe"},
                    GradCase{"tp2_cp2", "a", 4, "--tp 2 --cp 2"}, GradCase{"tp2_cp2_sp", "a", 4, "--tp 2 --cp 2 --sp"},
                    GradCase{"pp2_dp2", "a", 4, "--pp 2 --dp 2 --micro-batches 2"},
                    GradCase{"cp2_dp2", "a", 4, "--cp 2 --dp 2"},
                    GradCase{"tp2_pp2_cp2", "a", 8, "--tp 2 --pp 2 --cp 2 --sp --micro-batches 2"},
                    GradCase{"tp2_pp2_recompute_full", "a", 4, "--tp 2 --pp 2 --micro-batches 2 --recompute full"},
                    GradCase{"cp2_sp_recompute_selective", "a", 4, "--tp 2 --cp 2 --sp --recompute selective"},
                    GradCase{"tp3", "b", 3, "--tp 3"}, GradCase{"tp3_sp", "b", 3, "--tp 3 --sp"},
                    GradCase{"pp3_1f1b", "b", 3, "--pp 3 --micro-batches 3"},
                    GradCase{"pp3_gpipe", "b", 3, "--pp 3 --micro-batches 3 --schedule gpipe"}),
    [](const testing::TestParamInfo<GradCase>& i) { return std::string(i.param.name); });

struct TrainCase {
  const char* name;
  int ranks;
  const char* flags;
};
void PrintTo(const TrainCase& c, std::ostream* os) { *os << c.ranks << " ranks: " << c.flags; }
class Training : public testing::TestWithParam<TrainCase> {};
TEST_P(Training, TenStepsMatchOneRank) { expect_same_training(GetParam().ranks, GetParam().flags); }
INSTANTIATE_TEST_SUITE_P(Layouts, Training,
                         testing::Values(TrainCase{"tp2_sp", 2, "--tp 2 --sp"}, TrainCase{"pp2_gpipe", 2, "--pp 2 --schedule gpipe"},
                                         TrainCase{"cp2", 2, "--cp 2"}, TrainCase{"dp2", 2, "--dp 2"},
                                         TrainCase{"zero1_dp2", 2, "--dp 2 --zero 1"},
                                         TrainCase{"tp2_pp2_1f1b", 4, "--tp 2 --pp 2"},
                                         TrainCase{"zero1_dp2_tp2", 4, "--dp 2 --tp 2 --zero 1"}),
                         [](const testing::TestParamInfo<TrainCase>& i) { return std::string(i.param.name); });

TEST(Generate, GreedyTokensMatchOneRank) {
  for (const char* flags : {"--tp 2", "--pp 2"}) {
    auto g = run_command(mpirun(2) + " generate --model " + model_a() +
                         " --ids 464,3290,318 --max-new-tokens 12 --temperature 0 --print-ids " + flags);
    ASSERT_EQ(g.exit_code, 0) << g.err;
    EXPECT_EQ(g.out, read_file(dir() + "/ref-generate.txt")) << flags;
  }
}

// Every tensor of two safetensors files: the same names and shapes, values within 1e-5 of the
// tensor's largest magnitude plus 1e-6 of the file's (fp32 round-off of another summation order;
// the floor covers tensors whose exact gradient is zero, such as the key bias, where AdamW turns
// round-off into steps of noise).
void expect_same_tensors(const std::string& a, const std::string& b, const std::string& what) {
  SafetensorsFile fa(a), fb(b);
  ASSERT_EQ(fa.tensors().size(), fb.tensors().size()) << what << ": " << a;
  double file_max = 0;
  for (const auto& [name, t] : fb.tensors())
    for (size_t i = 0; i < size_t(shape_numel(t.shape)); ++i)
      file_max = std::max(file_max, double(std::fabs(reinterpret_cast<const float*>(t.data)[i])));
  for (const auto& [name, ta] : fa.tensors()) {
    auto it = fb.tensors().find(name);
    ASSERT_NE(it, fb.tensors().end()) << what << ": " << name << " missing from " << b;
    const TensorRef& tb = it->second;
    ASSERT_EQ(ta.shape, tb.shape) << what << ": " << name;
    ASSERT_EQ(ta.dtype, DType::F32) << name;
    const auto* x = reinterpret_cast<const float*>(ta.data);
    const auto* y = reinterpret_cast<const float*>(tb.data);
    const size_t n = size_t(shape_numel(ta.shape));
    double scale = 0, diff = 0;
    for (size_t i = 0; i < n; ++i) scale = std::max(scale, double(std::fabs(y[i])));
    for (size_t i = 0; i < n; ++i) diff = std::max(diff, double(std::fabs(x[i] - y[i])));
    EXPECT_LE(diff, 1e-5 * scale + 1e-6 * file_max) << what << ": tensor " << name << " of " << a;
  }
}

TEST(Resharding, SavedUnderTp2Pp2ResumesUnderOtherLayouts) {
  const std::string base = test::temp_dir("reshard");
  auto r = run_command(mpirun(4) + train_args(base + "/run") + " --tp 2 --pp 2 --stop-at 5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<double> want = train_losses(dir() + "/ref-train");
  std::vector<std::pair<std::string, std::string>> runs;  // (run folder, layout)
  for (auto [ranks, flags] : {std::pair{4, "--pp 4"}, std::pair{2, "--dp 2"}, std::pair{2, "--dp 2 --zero 1"},
                              std::pair{1, ""}}) {
    const std::string run = base + "/resume-" + std::to_string(runs.size());
    runs.emplace_back(run, flags);
    fs::copy(base + "/run", run, fs::copy_options::recursive);
    auto c = run_command((ranks == 1 ? W() : mpirun(ranks)) + train_args(run) + " --resume " + flags);
    ASSERT_EQ(c.exit_code, 0) << flags << ": " << c.err;
    std::vector<double> got = train_losses(run);
    ASSERT_EQ(got.size(), want.size()) << flags;
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_NEAR(got[i] / want[i], 1.0, 1e-5) << "step " << i + 1 << " resumed under '" << flags << "'";
  }
  // What each layout wrote, tensor by tensor from its shards (ZeRO-1: from each rank's moment
  // partition), is the one rank's model and optimizer state.
  const std::string one = runs.back().first;
  for (const auto& [run, flags] : runs) {
    expect_same_tensors(run + "/final/model.safetensors", one + "/final/model.safetensors", flags);
    expect_same_tensors(run + "/ckpt-00000010/optimizer.safetensors", one + "/ckpt-00000010/optimizer.safetensors",
                        flags);
  }
}

TEST(Fault, KilledRankEndsEveryRankWithAMessage) {
  const std::string run = test::temp_dir("fault") + "/run";
  const auto t0 = std::chrono::steady_clock::now();
  auto r = run_command("WAFER_FAULT=kill:1:3 " + mpirun(2) + train_args(run) + " --tp 2");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.exit_code, 0);
  EXPECT_LT(seconds, 60);
  // mpirun names the dead rank; the survivor names itself, the operation and the step.
  EXPECT_NE(r.err.find("rank 1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("wafer: error: rank 0"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("at step 3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("all_reduce"), std::string::npos) << r.err;
}

TEST(Fault, StuckRankTimesOutNamingRankOperationAndStep) {
  const std::string run = test::temp_dir("stall") + "/run";
  const auto t0 = std::chrono::steady_clock::now();
  auto r = run_command("WAFER_FAULT=stall:1:3 " + mpirun(2) + train_args(run) + " --pp 2 --comm-timeout 5");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.exit_code, 0);
  EXPECT_LT(seconds, 60);
  EXPECT_NE(r.err.find("at step 3 timed out after 5 s: rank 1 is dead or stuck"), std::string::npos) << r.err;
}

// --check-replicas: a clean run passes its checks and trains as one rank does; one rank's copy
// corrupted after an update (WAFER_FAULT=corrupt) stops the run at that step, naming the tensor,
// the group and the ranks, before the step's checkpoint.
TEST(ReplicaCheck, CleanRunPassesAndMatchesOneRank) {
  const std::string run = test::temp_dir("replicas-clean") + "/run";
  auto r = run_command(mpirun(4) + train_args(run) + " --dp 2 --tp 2 --zero 1 --check-replicas 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<double> want = train_losses(dir() + "/ref-train"), got = train_losses(run);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i] / want[i], 1.0, 1e-5) << "step " << i + 1;
}

void expect_caught(const std::string& layout, int ranks, const std::string& fault, const std::string& tensor,
                   const std::string& group_words, const std::string& ranks_words) {
  const std::string run = test::temp_dir("replicas-bad") + "/run";
  auto r = run_command("WAFER_FAULT=" + fault + ":" + tensor + " " + mpirun(ranks) + train_args(run) + " " + layout +
                       " --check-replicas 1");
  EXPECT_NE(r.exit_code, 0) << layout;
  EXPECT_NE(r.err.find("[check-replicas] step 3: tensor '" + tensor + "' differs between the " + group_words),
            std::string::npos) << layout << ": " << r.err;
  EXPECT_NE(r.err.find(ranks_words), std::string::npos) << layout << ": " << r.err;
  EXPECT_EQ(train_losses(run).size(), 3u) << layout << ": the run went on past the mismatch";
  EXPECT_FALSE(fs::exists(run + "/ckpt-00000005")) << layout;
}

TEST(ReplicaCheck, CorruptedDataParallelReplicaIsCaught) {
  expect_caught("--dp 4", 4, "corrupt:1:3", "transformer.h.1.mlp.c_fc.weight", "data- and context-parallel replicas",
                "world ranks 0, 2, 3 hold hash ");
  expect_caught("--dp 2 --cp 2 --zero 1", 4, "corrupt:2:3", "transformer.h.0.attn.c_attn.bias",
                "data- and context-parallel replicas", "; world rank 2 holds hash ");
}

TEST(ReplicaCheck, CorruptedTensorParallelWholeTensorIsCaught) {
  expect_caught("--tp 2", 2, "corrupt:1:3", "transformer.ln_f.weight", "tensor-parallel ranks", "world rank 1 holds hash");
}

TEST(ReplicaCheck, CorruptedTiedEmbeddingCopyIsCaught) {
  expect_caught("--pp 2", 2, "corrupt:1:3", "transformer.wte.weight", "first and last pipeline stages",
                "world rank 1 holds hash");
}

TEST(LayoutErrors, ClearMessagesBeforeAnyWork) {
  auto world = run_command(W() + " grads --model " + model_a() + " --batch " + dir() + "/batch.json --out /dev/null --tp 2");
  EXPECT_EQ(world.exit_code, 1);
  EXPECT_NE(world.err.find("to equal the number of ranks, found 1"), std::string::npos) << world.err;
  auto heads = run_command(mpirun(2) + " grads --model " + dir() + "/model-17H --batch " + dir() +
                           "/batch.json --out /dev/null --tp 2");
  EXPECT_NE(heads.exit_code, 0);
  EXPECT_NE(heads.err.find("must divide the model's 17 attention heads"), std::string::npos) << heads.err;
  auto cp = run_command(mpirun(3) + " grads --model " + model_a() + " --batch " + dir() + "/batch.json --out /dev/null --cp 3");
  EXPECT_NE(cp.exit_code, 0);
  EXPECT_NE(cp.err.find("must be a multiple of 6; found 32"), std::string::npos) << cp.err;
  auto pp = run_command(mpirun(5) + " grads --model " + model_a() + " --batch " + dir() + "/batch.json --out /dev/null --pp 5");
  EXPECT_NE(pp.exit_code, 0);
  EXPECT_NE(pp.err.find("more pipeline stages than the model's 4 layers"), std::string::npos) << pp.err;
}

TEST(Inference, LogitsAndPerplexityMatchOneRank) {
  const std::string out = test::temp_dir("infer");
  const std::string ids = " --ids 464,3290,318,257,1332,286,262,6334";
  ASSERT_EQ(run_command(W() + " logits --model " + model_a() + ids + " --out " + out + "/one.safetensors").exit_code, 0);
  for (auto [ranks, flags] : {std::pair{2, "--tp 2"}, std::pair{2, "--cp 2"}, std::pair{4, "--tp 2 --pp 2"}}) {
    auto r = run_command(mpirun(ranks) + " logits --model " + model_a() + ids + " --out " + out + "/many.safetensors " + flags);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    SafetensorsFile a(out + "/one.safetensors"), b(out + "/many.safetensors");
    const float* x = reinterpret_cast<const float*>(a.tensors().at("logits").data);
    const float* y = reinterpret_cast<const float*>(b.tensors().at("logits").data);
    float worst = 0;
    for (size_t i = 0; i < a.tensors().at("logits").nbytes / 4; ++i) worst = std::max(worst, std::fabs(x[i] - y[i]));
    EXPECT_LT(worst, 1e-5f) << flags;
  }
  write_file_atomic(out + "/text.txt", read_file("/usr/share/games/fortunes/science").substr(0, 3000));
  const std::string eval = " eval --model " + model_a() + " --tokenizer " + test::gpt2_tokenizer_dir() + " --text " +
                           out + "/text.txt --ctx 64 --stride 32 --json";
  auto one = run_command(W() + eval);
  ASSERT_EQ(one.exit_code, 0) << one.err;
  auto many = run_command(mpirun(4) + eval + " --cp 2 --tp 2");
  ASSERT_EQ(many.exit_code, 0) << many.err;
  auto a = nlohmann::json::parse(one.out), b = nlohmann::json::parse(many.out);
  EXPECT_EQ(a["scored"], b["scored"]);
  EXPECT_NEAR(a["mean_nll"].get<double>() / b["mean_nll"].get<double>(), 1.0, 1e-5);
}

}  // namespace
}  // namespace wafer
