// plan/planner.h: `wafer plan`: every layout (tp, pp, cp, dp, sp, ZeRO-1, micro-batches, schedule,
// recompute) legal for a model on a machine, each with its per-rank memory (model/memory.h, the
// account that sizes the real buffers), its step time (compute, exposed communication, pipeline
// bubble) from the time model below, tokens/s and MFU, ranked fastest first. Legality is
// parallel/'s check_layout and the account's batch checks; nothing here runs a model.
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/memory.h"
#include "parallel/layout.h"
#include "plan/machine.h"

namespace wafer {

struct PlanRequest {
  ModelConfig model;
  Machine machine;
  int nodes = 1;
  int64_t seq = 0;            // tokens per sequence (0: the model's context)
  int64_t batch = 0;          // sequences per micro-batch (0: the planner chooses)
  int micro_batches = 0;      // per step (0: the planner chooses)
  int64_t global_batch = 0;   // sequences per step (0: batch × micro_batches, else 8 × world)
  Precision precision = Precision::BF16;
  double act_bytes = 4;       // bytes per activation element on the wire (wafer sends fp32)
  // Fixed parts of the layout (unset: searched).
  std::optional<int> tp, pp, cp, dp, zero;
  std::optional<bool> sp;
  std::optional<PipeSchedule> schedule;
  std::optional<Recompute> recompute;
};

// The time of one optimizer step, in seconds, as the sum of its parts.
struct StepTime {
  double compute = 0;  // the busiest stage's kernels (GEMMs, attention, elementwise) + optimizer
  double comm = 0;     // exposed communication: tp and cp inside the stage, pipeline p2p, dp reduction
  double bubble = 0;   // pipeline idle time (from the simulated schedule of the real stage times)
  double step = 0;     // compute + comm + bubble
  std::vector<double> stage_fwd, stage_bwd;  // per micro-batch, per stage (communication included)
};

struct PlanResult {
  MemoryOptions opts;        // layout, batch, micro-batches, precision, recompute
  bool fits = false;
  std::string why;           // why not (illegal layout, or short of memory by how much)
  std::vector<MemoryAccount> memory;  // one per pipeline stage
  MemoryAccount peak;        // the largest stage's account
  double peak_mb = 0;        // peak.total() + the machine's runtime, MiB
  StepTime time;
  double tokens_per_s = 0, mfu = 0;
};

// Every candidate layout, the fitting ones first, fastest first; illegal layouts (tp not dividing
// the heads, ...) are included with fits = false and their reason.
std::vector<PlanResult> plan_layouts(const PlanRequest& r);
// One layout (every part given), evaluated whether or not it fits.
PlanResult evaluate_layout(const PlanRequest& r, const MemoryOptions& o);

// --- The time model's pieces (exposed for tests) ------------------------------------------------

// Alpha-beta costs of one collective over p ranks of `bytes` per rank on a link (ring algorithms).
double all_reduce_seconds(double bytes, int p, const LinkLevel& l);      // 2(p-1)α + 2(p-1)/p · bytes/β
double reduce_scatter_seconds(double bytes, int p, const LinkLevel& l);  // (p-1)α + (p-1)/p · bytes/β
double p2p_seconds(double bytes, const LinkLevel& l);                    // α + bytes/β
// An elementwise pass over `elements` that moves `bytes`: the longer of its memory time and, when
// the machine gives its rate (`gelems`, 1e9 elements/s; 0: unknown), its transcendentals' time.
double pass_seconds(double bytes, double elements, double bw_gbs, double gelems);
// Makespan of a pipeline step: stage s takes fwd[s] and bwd[s] per micro-batch, each boundary
// crossing costs `p2p` seconds; the stages run parallel/'s schedule (GPipe or 1F1B).
double pipeline_makespan(PipeSchedule s, const std::vector<double>& fwd, const std::vector<double>& bwd, int m,
                         double p2p);
// Whether a group of `size` ranks with rank stride `stride` (from rank 0) crosses nodes.
bool group_crosses_nodes(int stride, int size, int ranks_per_node);

nlohmann::ordered_json plan_result_json(const PlanResult& p);
std::string layout_label(const MemoryOptions& o);
// The account as a text table, one row per pipeline stage, MiB per component.
std::string memory_table(const std::vector<MemoryAccount>& stages);  // "tp2 pp1 cp1 dp1 sp zero1 1f1b m4 b8 rc=none"

}  // namespace wafer
