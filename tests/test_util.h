// tests/test_util.h: what the tests share: paths, running commands, temp folders, the
// PyTorch reference models (made once per test binary by tools/pyref/make_reference.py).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace wafer::test {

std::string source_dir();
std::string wafer_binary();
std::string gpt2_tokenizer_dir();
// A fresh empty folder under the build's temp area, removed at exit.
std::string temp_dir(const std::string& name);

struct CommandResult {
  int exit_code;
  std::string out;  // stdout
  std::string err;  // stderr
};
// n samples of N(0, scale²) from a seeded generator (the same numbers on every run).
std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f);

// Runs `cmd` with /bin/sh, `input` on stdin; captures stdout and stderr.
CommandResult run_command(const std::string& cmd, const std::string& input = "");

// The per-step training losses in a run folder's metrics.jsonl.
std::vector<double> train_losses(const std::string& run);
// The exactness contract of the parallel engine: the loss, the gradient norm (the JSON of
// `wafer grads --out`) and every gradient tensor (`--grads-out` safetensors) of `got` equal
// `want`'s within 1e-5 relative. `what` names the layout in failure messages.
void expect_same_grads(const std::string& got_json, const std::string& got_safetensors, const std::string& want_json,
                       const std::string& want_safetensors, const std::string& what);

// The folder of reference models and expected outputs written by tools/pyref/make_reference.py;
// made on first use, shared by all tests in the process.
std::string reference_dir();

}  // namespace wafer::test
