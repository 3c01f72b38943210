// fuzz/fuzz_token_shard.cpp: bytes as a token shard (train_NNN.bin: 32-byte header, ids). Every
// token of an accepted shard is read, so ASan sees a count the bytes do not back.
#include "fuzz.h"
#include "train/data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wafer;
  for (bool verify : {true, false})
    fuzz::expect_wafer_errors([&] {
      TokenShard s(std::make_unique<MappedFile>("train_000.bin", fuzz::bytes(data, size)), verify);
      int64_t sum = 0;
      for (int64_t i = 0; i < s.size(); ++i) sum += s[i];
      if (sum == 0x7fffffff) std::fputc(' ', stderr);
    });
  return 0;
}
