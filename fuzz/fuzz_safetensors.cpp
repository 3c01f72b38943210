// fuzz/fuzz_safetensors.cpp: bytes as a .safetensors file (u64 header length, JSON header, data).
// Every accepted tensor's bytes are read, so ASan sees any range outside the input.
#include "fuzz.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wafer;
  fuzz::expect_wafer_errors([&] {
    SafetensorsFile f(std::make_unique<MappedFile>("input.safetensors", fuzz::bytes(data, size)));
    unsigned sum = 0;
    for (const auto& [name, t] : f.tensors()) {
      fuzz::require(t.nbytes == size_t(shape_numel(t.shape)) * dtype_size(t.dtype), "nbytes == numel * dtype size");
      for (size_t i = 0; i < t.nbytes; ++i) sum += t.data[i];
    }
    if (sum == 0x7fffffff) std::fputc(' ', stderr);  // keeps the reads
  });
  return 0;
}
