// kernels/cpu/cpu_isa.cpp: CPUID through GCC's __builtin_cpu_supports, capped by WAFER_MAX_ISA.
#include "kernels/cpu/cpu_isa.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace wafer {

namespace {
// AMX-TILE and AMX-BF16 (CPUID leaf 7, EDX bits 24 and 22), AVX512-BF16 beside them (the tiles'
// callers round activations with it), and Linux's permission to use the tile state, which a
// process must ask for once (arch_prctl ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA, 18).
// CPUID leaf 7's EDX (0 where the leaf is missing).
unsigned leaf7_edx() {
  unsigned a, b, c, d;
  return __get_cpuid_count(7, 0, &a, &b, &c, &d) ? d : 0;
}

bool amx_bf16_usable() {
  const unsigned d = leaf7_edx();
  if (!(d & (1u << 24)) || !(d & (1u << 22))) return false;
  if (!__builtin_cpu_supports("avx512bf16")) return false;
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

Isa cpu_best() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
    return amx_bf16_usable() ? Isa::Amx : Isa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;
  return Isa::Generic;
}

Isa cap(Isa a, Isa b) { return static_cast<int>(a) < static_cast<int>(b) ? a : b; }

Isa detect() {
  Isa isa = cpu_best();
  if (const char* env = std::getenv("WAFER_MAX_ISA")) {
    if (!std::strcmp(env, "avx512")) isa = cap(isa, Isa::Avx512);
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

bool amx_int8() {
  static const bool int8 = (leaf7_edx() & (1u << 25)) != 0;  // AMX-INT8
  return int8 && kernel_isa() == Isa::Amx;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Amx: return "amx";
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
