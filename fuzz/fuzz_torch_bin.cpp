// fuzz/fuzz_torch_bin.cpp: bytes as the data.pkl of a torch.save archive, run by the pickle
// subset. The harness wraps them in a valid ZIP with storages archive/data/0..3 (256 bytes
// each), so mutations reach the unpickler and the tensor checks (offset, size, stride against
// the storage) instead of dying at the CRC.
#include "fuzz.h"
#include "io/torch_bin.h"
#include "zip_writer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wafer;
  std::vector<std::pair<std::string, std::string>> entries = {
      {"archive/data.pkl", std::string(fuzz::bytes(data, size))}};
  for (int k = 0; k < 4; ++k) entries.emplace_back("archive/data/" + std::to_string(k), std::string(256, char(k + 1)));
  const std::string zip = fuzz::make_stored_zip(entries);
  fuzz::expect_wafer_errors([&] {
    TorchBinFile f(std::make_unique<MappedFile>("input.bin", zip));
    unsigned sum = 0;
    for (const auto& [name, t] : f.tensors()) {
      fuzz::require(t.nbytes == size_t(shape_numel(t.shape)) * dtype_size(t.dtype), "nbytes == numel * dtype size");
      for (size_t i = 0; i < t.nbytes; ++i) sum += t.data[i];
    }
    if (sum == 0x7fffffff) std::fputc(' ', stderr);
  });
  return 0;
}
