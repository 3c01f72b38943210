// fuzz/fuzz_data_manifest.cpp: bytes as a dataset's manifest.json, next to two real shards
// (train_000.bin: 64 tokens, val_000.bin: 16, vocabulary 100). Dataset reads the manifest from
// its folder, so each input is written to a per-process folder on /dev/shm; an accepted dataset
// then serves a training and a validation batch.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "core/file.h"
#include "fuzz.h"
#include "train/data.h"

namespace {
std::string g_dir;

void remove_dir() { std::filesystem::remove_all(g_dir); }
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_dir = "/dev/shm/wafer-fuzz-manifest-" + std::to_string(::getpid());
  std::filesystem::create_directories(g_dir);
  std::atexit(remove_dir);
  std::vector<int32_t> train(64), val(16);
  for (size_t i = 0; i < train.size(); ++i) train[i] = int32_t(i * 7 % 100);
  for (size_t i = 0; i < val.size(); ++i) val[i] = int32_t(i * 3 % 100);
  wafer::write_shard(g_dir + "/train_000.bin", train, 100);
  wafer::write_shard(g_dir + "/val_000.bin", val, 100);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wafer;
  write_file_atomic(g_dir + "/manifest.json", std::string(fuzz::bytes(data, size)));
  fuzz::expect_wafer_errors([&] {
    Dataset d(g_dir);
    fuzz::require(d.train_tokens() >= 0 && d.val_tokens() >= 0, "token counts >= 0");
    if (d.train_tokens() >= 5) d.train_batch(1, 0, 2, 4);
    if (d.val_tokens() >= 5) d.val_batch(0, 2, 4);
  });
  return 0;
}
