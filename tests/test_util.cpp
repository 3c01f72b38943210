// tests/test_util.cpp: paths, subprocesses and the reference-model fixture.
#include "test_util.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>

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
