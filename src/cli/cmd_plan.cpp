// cli/cmd_plan.cpp: `wafer plan`: ranks every legal layout of a model on a machine by predicted
// step time, with each rank's memory by component (plan/planner.h); the CS-2's two execution
// modes (plan/wafer_scale.h); `--published`: the time model against Narayanan et al. 2021.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "cli/commands.h"
#include "cli/io_util.h"
#include "core/error.h"
#include "core/file.h"
#include "plan/published.h"
#include "plan/validate.h"
#include "plan/svg.h"
#include "plan/wafer_scale.h"

namespace wafer::cli {

namespace {

void print_cluster(const std::vector<PlanResult>& rs, int top) {
  std::printf("%-4s %-44s %9s  %7s %6s %6s %6s %7s %6s %6s  %8s %8s %8s %8s %10s %6s\n", "#", "layout", "peak MiB",
              "weights", "bf16", "grads", "moments", "activ", "logits", "bufs", "step s", "compute", "comm", "bubble",
              "tokens/s", "MFU");
  int shown = 0, fitting = 0;
  const double mb = 1 << 20;
  for (const PlanResult& p : rs) {
    if (!p.fits) continue;
    ++fitting;
    if (shown++ >= top) continue;
    const MemoryAccount& a = p.peak;
    std::printf("%-4d %-44s %9.0f  %7.0f %6.0f %6.0f %6.0f %7.0f %6.0f %6.0f  %8.3g %8.3g %8.3g %8.3g %10.4g %5.1f%%\n",
                shown, layout_label(p.opts).c_str(), p.peak_mb, a.weights / mb, a.weights_bf16 / mb, a.gradients / mb,
                a.moments / mb, a.activations / mb, a.logits / mb, a.buffers / mb, p.time.step, p.time.compute,
                p.time.comm, p.time.bubble, p.tokens_per_s, 100 * p.mfu);
  }
  if (fitting > top) std::printf("... %d more layouts that fit (--top N shows more, --json lists all)\n", fitting - top);
  // Layouts that do not fit; an illegal one (no memory account) is named once per reason.
  int bad = 0;
  std::vector<std::string> said;
  for (const PlanResult& p : rs) {
    if (p.fits) continue;
    if (p.memory.empty()) {
      if (std::find(said.begin(), said.end(), p.why) != said.end()) continue;
      said.push_back(p.why);
    }
    if (bad++ == 0) std::printf("does not fit:\n");
    if (bad > top) continue;
    std::printf("     %-44s %s\n", layout_label(p.opts).c_str(), p.why.c_str());
  }
  if (bad > top) std::printf("... %d more that do not fit\n", bad - top);
  if (fitting == 0) std::printf("no layout fits this machine\n");
}

// --validate without --data: the main job's corpus (Debian's fortunes) through GPT-2's tokenizer,
// which scripts/setup.sh puts in third_party/ beside the build folder holding this binary.
std::string prepare_default_corpus(const std::string& self, const std::string& work) {
  const std::filesystem::path tok = std::filesystem::path(self).parent_path().parent_path() / "third_party/gpt2-tokenizer";
  const std::string corpus = "/usr/share/games/fortunes";
  WAFER_CHECK(std::filesystem::exists(tok / "vocab.json") && std::filesystem::is_directory(corpus),
              "[plan] --validate without --data expected the tokenizer in ", tok.string(), " and the corpus ", corpus,
              " (scripts/setup.sh installs both); pass --data DIR (token shards from wafer prepare)");
  const std::string data = work + "/data";
  const std::string cmd = self + " prepare --input " + corpus + " --tokenizer " + tok.string() + " --out " + data +
                          " > " + work + "/prepare.log 2>&1";
  WAFER_CHECK(std::system(cmd.c_str()) == 0, "[plan] preparing the default corpus failed: ", cmd);
  return data;
}

}  // namespace

void add_plan_command(CLI::App& app) {
  struct Opts {
    std::string preset, config, model, machine = "this", svg, precision = "bf16", schedule, recompute;
    ShapeOverrides shape;
    int nodes = 1, top = 15;
    int64_t seq = 0, batch = 0, global_batch = 0;
    int micro_batches = 0, tp = 0, pp = 0, cp = 0, dp = 0, zero = -1;
    bool sp = false, json = false, print_machine = false, published = false, validate = false;
    std::string data, work;
    int validate_top = 5, steps = 5, rounds = 2;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("plan", "Rank every legal layout of a model on a machine: memory, step time, MFU");
  cmd->add_option("--preset", o->preset, "A preset name (see wafer info)");
  cmd->add_option("--config", o->config, "An HF config.json");
  cmd->add_option("--model", o->model, "An HF model folder");
  o->shape.add_to(cmd);
  cmd->add_option("--machine", o->machine, "this, a100-80gb, h100-80gb, cs2, or a machine JSON file");
  cmd->add_option("--nodes", o->nodes, "Nodes (CS-2 systems for cs2)");
  cmd->add_option("--seq", o->seq, "Tokens per sequence (default: the context)");
  cmd->add_option("--batch", o->batch, "Sequences per micro-batch (as wafer train takes it)");
  cmd->add_option("--micro-batches", o->micro_batches, "Micro-batches per step");
  cmd->add_option("--global-batch", o->global_batch, "Sequences per step; the plan chooses the micro-batch split");
  cmd->add_option("--precision", o->precision, "fp32 or bf16 (default)");
  cmd->add_option("--tp", o->tp, "Fix the tensor-parallel size");
  cmd->add_option("--pp", o->pp, "Fix the pipeline stages");
  cmd->add_option("--cp", o->cp, "Fix the context-parallel size");
  cmd->add_option("--dp", o->dp, "Fix the data-parallel size");
  cmd->add_flag("--sp", o->sp, "Fix sequence parallelism on");
  cmd->add_option("--zero", o->zero, "Fix ZeRO-1 off (0) or on (1)");
  cmd->add_option("--schedule", o->schedule, "Fix the pipeline schedule: 1f1b or gpipe");
  cmd->add_option("--recompute", o->recompute, "Fix activation recomputation: none, selective or full");
  cmd->add_option("--top", o->top, "Rows to print of each list");
  cmd->add_flag("--json", o->json, "Print a JSON list, one object per layout");
  cmd->add_option("--svg", o->svg, "Draw the best layout's mapping into this SVG file");
  cmd->add_flag("--print-machine", o->print_machine, "Print the machine file (JSON) and exit");
  cmd->add_flag("--published", o->published,
                "Predict Narayanan et al. 2021 Table 1 (Megatron-LM, DGX A100) with the a100-80gb machine");
  cmd->add_flag("--validate", o->validate,
                "Train the top layouts of a fixed small model here for a few steps each (mpirun) and print predicted "
                "against measured step time and peak memory");
  cmd->add_option("--data", o->data,
                  "(--validate) token shards from wafer prepare (default: the fortunes corpus, prepared in --work)");
  cmd->add_option("--work", o->work, "(--validate) folder for the runs (default: a new one under /tmp)");
  cmd->add_option("--validate-top", o->validate_top, "(--validate) layouts to run");
  cmd->add_option("--steps", o->steps, "(--validate) steps per run; the first two are not timed");
  cmd->add_option("--validate-rounds", o->rounds,
                  "(--validate) runs of each ranked layout, all once before any twice; the best is kept");
  cmd->callback([o] {
    const Machine mc = load_machine(o->published ? "a100-80gb" : o->machine);
    if (o->validate) {
      WAFER_CHECK(o->steps >= 3, "[plan] --validate needs --steps >= 3 (the first two are not timed)");
      std::string work = o->work;
      if (work.empty()) {
        char tmpl[] = "/tmp/wafer-validate-XXXXXX";
        WAFER_CHECK(mkdtemp(tmpl) != nullptr, "[plan] cannot create a folder under /tmp");
        work = tmpl;
      }
      std::filesystem::create_directories(work);
      const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
      std::string data = o->data;
      if (data.empty()) data = prepare_default_corpus(self, work);
      const auto rows = run_validation(self, validation_cases(mc, o->validate_top), data, work, o->steps, o->rounds);
      if (o->json)
        std::printf("%s\n", validation_json(rows).dump(1).c_str());
      else
        std::printf("%s", validation_table(rows).c_str());
      return;
    }
    if (o->print_machine) {
      std::printf("%s\n", machine_to_json(mc).dump(2).c_str());
      return;
    }
    if (o->published) {
      std::printf("%s", published_table(compare_published(mc)).c_str());
      return;
    }
    ModelConfig c = resolve_config(o->preset, o->config, o->model);
    o->shape.apply(c);
    if (mc.wafer_scale) {
      WaferRequest w{c, mc, o->nodes, o->seq > 0 ? o->seq : c.n_positions,
                     o->global_batch > 0 ? o->global_batch : o->batch * std::max(1, o->micro_batches)};
      const std::vector<WaferModeResult> modes = plan_wafer_scale(w);
      if (o->json) {
        nlohmann::ordered_json j = nlohmann::ordered_json::array();
        for (const auto& m : modes) j.push_back(wafer_result_json(m));
        std::printf("%s\n", j.dump(2).c_str());
      } else {
        for (const auto& m : modes)
          std::printf("%-16s %-4s SRAM %7.1f GB  step %8.3f s  %10.4g tokens/s  MFU %5.1f%%  %s\n", m.mode.c_str(),
                      m.fits ? "fits" : "no", m.sram_needed_gb, m.step_s, m.tokens_per_s, 100 * m.mfu, m.why.c_str());
      }
      // The picture: the layer-pipelined regions where they fit, else the weight-streaming wafer.
      if (!o->svg.empty()) write_file_atomic(o->svg, wafer_svg(w, modes[0].fits ? modes[0] : modes[1]));
      return;
    }
    PlanRequest r;
    r.model = c, r.machine = mc, r.nodes = o->nodes, r.seq = o->seq, r.batch = o->batch;
    r.micro_batches = o->micro_batches, r.global_batch = o->global_batch, r.precision = parse_precision(o->precision);
    if (o->tp) r.tp = o->tp;
    if (o->pp) r.pp = o->pp;
    if (o->cp) r.cp = o->cp;
    if (o->dp) r.dp = o->dp;
    if (o->sp) r.sp = true;
    if (o->zero >= 0) r.zero = o->zero;
    if (!o->schedule.empty()) r.schedule = schedule_from_name(o->schedule);
    if (!o->recompute.empty()) r.recompute = recompute_from_name(o->recompute);
    const std::vector<PlanResult> rs = plan_layouts(r);
    WAFER_CHECK(!rs.empty(), "[plan] no layout matches the fixed parts given");
    if (o->json) {
      nlohmann::ordered_json j = nlohmann::ordered_json::array();
      for (const PlanResult& p : rs) j.push_back(plan_result_json(p));
      std::printf("%s\n", j.dump(1).c_str());
    } else {
      std::printf("model L=%lld C=%lld H=%lld on %d x %s (%s), T=%lld, %s\n", (long long)c.n_layer,
                  (long long)c.n_embd, (long long)c.n_head, o->nodes, mc.name.c_str(),
                  mc.memory_shared ? "memory per node" : "memory per device",
                  (long long)(o->seq > 0 ? o->seq : c.n_positions), o->precision.c_str());
      print_cluster(rs, o->top);
    }
    if (!o->svg.empty()) write_file_atomic(o->svg, cluster_svg(r, rs.front()));
  });
}

}  // namespace wafer::cli
