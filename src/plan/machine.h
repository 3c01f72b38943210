// plan/machine.h: a machine as the planner sees it: devices (peak GEMM rate by precision, a GEMM
// efficiency curve by shape, memory capacity and bandwidth), devices per node, and two link
// levels (within a node, between nodes) each with a bandwidth and a latency. Machines are small
// JSON files; the built-in ones (`this`, `a100-80gb`, `h100-80gb`, `cs2`) are compiled in, so the
// binary needs no data folder, and `wafer plan --machine NAME --print-machine` writes them out.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "kernels/cpu/gemm.h"

namespace wafer {

struct LinkLevel {
  double bw_gbs = 0;      // GB/s one device can send at the same time as the others (per direction)
  double latency_us = 0;  // α of the alpha-beta model
};

struct Machine {
  std::string name, source;   // source: where each figure comes from
  int devices_per_node = 1;
  double peak_tflops_fp32 = 0, peak_tflops_bf16 = 0;  // dense GEMM peak per device
  // GEMM efficiency by shape: eff(m, n, k) = max_eff · h / (h + half_dim), h = 3 / (1/m + 1/n + 1/k)
  // (the harmonic mean of the dimensions: a GEMM is as efficient as its thinnest side allows).
  double gemm_max_eff = 0.8, gemm_half_dim = 128;
  double mem_gb = 0;          // GiB of memory per device, or per node when memory_shared
  bool memory_shared = false; // CPU nodes: the ranks of a node share its RAM (the fit sums them)
  double mem_bw_gbs = 0;      // device memory bandwidth
  // Passes bound by their transcendentals, in 1e9 elements per second per device (0: unknown, the
  // pass is costed by its bytes alone): one exp per logit (softmax cross-entropy), GELU forward
  // and backward (erf). On a CPU these, not memory, set the time of the loss and the MLP's GELU.
  double softmax_gelems = 0, gelu_fwd_gelems = 0, gelu_bwd_gelems = 0;
  LinkLevel intra, inter;
  double runtime_mb = 0;      // memory a process holds besides the account (binary, libraries, runtime)
  // CPU nodes: the aggregate GEMM rate of two single-threaded processes per core against one per
  // core. Processes time-sliced on a core evict each other's cached operands, so more ranks than
  // cores compute slower in all than the cores would alone (1: not measured, no loss).
  double shared_core_eff = 1;
  // CPU nodes: the GEMM rate of one process with a thread per core against one single-threaded
  // process per core. A rank spanning several cores splits each product among its threads, which
  // pack operands apart and wait for each other (1: not measured, no loss).
  double threaded_rank_eff = 1;
  bool wafer_scale = false;   // cs2: the layouts are the wafer's execution modes, not tp/pp/dp
  nlohmann::ordered_json extra;  // machine-specific figures (cs2: cores, SRAM per core, ...)

  double peak_tflops(Precision p) const { return p == Precision::BF16 ? peak_tflops_bf16 : peak_tflops_fp32; }
  double gemm_efficiency(double m, double n, double k) const;
};

// One measured GEMM: shape and rate.
struct GemmSample {
  double m, n, k, gflops;
};
// Fits the efficiency curve through measured GEMMs: peak/rate = 1/eff = a + b/h is linear in 1/h,
// so least squares gives a and b, and max = 1/a, half_dim = b/a (max at most 1, half_dim at least 0).
void fit_gemm_efficiency(const std::vector<GemmSample>& samples, double peak_gflops, double* max_eff,
                         double* half_dim);

Machine machine_from_json(const nlohmann::json& j, const std::string& source);
nlohmann::ordered_json machine_to_json(const Machine& m);
// A built-in name or a JSON file path.
Machine load_machine(const std::string& name_or_file);
std::vector<std::string> builtin_machine_names();
// `wafer bench --ceilings` numbers (sgemm_gflops, bf16_gemm_gflops, read_gb_per_s, the fitted
// sgemm_max_eff and sgemm_half_dim, the softmax and GELU rates, all measured with all `cores`,
// shared_core_gemm_eff and threaded_rank_gemm_eff) as one CPU node whose ranks (one per core)
// share its rates and its `mem_gb` of RAM.
Machine machine_from_ceilings(const nlohmann::json& ceilings, int cores, double mem_gb, const std::string& name);

}  // namespace wafer
