// kernels/cpu/cpu_isa.h: which vector instruction set our hand-written kernels use, chosen at
// run time: AVX-512 where the CPU has it, else AVX2+FMA, else the compiler's baseline. The
// environment variable WAFER_MAX_ISA (avx512, avx2, generic) caps the choice, so one binary
// can be tested and benchmarked on every path.
#pragma once

namespace wafer {

enum class Isa { Generic, Avx2, Avx512 };

// The ISA in use (detected once; WAFER_MAX_ISA and set_kernel_isa lower it).
Isa kernel_isa();
const char* isa_name(Isa isa);
// Forces an ISA, capped at what the CPU has (tests run every path this way). Returns the one set.
Isa set_kernel_isa(Isa isa);

}  // namespace wafer
