// plan/published.cpp
#include "plan/published.h"

#include <cmath>
#include <cstdio>

#include "plan/planner.h"

namespace wafer {

const std::vector<PublishedRun>& narayanan_table1() {
  // params (B), heads, hidden, layers, tp, pp, GPUs, batch, achieved TFLOP/s per GPU.
  static const std::vector<PublishedRun> t = {
      {1.7, 24, 2304, 24, 1, 1, 32, 512, 137},       {3.6, 32, 3072, 30, 2, 1, 64, 512, 138},
      {7.5, 32, 4096, 36, 4, 1, 128, 512, 142},      {18.4, 48, 6144, 40, 8, 1, 256, 1024, 135},
      {39.1, 64, 8192, 48, 8, 2, 512, 1536, 138},    {76.1, 80, 10240, 60, 8, 4, 1024, 1792, 140},
      {145.6, 96, 12288, 80, 8, 8, 1536, 2304, 148}, {310.1, 128, 16384, 96, 8, 16, 1920, 2160, 155},
      {529.6, 128, 20480, 105, 8, 35, 2520, 2520, 163}, {1008.0, 160, 25600, 128, 8, 64, 3072, 3072, 163},
  };
  return t;
}

std::vector<PublishedComparison> compare_published(const Machine& a100) {
  std::vector<PublishedComparison> out;
  for (const PublishedRun& run : narayanan_table1()) {
    PlanRequest r;
    r.model.vocab_size = 51200, r.model.n_positions = 2048, r.model.n_embd = run.hidden;
    r.model.n_layer = run.layers, r.model.n_head = run.heads;
    r.machine = a100;
    r.nodes = run.gpus / a100.devices_per_node;
    r.act_bytes = 2;  // Megatron sends fp16 activations
    r.precision = Precision::BF16;
    MemoryOptions o;
    const int dp = run.gpus / (run.tp * run.pp);
    o.layout.tp = run.tp, o.layout.pp = run.pp, o.layout.dp = dp;
    o.batch = dp, o.micro_batches = run.batch / dp, o.seq = 2048;
    o.precision = Precision::BF16, o.recompute = Recompute::Full;
    const PlanResult p = evaluate_layout(r, o);
    const double B = run.batch, s = 2048, l = run.layers, h = run.hidden, V = 51200;
    const double flops = 96 * B * s * l * h * h * (1 + s / (6 * h) + V / (16 * l * h));
    PublishedComparison c;
    c.run = run;
    c.predicted_step_s = p.time.step;
    c.predicted_tflops = flops / p.time.step / run.gpus / 1e12;
    c.published_step_s = flops / (run.tflops_per_gpu * 1e12 * run.gpus);
    c.error = c.predicted_tflops / run.tflops_per_gpu - 1;
    out.push_back(c);
  }
  return out;
}

std::string published_table(const std::vector<PublishedComparison>& rows) {
  std::string s = "| model | tp | pp | GPUs | batch | published TFLOP/s/GPU | predicted | published step s | predicted step s | error |\n"
                  "|---|---|---|---|---|---|---|---|---|---|\n";
  char buf[256];
  for (const auto& c : rows) {
    std::snprintf(buf, sizeof buf, "| %.1fB | %d | %d | %d | %d | %.0f | %.0f | %.2f | %.2f | %+.0f%% |\n", c.run.params_b,
                  c.run.tp, c.run.pp, c.run.gpus, c.run.batch, c.run.tflops_per_gpu, c.predicted_tflops,
                  c.published_step_s, c.predicted_step_s, 100 * c.error);
    s += buf;
  }
  return s;
}

}  // namespace wafer
