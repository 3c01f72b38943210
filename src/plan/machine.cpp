// plan/machine.cpp: machine files and the built-in machines, each figure with its source.
#include "plan/machine.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/file.h"

namespace wafer {

namespace {

// Link bandwidths are 75% of the published per-direction peak: the bus bandwidth NCCL's
// all-reduce reaches on these systems (nccl-tests), one factor fixed for every GPU machine before
// any comparison. Latencies are estimates (per collective step, launch included), not datasheet
// figures. GEMM curves: cuBLAS reaches about 80% of the dense peak on large bf16 GEMMs.
const char* kA100 = R"({
  "name": "a100-80gb",
  "source": "NVIDIA A100 80GB SXM datasheet (2021): 312 TFLOP/s BF16 dense, 19.5 TFLOP/s FP32, 80 GB HBM2e at 2039 GB/s; NVLink 3 600 GB/s bidirectional (300 per direction); DGX A100: 8 GPUs and 8 x 200 Gb/s HDR InfiniBand (25 GB/s per GPU). Bandwidths below are 75% of those peaks; latencies estimated",
  "devices_per_node": 8,
  "device": {"peak_tflops": {"fp32": 19.5, "bf16": 312}, "gemm_efficiency": {"max": 0.8, "half_dim": 256},
             "memory_gb": 80, "memory_bw_gbs": 2039},
  "links": {"intra": {"bw_gbs": 225, "latency_us": 8}, "inter": {"bw_gbs": 18.75, "latency_us": 15}},
  "runtime_mb": 1500
})";

const char* kH100 = R"({
  "name": "h100-80gb",
  "source": "NVIDIA H100 SXM5 datasheet (2022): 989 TFLOP/s BF16 dense, 67 TFLOP/s FP32, 80 GB HBM3 at 3350 GB/s; NVLink 4 900 GB/s bidirectional (450 per direction); DGX H100: 8 GPUs and 8 x 400 Gb/s NDR InfiniBand (50 GB/s per GPU). Bandwidths below are 75% of those peaks; latencies estimated",
  "devices_per_node": 8,
  "device": {"peak_tflops": {"fp32": 67, "bf16": 989}, "gemm_efficiency": {"max": 0.75, "half_dim": 384},
             "memory_gb": 80, "memory_bw_gbs": 3350},
  "links": {"intra": {"bw_gbs": 337.5, "latency_us": 8}, "inter": {"bw_gbs": 37.5, "latency_us": 15}},
  "runtime_mb": 1500
})";

// WSE-2 figures: Cerebras (Hot Chips 33, 2021; CS-2 product brief) as reported by Tom's Hardware
// 2022-11-14 "Cerebras Reveals Andromeda": 850,000 cores, 40 GB on-chip SRAM, 20 PB/s memory
// bandwidth, 220 Pb/s fabric; Andromeda's 16 CS-2s give 120 PFLOP/s dense fp16, so 7.5 per CS-2.
// CS-2 I/O: 12 x 100 GbE = 150 GB/s (CS-2 product brief). 48 KB per core = 40 GB / 850,000.
const char* kCS2 = R"({
  "name": "cs2",
  "source": "Cerebras WSE-2 / CS-2: 850,000 cores, 40 GB SRAM (about 48 KB per core), 20 PB/s memory bandwidth, 220 Pb/s 2-D mesh fabric (Hot Chips 33, 2021; Tom's Hardware 2022-11-14); 7.5 PFLOP/s dense fp16 per CS-2 (Andromeda: 120 PFLOP/s over 16 CS-2s, Cerebras 2022-11); 12 x 100 GbE I/O = 150 GB/s per CS-2 to MemoryX/SwarmX (CS-2 product brief). GEMM efficiency 0.5 is an assumption: Cerebras publishes no utilisation for these runs",
  "devices_per_node": 1,
  "device": {"peak_tflops": {"fp32": 1875, "bf16": 7500}, "gemm_efficiency": {"max": 0.5, "half_dim": 64},
             "memory_gb": 40, "memory_bw_gbs": 20000000},
  "links": {"intra": {"bw_gbs": 27500000, "latency_us": 0.001}, "inter": {"bw_gbs": 150, "latency_us": 20}},
  "runtime_mb": 0,
  "wafer_scale": {"cores": 850000, "sram_per_core_kb": 48, "mesh_width": 922, "mesh_height": 922,
                  "fabric_hop_ns": 1, "core_tflops": 0.0088}
})";

// The development machine (AMD EPYC, 2 cores, AVX-512 with AVX512-BF16, 24 GiB), measured on
// 2026-12-01 by `wafer bench --ceilings --repeats 10 --machine-out`: sgemm 198 GFLOP/s and bf16
// GEMM 415 GFLOP/s with both cores; block-shaped GEMMs on operands a step has not just touched
// fitted to 99% of the peak at half-dimension 36; the loss's exp at 0.69 G logits/s, GELU (erf)
// at 3.14 G/s forward and 1.79 G/s backward; two single-threaded processes per core at 96% of one
// per core; a streaming read of 28 GB/s. MPI over shared memory: estimated. One process with a
// thread per core at 96.7% of the GEMM rate of a process per core: the mean of three
// `wafer bench --ceilings --repeats 3` runs later that day (0.949, 0.966, 0.985).
const char* kThis = R"({
  "name": "this",
  "source": "wafer bench --ceilings --repeats 10 on the development machine (AMD EPYC, 2 cores, 24 GiB), 2026-12-01; MPI shared-memory link estimated",
  "devices_per_node": 2, "memory_shared": true, "shared_core_efficiency": 0.960, "threaded_rank_efficiency": 0.967,
  "device": {"peak_tflops": {"fp32": 0.09922, "bf16": 0.20730}, "gemm_efficiency": {"max": 0.989, "half_dim": 36.4},
             "memory_gb": 23.5, "memory_bw_gbs": 14.19,
             "elementwise_gelems": {"softmax": 0.3454, "gelu_forward": 1.5715, "gelu_backward": 0.8958}},
  "links": {"intra": {"bw_gbs": 4, "latency_us": 30}, "inter": {"bw_gbs": 1.1, "latency_us": 50}},
  "runtime_mb": 60
})";

double get(const nlohmann::json& j, const char* key, const std::string& source) {
  WAFER_CHECK(j.is_object() && j.contains(key) && j[key].is_number(), "[machine] ", source, ": expected a number '",
              key, "'");
  return j[key].get<double>();
}

}  // namespace

double Machine::gemm_efficiency(double m, double n, double k) const {
  if (m <= 0 || n <= 0 || k <= 0) return gemm_max_eff;
  const double h = 3.0 / (1.0 / m + 1.0 / n + 1.0 / k);
  return gemm_max_eff * h / (h + gemm_half_dim);
}

void fit_gemm_efficiency(const std::vector<GemmSample>& samples, double peak_gflops, double* max_eff,
                         double* half_dim) {
  WAFER_CHECK(!samples.empty() && peak_gflops > 0, "[machine] expected measured GEMMs and a positive peak");
  // Weighted by FLOPs squared: the residuals are then in seconds, so the large GEMMs that take
  // most of a step are fitted best.
  double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const GemmSample& g : samples) {
    const double w = (g.m * g.n * g.k) * (g.m * g.n * g.k);
    const double x = (1.0 / g.m + 1.0 / g.n + 1.0 / g.k) / 3.0, y = peak_gflops / g.gflops;  // x = 1/h
    sw += w, sx += w * x, sy += w * y, sxx += w * x * x, sxy += w * x * y;
  }
  const double var = sw * sxx - sx * sx;
  double b = var > 0 ? (sw * sxy - sx * sy) / var : 0.0;
  double a = (sy - b * sx) / sw;
  if (b < 0.0) b = 0.0, a = sy / sw;                             // no shape dependence: the mean
  if (a < 1.0) a = 1.0, b = std::max(0.0, (sxy - sx) / sxx);     // above the peak at infinite size: a = 1
  *max_eff = 1.0 / a;
  *half_dim = b / a;
}

Machine machine_from_json(const nlohmann::json& j, const std::string& source) {
  WAFER_CHECK(j.is_object() && j.contains("device") && j.contains("links"), "[machine] ", source,
              ": expected an object with \"device\" and \"links\"");
  Machine m;
  m.name = j.value("name", source);
  m.source = j.value("source", "");
  m.devices_per_node = int(get(j, "devices_per_node", source));
  m.memory_shared = j.value("memory_shared", false);
  const auto& d = j["device"];
  WAFER_CHECK(d.contains("peak_tflops"), "[machine] ", source, ": expected device.peak_tflops {fp32, bf16}");
  m.peak_tflops_fp32 = get(d["peak_tflops"], "fp32", source);
  m.peak_tflops_bf16 = get(d["peak_tflops"], "bf16", source);
  if (d.contains("gemm_efficiency")) {
    m.gemm_max_eff = get(d["gemm_efficiency"], "max", source);
    m.gemm_half_dim = get(d["gemm_efficiency"], "half_dim", source);
  }
  m.mem_gb = get(d, "memory_gb", source);
  m.mem_bw_gbs = get(d, "memory_bw_gbs", source);
  if (d.contains("elementwise_gelems")) {
    const auto& e = d["elementwise_gelems"];
    m.softmax_gelems = get(e, "softmax", source);
    m.gelu_fwd_gelems = get(e, "gelu_forward", source);
    m.gelu_bwd_gelems = get(e, "gelu_backward", source);
    WAFER_CHECK(m.softmax_gelems > 0 && m.gelu_fwd_gelems > 0 && m.gelu_bwd_gelems > 0, "[machine] ", source,
                ": expected positive device.elementwise_gelems rates");
  }
  for (auto [key, link] : {std::pair{"intra", &m.intra}, std::pair{"inter", &m.inter}}) {
    WAFER_CHECK(j["links"].contains(key), "[machine] ", source, ": expected links.", key);
    link->bw_gbs = get(j["links"][key], "bw_gbs", source);
    link->latency_us = get(j["links"][key], "latency_us", source);
  }
  m.runtime_mb = j.value("runtime_mb", 0.0);
  m.shared_core_eff = j.value("shared_core_efficiency", 1.0);
  WAFER_CHECK(m.shared_core_eff > 0 && m.shared_core_eff <= 1, "[machine] ", source,
              ": expected shared_core_efficiency in (0, 1], found ", m.shared_core_eff);
  m.threaded_rank_eff = j.value("threaded_rank_efficiency", 1.0);
  WAFER_CHECK(m.threaded_rank_eff > 0 && m.threaded_rank_eff <= 1, "[machine] ", source,
              ": expected threaded_rank_efficiency in (0, 1], found ", m.threaded_rank_eff);
  if (j.contains("wafer_scale")) m.wafer_scale = true, m.extra = j["wafer_scale"];
  WAFER_CHECK(m.devices_per_node >= 1 && m.peak_tflops_fp32 > 0 && m.peak_tflops_bf16 > 0 && m.mem_gb > 0 &&
                  m.mem_bw_gbs > 0 && m.intra.bw_gbs > 0 && m.inter.bw_gbs > 0,
              "[machine] ", source, ": expected positive devices_per_node, peaks, memory and bandwidths");
  return m;
}

nlohmann::ordered_json machine_to_json(const Machine& m) {
  nlohmann::ordered_json j;
  j["name"] = m.name;
  j["source"] = m.source;
  j["devices_per_node"] = m.devices_per_node;
  if (m.memory_shared) j["memory_shared"] = true;
  j["device"] = {{"peak_tflops", {{"fp32", m.peak_tflops_fp32}, {"bf16", m.peak_tflops_bf16}}},
                 {"gemm_efficiency", {{"max", m.gemm_max_eff}, {"half_dim", m.gemm_half_dim}}},
                 {"memory_gb", m.mem_gb},
                 {"memory_bw_gbs", m.mem_bw_gbs}};
  if (m.softmax_gelems > 0)
    j["device"]["elementwise_gelems"] = {
        {"softmax", m.softmax_gelems}, {"gelu_forward", m.gelu_fwd_gelems}, {"gelu_backward", m.gelu_bwd_gelems}};
  j["links"] = {{"intra", {{"bw_gbs", m.intra.bw_gbs}, {"latency_us", m.intra.latency_us}}},
                {"inter", {{"bw_gbs", m.inter.bw_gbs}, {"latency_us", m.inter.latency_us}}}};
  j["runtime_mb"] = m.runtime_mb;
  if (m.shared_core_eff < 1) j["shared_core_efficiency"] = m.shared_core_eff;
  if (m.threaded_rank_eff < 1) j["threaded_rank_efficiency"] = m.threaded_rank_eff;
  if (m.wafer_scale) j["wafer_scale"] = m.extra;
  return j;
}

std::vector<std::string> builtin_machine_names() { return {"this", "a100-80gb", "h100-80gb", "cs2"}; }

Machine load_machine(const std::string& name) {
  const char* text = name == "this" ? kThis : name == "a100-80gb" ? kA100 : name == "h100-80gb" ? kH100
                                            : name == "cs2"       ? kCS2
                                                                  : nullptr;
  if (text) return machine_from_json(nlohmann::json::parse(text), name);
  WAFER_CHECK(file_exists(name), "[machine] '", name,
              "' is neither a built-in machine (this, a100-80gb, h100-80gb, cs2) nor a JSON file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(name));
  } catch (const nlohmann::json::exception& e) {
    fail(str_cat("[machine] ", name, ": not valid JSON (", e.what(), ")"));
  }
  return machine_from_json(j, name);
}

Machine machine_from_ceilings(const nlohmann::json& c, int cores, double mem_gb, const std::string& name) {
  Machine m = load_machine("this");
  m.name = name;
  m.source = "wafer bench --ceilings --machine-out (measured); MPI link figures estimated";
  m.devices_per_node = std::max(1, cores);
  m.peak_tflops_fp32 = get(c, "sgemm_gflops", "ceilings") / 1000.0 / m.devices_per_node;
  m.peak_tflops_bf16 =
      (c.contains("bf16_gemm_gflops") ? get(c, "bf16_gemm_gflops", "ceilings") : get(c, "sgemm_gflops", "ceilings")) /
      1000.0 / m.devices_per_node;
  m.mem_bw_gbs = get(c, "read_gb_per_s", "ceilings") / m.devices_per_node;
  if (c.contains("sgemm_half_dim")) {
    m.gemm_max_eff = c.contains("sgemm_max_eff") ? get(c, "sgemm_max_eff", "ceilings") : 1.0;
    m.gemm_half_dim = get(c, "sgemm_half_dim", "ceilings");
  }
  m.shared_core_eff = std::min(1.0, c.value("shared_core_gemm_eff", 1.0));
  m.threaded_rank_eff = std::min(1.0, c.value("threaded_rank_gemm_eff", 1.0));
  m.softmax_gelems = m.gelu_fwd_gelems = m.gelu_bwd_gelems = 0;  // this machine's, or none
  if (c.contains("softmax_gelem_per_s")) {
    m.softmax_gelems = get(c, "softmax_gelem_per_s", "ceilings") / m.devices_per_node;
    m.gelu_fwd_gelems = get(c, "gelu_forward_gelem_per_s", "ceilings") / m.devices_per_node;
    m.gelu_bwd_gelems = get(c, "gelu_backward_gelem_per_s", "ceilings") / m.devices_per_node;
  }
  m.mem_gb = mem_gb;
  return m;
}

}  // namespace wafer
