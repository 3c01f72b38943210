// plan/published.h: the time model against published step times on other machines: Megatron-LM
// on NVIDIA Selene (DGX A100 80GB nodes), Narayanan et al. 2021, "Efficient Large-Scale Language
// Model Training on GPU Clusters Using Megatron-LM", Table 1 (arXiv 2104.04473). Every row is
// predicted with the one a100-80gb machine file, fixed before the comparison: no per-run constant.
#pragma once
#include <string>
#include <vector>

#include "plan/machine.h"

namespace wafer {

struct PublishedRun {
  double params_b;
  int heads, hidden, layers, tp, pp, gpus, batch;
  double tflops_per_gpu;  // published achieved teraFLOP/s per GPU
};
const std::vector<PublishedRun>& narayanan_table1();

struct PublishedComparison {
  PublishedRun run;
  double predicted_tflops = 0, predicted_step_s = 0, published_step_s = 0, error = 0;  // error: predicted/published - 1
};
// Each run as published (micro-batch of 1 sequence, full activation recomputation, fp16 traffic,
// sequence 2048, vocabulary 51,200, 1F1B; the paper's interleaved schedule is not modelled), its
// FLOPs counted by the paper's eq. 3: 96·B·s·l·h²·(1 + s/(6h) + V/(16·l·h)).
std::vector<PublishedComparison> compare_published(const Machine& a100);
std::string published_table(const std::vector<PublishedComparison>& rows);

}  // namespace wafer
