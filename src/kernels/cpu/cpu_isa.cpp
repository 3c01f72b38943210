// kernels/cpu/cpu_isa.cpp: CPUID through GCC's __builtin_cpu_supports, capped by WAFER_MAX_ISA.
#include "kernels/cpu/cpu_isa.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace wafer {

namespace {
Isa cpu_best() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
    return Isa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;
  return Isa::Generic;
}

Isa cap(Isa a, Isa b) { return static_cast<int>(a) < static_cast<int>(b) ? a : b; }

Isa detect() {
  Isa isa = cpu_best();
  if (const char* env = std::getenv("WAFER_MAX_ISA")) {
    if (!std::strcmp(env, "avx2")) isa = cap(isa, Isa::Avx2);
    if (!std::strcmp(env, "generic")) isa = Isa::Generic;
  }
  return isa;
}

std::atomic<int>& current() {
  static std::atomic<int> isa{static_cast<int>(detect())};
  return isa;
}
}  // namespace

Isa kernel_isa() { return static_cast<Isa>(current().load(std::memory_order_relaxed)); }

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "generic";
  }
}

Isa set_kernel_isa(Isa isa) {
  const Isa got = cap(isa, cpu_best());
  current().store(static_cast<int>(got));
  return got;
}

}  // namespace wafer
