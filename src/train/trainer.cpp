// train/trainer.cpp
#include "train/trainer.h"

#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/file.h"
#include "core/format.h"
#include "model/sharding.h"
#include "parallel/pipeline_schedule.h"
#include "train/checkpoint.h"
#include "train/loss_plot.h"
#include "train/replica_check.h"
#include "train/train_step.h"

namespace wafer {

namespace fs = std::filesystem;

namespace {

std::string format_duration(double s) {
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%dh%02dm", int(s / 3600), int(std::fmod(s, 3600) / 60));
  else
    std::snprintf(buf, sizeof buf, "%dm%02ds", int(s / 60), int(std::fmod(s, 60)));
  return buf;
}

// The metrics history up to and including `last_step`; later lines (written after the newest
// checkpoint by a run that then died) are dropped, so a resumed run's file is the whole story
// once, in order.
std::vector<nlohmann::json> read_metrics(const std::string& path, int64_t last_step) {
  std::vector<nlohmann::json> kept;
  if (!file_exists(path)) return kept;
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("step")) continue;  // a line cut short by a crash
    if (j["step"].get<int64_t>() <= last_step) kept.push_back(j);
  }
  return kept;
}

void copy_tokenizer(const std::string& from, const std::string& to) {
  for (const char* f : {"vocab.json", "merges.txt", "tokenizer.json"})
    if (file_exists(from + "/" + f)) write_file_atomic(to + "/" + f, read_file(from + "/" + f));
}

std::string format_bytes(double b) {
  char buf[32];
  if (b >= 1e9)
    std::snprintf(buf, sizeof buf, "%.2fGB", b / 1e9);
  else if (b >= 1e6)
    std::snprintf(buf, sizeof buf, "%.1fMB", b / 1e6);
  else
    std::snprintf(buf, sizeof buf, "%.0fkB", b / 1e3);
  return buf;
}

}  // namespace

void run_training(Model& m, const ParallelState& par, const Dataset& data, const TrainOptions& o, int64_t start_step,
                  const CheckpointInfo* resume) {
  const ModelConfig& c = m.config;
  WAFER_CHECK(o.seq >= 1 && o.seq <= c.n_positions, "[train] expected --seq in [1, ", c.n_positions, "], found ", o.seq);
  WAFER_CHECK(o.batch >= 1 && o.micro_batches >= 1, "[train] expected --batch >= 1 and --micro-batches >= 1");
  WAFER_CHECK(data.vocab_size() <= c.vocab_size, "[train] the dataset's vocabulary (", data.vocab_size(),
              ") is larger than the model's (", c.vocab_size, ")");
  const bool rank0 = world_rank() == 0;
  if (rank0) fs::create_directories(o.run_dir);
  TrainStep ts(m, par, o.adamw, o.clip_norm);
  ts.set_recompute(o.recompute);
  if (resume) {  // this rank's range of the shard's moments, straight from the checkpoint's tensors
    const auto [lo, hi] = ts.moment_range();
    load_checkpoint_moments(*resume, m.shard, lo, hi, ts.optimizer().m().data(), ts.optimizer().v().data());
    ts.optimizer().set_t(resume->state.adam_t);
  }

  const std::string metrics_path = o.run_dir + "/metrics.jsonl";
  std::vector<std::pair<double, double>> train_curve, val_curve;
  if (rank0) {
    std::string kept;
    for (const auto& j : read_metrics(metrics_path, start_step)) {
      kept += j.dump() + "\n";
      if (j.contains("loss")) train_curve.emplace_back(j["step"].get<double>(), j["loss"].get<double>());
      if (j.contains("val_loss")) val_curve.emplace_back(j["step"].get<double>(), j["val_loss"].get<double>());
    }
    write_file_atomic(metrics_path, kept);
  }
  std::ofstream metrics;  // rank 0 only
  if (rank0) metrics.open(metrics_path, std::ios::app);
  const double flops_per_token = 3.0 * forward_flops_per_token(c, o.seq);
  const std::string title = "wafer: " + human_count(double(parameter_count(c))) + " parameters, batch " +
                            std::to_string(o.batch * o.micro_batches) + " x " + std::to_string(o.seq);
  // Checkpoints hold whole tensors: rank 0 assembles them from the shards (and ZeRO's pieces).
  auto checkpoint = [&](int64_t step) {
    CheckpointState st;
    st.step = step;
    st.extra = {{"seed", o.seed}, {"batch", o.batch}, {"seq", o.seq}, {"micro_batches", o.micro_batches},
                {"data_cursor", step * o.micro_batches}, {"schedule", o.schedule.describe()},
                {"layout", par.layout.describe()}};
    const AdamW& opt = ts.optimizer();
    save_checkpoint(o.run_dir, m, par, {opt.m().data(), opt.v().data(), par.layout.zero == 1, opt.t()}, st);
  };
  auto validate = [&](int64_t step) {
    if (data.val_tokens() < o.seq + 1) return;
    std::vector<Batch> vb;
    for (int64_t k = 0; k < o.eval_batches; ++k) vb.push_back(data.val_batch(k, o.batch, o.seq));
    double vl = ts.eval_loss(vb);
    if (!rank0) return;
    nlohmann::ordered_json j = {{"step", step}, {"val_loss", vl}};
    metrics << j.dump() << "\n" << std::flush;
    val_curve.emplace_back(double(step), vl);
    if (o.progress) std::fprintf(stderr, "%s[train] step %lld: validation loss %.4f\n", o.progress_tty ? "\n" : "", (long long)step, vl);
  };

  using clock = std::chrono::steady_clock;
  const auto run_start = clock::now();
  for (int64_t step = start_step; step < o.steps; ++step) {
    std::vector<Batch> micro;
    for (int64_t k = 0; k < o.micro_batches; ++k)
      micro.push_back(data.train_batch(o.seed, step * o.micro_batches + k, o.batch, o.seq));
    const double lr = o.schedule.lr(step);
    set_comm_step(step + 1);
    const auto t0 = clock::now();
    StepResult r;
    try {
      r = ts.step(micro, lr);
    } catch (const Error& e) {
      fail(str_cat("[train] step ", step + 1, ": ", e.what(), ". Stopped; the last good checkpoint in ", o.run_dir,
                   " is intact (resume with --resume, perhaps with a lower --lr)"));
    }
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    const double tps = double(r.tokens) / dt;
    const double mfu = flops_per_token * tps / o.peak_flops;
    const double elapsed = std::chrono::duration<double>(clock::now() - run_start).count();
    // Pipeline bubble and traffic, summed over the job's ranks (bytes) or as seen on this one.
    double traffic[4] = {double(r.bytes.tp), double(r.bytes.cp), double(r.bytes.pp), double(r.bytes.dp)};
    Group world = par.world;
    world.all_reduce_sum(traffic, 4);
    nlohmann::ordered_json j = {{"step", step + 1},     {"loss", r.loss},       {"lr", lr},
                                {"grad_norm", r.grad_norm}, {"tokens_per_s", tps}, {"mfu", mfu},
                                {"tokens", (step + 1) * o.batch * o.micro_batches * o.seq}, {"elapsed_s", elapsed}};
    // Peak resident memory of every rank (MB), for the memory-per-rank comparisons.
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    std::vector<float> rss(size_t(par.world.size()), 0.0f);
    {
      const float mine = float(double(ru.ru_maxrss) / 1024.0);
      world.all_gather(rss.data(), &mine, 1);
    }
    j["peak_rss_mb"] = par.world.size() == 1 ? nlohmann::json(rss[0]) : nlohmann::json(rss);
    if (par.world.size() > 1) {
      j["layout"] = par.layout.describe();
      j["bubble"] = r.bubble;
      j["bubble_ideal"] = par.layout.pp > 1 ? pipeline_bubble_formula(par.layout.pp, int(o.micro_batches)) : 0.0;
      j["comm_share"] = r.comm_s / dt;
      j["bytes"] = {{"tp", traffic[0]}, {"cp", traffic[1]}, {"pp", traffic[2]}, {"dp", traffic[3]}};
    }
    train_curve.emplace_back(double(step + 1), r.loss);
    if (rank0) metrics << j.dump() << "\n" << std::flush;
    const int64_t every = std::max<int64_t>(1, o.steps / 20);
    if (rank0 && o.progress && (o.progress_tty || (step + 1) % every == 0 || step + 1 == o.steps)) {
      const double eta = elapsed / double(step + 1 - start_step) * double(o.steps - step - 1);
      std::fprintf(stderr, o.progress_tty ? "\r" : "");
      std::fprintf(stderr,
                   "step %lld/%lld | loss %.4f | lr %.2e | grad norm %.3f | %.0f tok/s | MFU %.1f%% | ETA %s   ",
                   (long long)(step + 1), (long long)o.steps, r.loss, lr, r.grad_norm, tps, 100.0 * mfu,
                   format_duration(eta).c_str());
      if (par.world.size() > 1)
        std::fprintf(stderr, "| bubble %.0f%% (ideal %.0f%%) | comm %.0f%% | tp %s cp %s pp %s dp %s   ",
                     100.0 * r.bubble, 100.0 * j["bubble_ideal"].get<double>(), 100.0 * r.comm_s / dt,
                     format_bytes(traffic[0]).c_str(), format_bytes(traffic[1]).c_str(),
                     format_bytes(traffic[2]).c_str(), format_bytes(traffic[3]).c_str());
      if (!o.progress_tty) std::fprintf(stderr, "\n");
      std::fflush(stderr);
    }
    const bool last = step + 1 == o.steps, stop = step + 1 == o.stop_at;
    const bool save = (o.checkpoint_every > 0 && (step + 1) % o.checkpoint_every == 0) || last || stop;
    // Replicas compare before anything of this step is validated or written.
    corrupt_for_fault_test(m);
    if (o.check_replicas > 0 && ((step + 1) % o.check_replicas == 0 || save)) check_replicas(m, par, step + 1);
    if ((o.eval_every > 0 && (step + 1) % o.eval_every == 0) || last) validate(step + 1);
    if (save) {
      checkpoint(step + 1);
      if (rank0) write_loss_plot(o.run_dir + "/loss.svg", train_curve, val_curve, title);
    }
    if (stop && !last) {
      if (o.progress && rank0) std::fprintf(stderr, "[train] stopped at step %lld as asked; continue with --resume\n", (long long)(step + 1));
      return;
    }
  }
  const std::string final_dir = o.run_dir + "/final";
  if (c.is_mup() && par.world.size() > 1) {
    // μP's export folds multipliers across tensors (wte into an untied head), which the
    // tensor-by-tensor writer does not do: the whole model is gathered on rank 0 for it.
    auto full = gather_model(m, par);
    if (rank0) save_hf_model(*export_for_hf(*full), final_dir);
  } else if (c.is_mup()) {
    save_hf_model(*export_for_hf(m), final_dir);
  } else {
    save_hf_shard(m, par, final_dir);
  }
  if (!rank0) return;
  if (o.progress && o.progress_tty) std::fprintf(stderr, "\n");
  write_loss_plot(o.run_dir + "/loss.svg", train_curve, val_curve, title);
  if (!o.tokenizer_dir.empty()) copy_tokenizer(o.tokenizer_dir, final_dir);
}

}  // namespace wafer
