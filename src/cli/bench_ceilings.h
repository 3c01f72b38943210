// cli/bench_ceilings.h: `wafer bench --ceilings`: the rates this machine reaches, which the
// benchmark tables compare against and `--machine-out` writes as the planner's machine file.
#pragma once
#include <nlohmann/json.hpp>

namespace wafer::cli {

// With all threads: sgemm_gflops and bf16_gemm_gflops (the best of two large shapes),
// sgemm_shapes ([m, n, k, GFLOP/s] at a small model's block shapes, forward and both backward
// products) and the efficiency curve fitted through them (sgemm_max_eff, sgemm_half_dim),
// softmax_gelem_per_s (one exp per logit, the loss's pass over [1024, 50257] logits),
// gelu_forward_gelem_per_s and gelu_backward_gelem_per_s, read_gb_per_s (a 1 GiB stream), and
// shared_core_gemm_eff (single-threaded processes' GEMMs, two per core against one per core).
nlohmann::ordered_json measure_ceilings(int repeats);
// The lines `wafer bench` prints for them.
void print_ceilings(const nlohmann::ordered_json& c);

}  // namespace wafer::cli
