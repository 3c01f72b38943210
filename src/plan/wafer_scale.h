// plan/wafer_scale.h: the Cerebras CS-2 (WSE-2) in its two execution modes.
//   Layer-pipelined: every layer owns a rectangular region of cores (here a strip of mesh columns)
//     sized to its FLOPs, so the pipeline is balanced; its weights, gradients, optimizer state and
//     in-flight activations must fit the region's SRAM. Throughput is set by the slowest region,
//     plus the fabric hops between neighbouring regions.
//   Weight streaming: the whole wafer runs one layer at a time; activations stay in SRAM, each
//     layer's weights stream in from external memory (MemoryX) and its gradients stream out, and
//     several CS-2s run data parallel (SwarmX broadcasts weights and sums gradients).
// Cerebras-GPT trained every size with weight streaming on 1 to 16 CS-2s (Dey et al. 2023,
// "Cerebras-GPT", section 3.2, the Andromeda cluster).
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "model/config.h"
#include "plan/machine.h"

namespace wafer {

struct WaferRegion {
  std::string name;          // "embedding", "h.0", ..., "head"
  int col_begin = 0, cols = 0;  // a strip of mesh columns (full height)
  double flops = 0;          // per sequence, forward + backward
  double bytes = 0;          // weights + training state + in-flight activations held
};

struct WaferModeResult {
  std::string mode;          // "layer-pipelined" | "weight-streaming"
  bool fits = false;
  std::string why;           // what does not fit, or why the mode is chosen
  double step_s = 0, tokens_per_s = 0, mfu = 0;
  double sram_needed_gb = 0; // the largest need against the wafer's 40 GB (per region scaled to the wafer)
  std::vector<WaferRegion> regions;  // layer-pipelined mapping
};

struct WaferRequest {
  ModelConfig model;
  Machine machine;  // cs2
  int systems = 1;  // CS-2s (data parallel, weight streaming)
  int64_t seq = 2048, global_batch = 0;  // 0: the published batch
};

std::vector<WaferModeResult> plan_wafer_scale(const WaferRequest& r);
nlohmann::ordered_json wafer_result_json(const WaferModeResult& w);

}  // namespace wafer
