// plan/validate.h: `wafer plan --validate`: the planner against wafer's own runs on this machine.
// The top layouts of one fixed small model (bench/parallel.sh's: L16, C256, 8 heads, the GPT-2
// vocabulary, 8 sequences x 128 tokens, 4 micro-batches) each train a few steps under mpirun;
// the table sets the predicted step time and per-rank peak memory beside the measured ones
// (metrics.jsonl: tokens_per_s, peak_rss_mb). The only part of plan/ that runs anything.
#pragma once
#include <string>
#include <vector>

#include "plan/planner.h"

namespace wafer {

struct ValidationRow {
  std::string label;
  double predicted_step_s = 0, measured_step_s = 0;
  double predicted_mb = 0, measured_mb = 0;  // the largest rank's
};

// The fixed model and request (machine `this` unless given) and the layouts to run: the
// fastest predicted ones that the trainer implements (no recompute), at most `top`.
PlanRequest validation_request(const Machine& m);
std::vector<PlanResult> validation_layouts(const PlanRequest& r, int top);
// The `wafer train` command line of a layout (mpirun for more than one rank).
std::string validation_command(const std::string& wafer, const PlanResult& p, const std::string& data,
                               const std::string& out, int steps);
// Mean step time over the rows after the first `skip`, and the largest peak_rss_mb of any rank.
void parse_metrics(const std::string& jsonl, int skip, int64_t tokens_per_step, double* step_s, double* peak_mb);
std::string validation_table(const std::vector<ValidationRow>& rows);
// Runs each layout and returns the rows (throws when a run fails, naming its command).
std::vector<ValidationRow> run_validation(const std::string& wafer, const PlanRequest& r, int top,
                                          const std::string& data, const std::string& work, int steps);

}  // namespace wafer
