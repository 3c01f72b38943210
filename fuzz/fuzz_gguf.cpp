// fuzz/fuzz_gguf.cpp: bytes as a GGUF file (llama.cpp's container): header, key-values, tensor
// infos, alignment, data. Every accepted tensor's bytes are read, and the smaller ones are
// dequantized to fp32, so ASan sees any count or range the input does not back.
#include <vector>

#include "fuzz.h"
#include "io/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wafer;
  fuzz::expect_wafer_errors([&] {
    GgufFile f(std::span<const uint8_t>(data, size), "input.gguf");
    unsigned sum = 0;
    for (const auto& t : f.tensors()) {
      fuzz::require(t.nbytes == gguf_nbytes(t.type, t.ne), "nbytes == gguf_nbytes(type, ne)");
      for (size_t i = 0; i < t.nbytes; ++i) sum += t.data[i];
      int64_t n = 1;
      bool small = true;
      for (int64_t d : t.ne) small = small && !__builtin_mul_overflow(n, d, &n) && n <= (1 << 16);
      if (small) {
        std::vector<float> out(static_cast<size_t>(n));
        gguf_tensor_to_f32(out.data(), t);
      }
    }
    for (const auto& [key, v] : f.metadata()) sum += unsigned(v.size());
    if (sum == 0x7fffffff) std::fputc(' ', stderr);
  });
  return 0;
}
