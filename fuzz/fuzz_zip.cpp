// fuzz/fuzz_zip.cpp: bytes as a ZIP archive (what torch.save writes): the end record, zip64
// records, the central directory, then every entry read (stored or inflated, CRC-checked).
#include "fuzz.h"
#include "io/zip_archive.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wafer;
  fuzz::expect_wafer_errors([&] {
    ZipArchive zip(std::make_unique<MappedFile>("input.zip", fuzz::bytes(data, size)));
    for (const auto& name : zip.names()) {
      fuzz::expect_wafer_errors([&] {
        std::string_view v = zip.read(name);
        unsigned sum = 0;
        for (char c : v) sum += uint8_t(c);
        if (sum == 0x7fffffff) std::fputc(' ', stderr);
      });
    }
  });
  return 0;
}
