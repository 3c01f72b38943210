// tests/fuzz_regress_test.cpp: the fuzz harnesses (fuzz/) replayed in the ordinary suites, so the
// GCC and ASan builds check every input a fixed finding left in fuzz/regressions/ and every seed
// in fuzz/corpus/ without clang or libFuzzer. Each harness file is compiled here with its entry
// points renamed; a harness catches wafer::Error itself, so anything reaching the test is a bug.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "core/file.h"
#include "test_util.h"

#define WAFER_FUZZ_TOKENIZER_DIR WAFER_SOURCE_DIR "/third_party/gpt2-tokenizer"
#define LLVMFuzzerTestOneInput fuzz_one_safetensors
#include "../fuzz/fuzz_safetensors.cpp"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_zip
#include "../fuzz/fuzz_zip.cpp"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_torch_bin
#include "../fuzz/fuzz_torch_bin.cpp"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_config
#include "../fuzz/fuzz_config.cpp"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_token_shard
#include "../fuzz/fuzz_token_shard.cpp"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_state_json
#include "../fuzz/fuzz_state_json.cpp"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_tokenizer_load
#include "../fuzz/fuzz_tokenizer_load.cpp"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_gguf
#include "../fuzz/fuzz_gguf.cpp"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_data_manifest
#define LLVMFuzzerInitialize fuzz_init_data_manifest
#include "../fuzz/fuzz_data_manifest.cpp"
#undef LLVMFuzzerTestOneInput
#undef LLVMFuzzerInitialize
#define LLVMFuzzerTestOneInput fuzz_one_tokenizer_encode
#define LLVMFuzzerInitialize fuzz_init_tokenizer_encode
#include "../fuzz/fuzz_tokenizer_encode.cpp"
#undef LLVMFuzzerTestOneInput
#undef LLVMFuzzerInitialize
#define LLVMFuzzerTestOneInput fuzz_one_openai_request
#define LLVMFuzzerInitialize fuzz_init_openai_request
#include "../fuzz/fuzz_openai_request.cpp"
#undef LLVMFuzzerTestOneInput
#undef LLVMFuzzerInitialize

namespace wafer {
namespace {

namespace fs = std::filesystem;

using OneInput = int (*)(const uint8_t*, size_t);

// Runs `one` over every file of fuzz/corpus/<name>/ and fuzz/regressions/<name>/; returns how many.
int replay(const std::string& name, OneInput one) {
  int n = 0;
  for (const char* kind : {"corpus", "regressions"}) {
    const fs::path dir = fs::path(WAFER_SOURCE_DIR) / "fuzz" / kind / name;
    if (!fs::is_directory(dir)) continue;
    for (const auto& e : fs::directory_iterator(dir)) {
      SCOPED_TRACE(e.path().string());
      const std::string bytes = read_file(e.path().string());
      EXPECT_NO_THROW(one(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
      ++n;
    }
  }
  return n;
}

TEST(FuzzRegressions, EveryHarnessReplaysItsSeedsAndFindings) {
  fuzz_init_data_manifest(nullptr, nullptr);
  fuzz_init_tokenizer_encode(nullptr, nullptr);
  fuzz_init_openai_request(nullptr, nullptr);
  const std::map<std::string, OneInput> harnesses = {
      {"safetensors", fuzz_one_safetensors},
      {"zip", fuzz_one_zip},
      {"torch_bin", fuzz_one_torch_bin},
      {"config", fuzz_one_config},
      {"token_shard", fuzz_one_token_shard},
      {"state_json", fuzz_one_state_json},
      {"tokenizer_load", fuzz_one_tokenizer_load},
      {"data_manifest", fuzz_one_data_manifest},
      {"tokenizer_encode", fuzz_one_tokenizer_encode},
      {"gguf", fuzz_one_gguf},
      {"openai_request", fuzz_one_openai_request},
  };
  for (const auto& [name, one] : harnesses) {
    SCOPED_TRACE(name);
    EXPECT_GT(replay(name, one), 0) << "no seeds for harness " << name;
  }
}

}  // namespace
}  // namespace wafer
