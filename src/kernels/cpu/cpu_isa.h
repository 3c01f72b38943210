// kernels/cpu/cpu_isa.h: which vector instruction set our kernels use, chosen at run time:
// AVX-512 with AMX bf16 tiles where the CPU and the kernel allow them, else AVX-512, else
// AVX2+FMA, else the compiler's baseline. The decode kernels (gemv.cpp) dispatch on
// kernel_isa(), which the environment variable WAFER_MAX_ISA (amx, avx512, avx2, generic) caps,
// so one binary tests and benchmarks every path. Amx is Avx512 plus the tiles: every AVX-512
// kernel runs under it, and only the serving rows (rows_matmul_amx.cpp) use the tiles.
#pragma once

// The other kernels are compiled three times, for x86-64-v4 (AVX-512), x86-64-v3 (AVX2+FMA)
// and the baseline, and the loader picks one per CPU (GCC target_clones: an ifunc resolved at
// start-up; the OpenMP bodies inside are cloned with their function).
#define WAFER_KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

namespace wafer {

enum class Isa { Generic, Avx2, Avx512, Amx };

// The ISA in use (detected once; WAFER_MAX_ISA and set_kernel_isa lower it).
Isa kernel_isa();
// Amx is in use and the CPU has AMX-INT8 tiles as well (quant_matmul_amx.cpp).
bool amx_int8();
const char* isa_name(Isa isa);
// Forces an ISA, capped at what the CPU has (tests run every path this way). Returns the one set.
Isa set_kernel_isa(Isa isa);

}  // namespace wafer
