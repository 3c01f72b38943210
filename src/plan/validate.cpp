// plan/validate.cpp
#include "plan/validate.h"

#include <algorithm>
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

std::vector<PlanResult> validation_layouts(const PlanRequest& r, int top) {
  std::vector<PlanResult> out;
  for (const PlanResult& p : plan_layouts(r))
    if (p.fits && int(out.size()) < top) out.push_back(p);
  return out;
}

std::string validation_command(const std::string& wafer, const PlanResult& p, const std::string& data,
                               const std::string& out, int steps) {
  const Layout& l = p.opts.layout;
  const int ranks = l.ranks();
  std::string c = ranks > 1 ? str_cat("mpirun -np ", ranks, " --oversubscribe ") : std::string();
  c += str_cat(wafer, " train --preset 111M --n-layer 16 --n-embd 256 --n-head 8 --n-positions 256 --batch ",
               p.opts.batch, " --seq ", p.opts.seq, " --micro-batches ", p.opts.micro_batches, " --steps ", steps,
               " --lr 1e-3 --warmup 1 --eval-every 0 --checkpoint-every 0 --quiet --precision ",
               precision_name(p.opts.precision), " --tp ", l.tp, " --pp ", l.pp, " --cp ", l.cp, " --dp ", l.dp);
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

std::string validation_table(const std::vector<ValidationRow>& rows) {
  std::string s = "| layout | predicted step s | measured step s | error | predicted peak MiB | measured peak MiB | error |\n"
                  "|---|---|---|---|---|---|---|\n";
  char buf[320];
  for (const auto& r : rows) {
    std::snprintf(buf, sizeof buf, "| %s | %.3f | %.3f | %+.0f%% | %.0f | %.0f | %+.0f%% |\n", r.label.c_str(),
                  r.predicted_step_s, r.measured_step_s, 100 * (r.predicted_step_s / r.measured_step_s - 1),
                  r.predicted_mb, r.measured_mb, 100 * (r.predicted_mb / r.measured_mb - 1));
    s += buf;
  }
  if (!rows.empty()) {
    const auto fastest = std::min_element(rows.begin(), rows.end(), [](auto& a, auto& b) {
      return a.measured_step_s < b.measured_step_s;
    });
    std::snprintf(buf, sizeof buf, "ranked first: %s, measured %+.0f%% against the measured fastest (%s)\n",
                  rows[0].label.c_str(), 100 * (rows[0].measured_step_s / fastest->measured_step_s - 1),
                  fastest->label.c_str());
    s += buf;
  }
  return s;
}

std::vector<ValidationRow> run_validation(const std::string& wafer, const PlanRequest& r, int top,
                                          const std::string& data, const std::string& work, int steps) {
  std::vector<ValidationRow> rows;
  std::filesystem::create_directories(work);
  int k = 0;
  for (const PlanResult& p : validation_layouts(r, top)) {
    const std::string out = str_cat(work, "/run", k++);
    const std::string cmd = validation_command(wafer, p, data, out, steps) + " > " + out + ".log 2>&1";
    std::fprintf(stderr, "validate: %s\n", cmd.c_str());
    WAFER_CHECK(std::system(cmd.c_str()) == 0, "[validate] the run failed: ", cmd, " (see ", out, ".log)");
    ValidationRow row;
    row.label = layout_label(p.opts);
    row.predicted_step_s = p.time.step;
    row.predicted_mb = p.peak_mb;
    parse_metrics(read_file(out + "/metrics.jsonl"), 2, p.opts.batch * p.opts.micro_batches * p.opts.seq,
                  &row.measured_step_s, &row.measured_mb);
    rows.push_back(row);
  }
  return rows;
}

}  // namespace wafer
