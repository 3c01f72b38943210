// tests/test_util.cpp: paths, subprocesses and the reference-model fixture.
#include "test_util.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "core/file.h"
#include "io/safetensors.h"

namespace wafer::test {

namespace fs = std::filesystem;

std::string source_dir() { return WAFER_SOURCE_DIR; }
std::string wafer_binary() { return WAFER_BINARY; }
std::string gpt2_tokenizer_dir() { return source_dir() + "/third_party/gpt2-tokenizer"; }

namespace {
fs::path temp_root() {
  static fs::path root = [] {
    fs::path p = fs::temp_directory_path() / ("wafer-test-" + std::to_string(::getpid()));
    fs::create_directories(p);
    std::atexit([] { std::error_code ec; fs::remove_all(fs::temp_directory_path() / ("wafer-test-" + std::to_string(::getpid())), ec); });
    return p;
  }();
  return root;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
}  // namespace

std::string temp_dir(const std::string& name) {
  fs::path p = temp_root() / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::vector<float> randn(size_t n, uint64_t seed, float scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

CommandResult run_command(const std::string& cmd, const std::string& input) {
  std::string dir = temp_dir("cmd");
  std::string in = dir + "/in", out = dir + "/out", err = dir + "/err";
  std::ofstream(in, std::ios::binary) << input;
  std::string full = "(" + cmd + ") <'" + in + "' >'" + out + "' 2>'" + err + "'";
  int status = std::system(full.c_str());
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return {code, slurp(out), slurp(err)};
}

std::vector<double> train_losses(const std::string& run) {
  std::vector<double> v;
  std::istringstream in(slurp(run + "/metrics.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) v.push_back(j["loss"].get<double>());
  }
  return v;
}

void expect_same_grads(const std::string& got_json, const std::string& got_safetensors, const std::string& want_json,
                       const std::string& want_safetensors, const std::string& what) {
  auto got = nlohmann::json::parse(slurp(got_json));
  auto want = nlohmann::json::parse(slurp(want_json));
  EXPECT_NEAR(got["loss"].get<double>() / want["loss"].get<double>(), 1.0, 1e-5) << what;
  EXPECT_NEAR(got["grad_norm"].get<double>() / want["grad_norm"].get<double>(), 1.0, 1e-5) << what;
  SafetensorsFile g(got_safetensors), w(want_safetensors);
  ASSERT_EQ(g.tensors().size(), w.tensors().size()) << what;
  for (const auto& [name, wt] : w.tensors()) {
    const TensorRef& gt = g.tensors().at(name);
    ASSERT_EQ(gt.shape, wt.shape) << name;
    const float* a = reinterpret_cast<const float*>(gt.data);
    const float* b = reinterpret_cast<const float*>(wt.data);
    const size_t n = wt.nbytes / sizeof(float);
    double scale = 0, diff = 0;
    for (size_t i = 0; i < n; ++i) scale = std::max(scale, double(std::fabs(b[i])));
    for (size_t i = 0; i < n; ++i) diff = std::max(diff, double(std::fabs(a[i] - b[i])));
    EXPECT_LE(diff, 1e-5 * scale) << name << " under " << what << ": max |diff| " << diff << ", max |grad| " << scale;
  }
}

std::string reference_dir() {
  static std::once_flag once;
  static std::string dir;
  std::call_once(once, [] {
    // Under ctest the fixture test `make_reference` has made it already.
    if (fs::exists(std::string(WAFER_REFERENCE_DIR) + "/expected.json")) {
      dir = WAFER_REFERENCE_DIR;
      return;
    }
    dir = temp_dir("reference");
    std::string cmd = std::string(WAFER_PYTHON) + " " + source_dir() + "/tools/pyref/make_reference.py --out " + dir +
                      " --tokenizer " + gpt2_tokenizer_dir();
    CommandResult r = run_command(cmd);
    if (r.exit_code != 0) {
      std::fprintf(stderr, "make_reference.py failed:\n%s\n%s\n", r.out.c_str(), r.err.c_str());
      std::abort();
    }
  });
  return dir;
}

}  // namespace wafer::test
