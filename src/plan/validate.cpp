// plan/validate.cpp
#include "plan/validate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/file.h"

namespace wafer {

PlanRequest validation_request(const Machine& m) {
  PlanRequest r;
  r.model = *preset("111M");
  r.model.n_layer = 16, r.model.n_embd = 256, r.model.n_head = 8, r.model.n_positions = 256;
  r.machine = m;
  r.seq = 128, r.batch = 8, r.micro_batches = 4;
  r.precision = Precision::F32;
  r.recompute = Recompute::None;  // what the trainer implements
  return r;
}

Machine shared_by_ranks(const Machine& m, int ranks) {
  Machine s = m;
  s.name = str_cat(m.name, " with ", ranks, " ranks on its ", m.devices_per_node, " cores");
  s.devices_per_node = ranks;
  return s;
}

double oversubscribed_step(const PlanResult& p, int cores, double shared_core_eff) {
  const Layout& l = p.opts.layout;
  double work = 0;  // core-seconds: every rank's forwards and backwards at a whole core's rate
  for (size_t s = 0; s < p.time.stage_fwd.size(); ++s)
    work += (p.time.stage_fwd[s] + p.time.stage_bwd[s]) * p.opts.micro_batches * l.tp * l.cp * l.dp;
  return std::max(p.time.step, work / cores / shared_core_eff);
}

std::vector<ValidationCase> validation_cases(const Machine& m, int top) {
  std::vector<ValidationCase> out;
  const PlanRequest small = validation_request(m);
  for (const PlanResult& p : plan_layouts(small))
    if (p.fits && int(out.size()) < top)
      out.push_back({"L16 C256", p, "--preset 111M --n-layer 16 --n-embd 256 --n-head 8 --n-positions 256", "", true});
  // The scale issue's run: 590M, tp2 x pp2, ZeRO-1 (over dp 1 x cp 1 it shards nothing, as
  // there), full recomputation, 2 sequences x 128 tokens in 2 micro-batches.
  PlanRequest big;
  big.model = *preset("590M");
  big.machine = shared_by_ranks(m, 4);
  big.precision = Precision::F32;
  MemoryOptions o;
  o.layout.tp = 2, o.layout.pp = 2, o.layout.zero = 1;
  o.batch = 2, o.seq = 128, o.micro_batches = 2, o.precision = Precision::F32, o.recompute = Recompute::Full;
  big.seq = o.seq, big.batch = o.batch, big.micro_batches = o.micro_batches;
  PlanResult p = evaluate_layout(big, o);
  p.time.step = oversubscribed_step(p, m.devices_per_node, m.shared_core_eff);
  out.push_back({"590M", p, "--preset 590M", "--preset 590M --seed 1", false});
  return out;
}

std::string validation_command(const std::string& wafer, const ValidationCase& v, const std::string& model_dir,
                               const std::string& data, const std::string& out, int steps) {
  const MemoryOptions& o = v.plan.opts;
  const Layout& l = o.layout;
  const int ranks = l.ranks();
  std::string c = ranks > 1 ? str_cat("mpirun -np ", ranks, " --oversubscribe ") : std::string();
  c += str_cat(wafer, " train ", v.init_flags.empty() ? v.model_flags : "--init " + model_dir, " --batch ", o.batch,
               " --seq ", o.seq, " --micro-batches ", o.micro_batches, " --steps ", steps,
               " --lr 1e-4 --warmup 1 --eval-every 0 --checkpoint-every 0 --quiet --precision ",
               precision_name(o.precision), " --recompute ", recompute_name(o.recompute), " --tp ", l.tp, " --pp ", l.pp,
               " --cp ", l.cp, " --dp ", l.dp);
  if (l.sp) c += " --sp";
  if (l.zero) c += " --zero 1";
  if (l.pp > 1) c += l.schedule == PipeSchedule::GPipe ? " --schedule gpipe" : " --schedule 1f1b";
  return c + " --data " + data + " --out " + out;
}

void parse_metrics(const std::string& jsonl, int skip, int64_t tokens_per_step, double* step_s, double* peak_mb) {
  std::istringstream in(jsonl);
  std::string line;
  double sum = 0, peak = 0;
  int n = 0, seen = 0;
  while (std::getline(in, line)) {
    if (line.find("\"loss\"") == std::string::npos) continue;
    const auto j = nlohmann::json::parse(line);
    const auto& rss = j.at("peak_rss_mb");
    if (rss.is_array())
      for (const auto& v : rss) peak = std::max(peak, v.get<double>());
    else
      peak = std::max(peak, rss.get<double>());
    if (seen++ < skip) continue;
    sum += double(tokens_per_step) / j.at("tokens_per_s").get<double>();
    ++n;
  }
  WAFER_CHECK(n > 0, "[validate] expected more than ", skip, " training steps in metrics.jsonl, found ", seen);
  *step_s = sum / n;
  *peak_mb = peak;
}

// Targets (issue: the planner's own runs): step time within 20%, peak memory within 10%, and the
// layout ranked first measured fastest or within 5% of the fastest.
std::string validation_table(const std::vector<ValidationRow>& rows) {
  std::string s = "| run | predicted step s | measured step s | error | predicted peak MiB | measured peak MiB | error |\n"
                  "|---|---|---|---|---|---|---|\n";
  char buf[400];
  int missed = 0;
  for (const auto& r : rows) {
    const double et = r.predicted_step_s / r.measured_step_s - 1, em = r.predicted_mb / r.measured_mb - 1;
    const bool ok = std::abs(et) <= 0.20 && std::abs(em) <= 0.10;
    missed += !ok;
    std::snprintf(buf, sizeof buf, "| %s | %.3f | %.3f | %+.0f%% | %.0f | %.0f | %+.0f%% |%s\n", r.label.c_str(),
                  r.predicted_step_s, r.measured_step_s, 100 * et, r.predicted_mb, r.measured_mb, 100 * em,
                  ok ? "" : " outside the targets");
    s += buf;
  }
  const ValidationRow* first = nullptr;
  const ValidationRow* fastest = nullptr;
  for (const auto& r : rows) {
    if (!r.ranked) continue;
    if (!first) first = &r;
    if (!fastest || r.measured_step_s < fastest->measured_step_s) fastest = &r;
  }
  if (first) {
    const double behind = first->measured_step_s / fastest->measured_step_s - 1;
    missed += behind > 0.05;
    std::snprintf(buf, sizeof buf, "ranked first: %s, measured %+.0f%% against the measured fastest (%s)\n",
                  first->label.c_str(), 100 * behind, fastest->label.c_str());
    s += buf;
  }
  s += missed ? str_cat("targets (step time within 20%, memory within 10%, first within 5% of the fastest): ", missed,
                        " missed\n")
              : "targets (step time within 20%, memory within 10%, first within 5% of the fastest): all met\n";
  return s;
}

std::vector<ValidationRow> run_validation(const std::string& wafer, const std::vector<ValidationCase>& cases,
                                          const std::string& data, const std::string& work, int steps, int rounds) {
  WAFER_CHECK(rounds >= 1, "[validate] expected at least one round, found ", rounds);
  std::filesystem::create_directories(work);
  auto sh = [](const std::string& cmd, const std::string& log) {
    std::fprintf(stderr, "validate: %s\n", cmd.c_str());
    WAFER_CHECK(std::system((cmd + " > " + log + " 2>&1").c_str()) == 0, "[validate] the run failed: ", cmd, " (see ",
                log, ")");
  };
  std::vector<ValidationRow> rows(cases.size());
  for (int round = 0; round < rounds; ++round)
    for (size_t k = 0; k < cases.size(); ++k) {
      const ValidationCase& v = cases[k];
      if (round > 0 && !v.ranked) continue;  // only the ranking needs the repeats
      const std::string out = str_cat(work, "/run", k, rounds > 1 ? str_cat("-", round + 1) : ""),
                        model = out + "-model";
      if (!v.init_flags.empty()) sh(str_cat(wafer, " init ", v.init_flags, " --out ", model), out + "-init.log");
      sh(validation_command(wafer, v, model, data, out, steps), out + ".log");
      const std::string metrics = read_file(out + "/metrics.jsonl");
      double step_s = 0, peak_mb = 0;
      parse_metrics(metrics, 2, v.plan.opts.batch * v.plan.opts.micro_batches * v.plan.opts.seq, &step_s, &peak_mb);
      ValidationRow& row = rows[k];
      if (round == 0) {
        row.label = str_cat(v.model, " ", layout_label(v.plan.opts));
        row.predicted_step_s = v.plan.time.step;
        row.predicted_mb = v.plan.peak_mb;
        row.ranked = v.ranked;
        row.plan = v.plan;
        row.measured_step_s = step_s;
      }
      // The best round's step time: this machine's slow spells last longer than a run, and
      // a layout's speed is what it reaches when nothing else takes its cores.
      row.measured_step_s = std::min(row.measured_step_s, step_s);
      row.measured_steps_s.push_back(step_s);
      row.measured_mb = std::max(row.measured_mb, peak_mb);
      // Keep the metrics and the log; the checkpoints are not needed (590M's: 7 GB with AdamW's state).
      write_file_atomic(out + ".metrics.jsonl", metrics);
      std::filesystem::remove_all(out);
      if (!v.init_flags.empty()) std::filesystem::remove_all(model);  // 590M: 2.4 GB
    }
  return rows;
}

nlohmann::ordered_json validation_json(const std::vector<ValidationRow>& rows) {
  nlohmann::ordered_json j = nlohmann::ordered_json::array();
  for (const ValidationRow& r : rows) {
    nlohmann::ordered_json o = plan_result_json(r.plan);
    o["label"] = r.label;
    o["measured_step_s"] = r.measured_step_s;
    o["measured_steps_s"] = r.measured_steps_s;
    o["measured_peak_mb"] = r.measured_mb;
    j.push_back(o);
  }
  return j;
}

}  // namespace wafer
