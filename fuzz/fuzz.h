// fuzz/fuzz.h: what every harness shares. A harness feeds libFuzzer's bytes to one loader as the
// file a user would point wafer at. A wafer::Error is the loader's correct answer to bad input;
// any other exception (nlohmann's type_error, std::bad_alloc from a declared size, out_of_range)
// escapes to libFuzzer, which reports it as a crash, as it does sanitizer reports and timeouts.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/error.h"

namespace wafer::fuzz {

inline std::string_view bytes(const uint8_t* data, size_t size) { return {reinterpret_cast<const char*>(data), size}; }

// WAFER_FUZZ_VERBOSE=1 prints each rejection, to see why a seed or a replayed input is refused.
template <typename F>
void expect_wafer_errors(F&& f) {
  static const bool verbose = std::getenv("WAFER_FUZZ_VERBOSE") != nullptr;
  try {
    f();
    if (verbose) std::fprintf(stderr, "fuzz: accepted\n");
  } catch (const wafer::Error& e) {
    if (verbose) std::fprintf(stderr, "fuzz: rejected: %s\n", e.what());
  }
}

// Crashes (for libFuzzer to report) when a property the loader promises does not hold.
inline void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz: property violated: %s\n", what);
    __builtin_trap();
  }
}

}  // namespace wafer::fuzz
