// plan/validate.h: `wafer plan --validate`: the planner against wafer's own runs on this machine.
// The runs: the top layouts the planner ranks for one fixed small model (bench/parallel.sh's:
// L16, C256, 8 heads, the GPT-2 vocabulary, 8 sequences x 128 tokens, 4 micro-batches), then the
// scale benchmark's 590M under tp2 x pp2 with ZeRO-1 and full recomputation (4 ranks sharing
// the cores). Each trains a few steps under mpirun; the table sets the predicted step time and
// per-rank peak memory beside the measured ones (metrics.jsonl: tokens_per_s, peak_rss_mb).
// The only part of plan/ that runs anything.
#pragma once
#include <string>
#include <vector>

#include "plan/planner.h"

namespace wafer {

// One validation run: the planner's prediction and how to train it.
struct ValidationCase {
  std::string model;        // the model's name in the table: "L16 C256" or "590M"
  PlanResult plan;          // layout, batch, memory and step-time prediction
  std::string model_flags;  // wafer train's model flags ("--preset 111M --n-layer 16 ...")
  std::string init_flags;   // non-empty: `wafer init` writes the model first and train loads it
                            // (--init), so each rank reads only its slices, as the account assumes
  bool ranked = false;      // one of the planner's top layouts (the "ranked first" comparison)
};

struct ValidationRow {
  std::string label;
  double predicted_step_s = 0, measured_step_s = 0;  // measured: the best round's
  double predicted_mb = 0, measured_mb = 0;  // the largest rank's
  bool ranked = false;
  PlanResult plan;
  std::vector<double> measured_steps_s;  // each round's mean step time
};

// The fixed small model and request on machine `m`.
PlanRequest validation_request(const Machine& m);
// The fastest predicted fitting layouts of the small model that the trainer implements (no
// recompute), at most `top`, then the 590M case on `m` with its cores shared by 4 ranks.
std::vector<ValidationCase> validation_cases(const Machine& m, int top);
// More ranks than cores on one node (the 590M case: 4 ranks on 2 cores). The node is modelled
// with a device per rank at a whole core's rate (shared_by_ranks), so a rank that computes runs
// at its core's pace; the step is then the longer of that schedule's makespan and the job's
// whole work spread over the cores at the machine's shared-core efficiency (oversubscribed_step):
// a rank waiting in the pipeline gives its core to a busy one, so the bubble costs nothing while
// any rank has work, but ranks time-sliced on a core run slower in all than one rank would.
Machine shared_by_ranks(const Machine& m, int ranks);
double oversubscribed_step(const PlanResult& p, int cores, double shared_core_eff);
// The `wafer train` command line of a case (mpirun for more than one rank).
std::string validation_command(const std::string& wafer, const ValidationCase& v, const std::string& model_dir,
                               const std::string& data, const std::string& out, int steps);
// Mean step time over the rows after the first `skip`, and the largest peak_rss_mb of any rank.
void parse_metrics(const std::string& jsonl, int skip, int64_t tokens_per_step, double* step_s, double* peak_mb);
std::string validation_table(const std::vector<ValidationRow>& rows);
// Each row as the planner's JSON object with measured_step_s, measured_steps_s (every round's)
// and measured_peak_mb added.
nlohmann::ordered_json validation_json(const std::vector<ValidationRow>& rows);
// Runs each case and returns the rows (throws when a run fails, naming its command). The ranked
// cases run `rounds` times, all of them once before any twice, and each row keeps its best
// round's step time and the largest peak memory of any round; the unranked case runs once.
std::vector<ValidationRow> run_validation(const std::string& wafer, const std::vector<ValidationCase>& cases,
                                          const std::string& data, const std::string& work, int steps, int rounds);

}  // namespace wafer
