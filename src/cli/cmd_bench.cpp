// cli/cmd_bench.cpp: `wafer bench`: wafer's own side of the benchmarks in bench/: prefill and
// decode throughput of a model (random weights for a preset) and tokenizer throughput, best of
// several runs, as text or JSON. bench/run.sh runs the competitors beside it.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/commands.h"
#include "cli/io_util.h"
#include "core/error.h"
#include "core/file.h"
#include "infer/generate.h"
#include "model/forward.h"
#include "train/train_step.h"

#include <sys/resource.h>

namespace wafer::cli {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

void add_bench_command(CLI::App& app) {
  struct Opts {
    std::string preset, model, tokenizer, text, prefill = "128,1024", train;
    int train_steps = 3;
    ShapeOverrides shape;
    int64_t decode_tokens = 64;
    int repeats = 3;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("bench", "Measure prefill/decode tokens/s and tokenizer MB/s");
  cmd->add_option("--preset", o->preset, "Preset shape with random weights");
  cmd->add_option("--model", o->model, "HF model folder");
  cmd->add_option("--prefill", o->prefill, "Prompt lengths to time, comma separated");
  cmd->add_option("--decode-tokens", o->decode_tokens, "Tokens to decode at batch 1 (0 = skip)");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer folder, to time encoding of --text");
  cmd->add_option("--text", o->text, "Text file for the tokenizer timing");
  cmd->add_option("--train", o->train, "Time training steps (forward, backward, AdamW) at BxT, e.g. 4x256 (skips inference)");
  cmd->add_option("--train-steps", o->train_steps, "Timed training steps (after one warm-up step)");
  cmd->add_option("--repeats", o->repeats, "Runs per measurement (best is reported)");
  cmd->add_flag("--json", o->json, "Print one JSON object");
  o->shape.add_to(cmd);
  cmd->callback([o] {
    nlohmann::ordered_json j;
    std::unique_ptr<Model> m;
    if (!o->model.empty()) {
      m = load_hf_model(o->model);
    } else if (!o->preset.empty()) {
      ModelConfig c = resolve_config(o->preset, "", "");
      o->shape.apply(c);
      m = std::make_unique<Model>(c);
      init_weights(*m, {});
    }
    if (m && !o->train.empty()) {
      size_t x = o->train.find('x');
      WAFER_CHECK(x != std::string::npos, "[bench] expected --train BxT, e.g. 4x256, found ", o->train);
      const int64_t B = std::stoll(o->train.substr(0, x)), T = std::stoll(o->train.substr(x + 1));
      std::mt19937 rng(1);
      std::vector<std::vector<int32_t>> seqs(static_cast<size_t>(B), std::vector<int32_t>(static_cast<size_t>(T + 1)));
      for (auto& sq : seqs)
        for (auto& id : sq) id = int32_t(rng() % uint32_t(m->config.vocab_size));
      Batch b;
      b.B = B, b.T = T;
      for (auto& sq : seqs) {
        b.tokens.insert(b.tokens.end(), sq.begin(), sq.end() - 1);
        b.targets.insert(b.targets.end(), sq.begin() + 1, sq.end());
      }
      TrainStep ts(*m, {});
      ts.step({b}, 1e-4);  // warm-up: first-touch allocations
      auto t0 = std::chrono::steady_clock::now();
      for (int k = 0; k < o->train_steps; ++k) ts.step({b}, 1e-4);
      const double per_step = seconds_since(t0) / o->train_steps;
      struct rusage ru;
      getrusage(RUSAGE_SELF, &ru);
      const double flops = 3.0 * forward_flops_per_token(m->config, T) * double(B * T);
      j["train"] = {{"batch", B}, {"seq", T}, {"seconds_per_step", per_step}, {"tokens_per_s", double(B * T) / per_step},
                    {"gflops_per_s", flops / per_step / 1e9}, {"peak_rss_mb", double(ru.ru_maxrss) / 1024.0}};
    } else if (m) {
      ForwardPass fp(*m);
      std::mt19937 rng(1);
      for (int32_t T : parse_ids(o->prefill, "bench --prefill")) {
        WAFER_CHECK(T >= 1 && T <= m->config.n_positions, "[bench] prefill length ", T, " outside [1, ",
                    m->config.n_positions, "]");
        std::vector<int32_t> ids(static_cast<size_t>(T));
        for (auto& id : ids) id = int32_t(rng() % uint32_t(m->config.vocab_size));
        double best = 1e30;
        for (int r = 0; r < o->repeats + 1; ++r) {  // first run warms caches and allocations
          auto t0 = std::chrono::steady_clock::now();
          fp.forward(ids.data(), 1, T, 0, {}, LogitsRows::Last);
          if (r > 0) best = std::min(best, seconds_since(t0));
        }
        j["prefill"][std::to_string(T)] = {{"seconds", best}, {"tokens_per_s", double(T) / best}};
      }
      if (o->decode_tokens > 1) {
        std::vector<int32_t> prompt(16);
        for (auto& id : prompt) id = int32_t(rng() % uint32_t(m->config.vocab_size));
        double best = 1e30;
        for (int r = 0; r < o->repeats; ++r) {
          GenerateResult g = generate(*m, prompt, {.max_new_tokens = o->decode_tokens, .sampling = {.temperature = 0}});
          best = std::min(best, g.decode_seconds / double(g.tokens.size() - 1));
        }
        j["decode"] = {{"batch", 1}, {"tokens", o->decode_tokens}, {"seconds_per_token", best},
                       {"tokens_per_s", 1.0 / best}};
      }
    }
    if (!o->tokenizer.empty()) {
      WAFER_CHECK(!o->text.empty(), "[bench] --tokenizer needs --text FILE");
      auto tok = Tokenizer::load(o->tokenizer);
      std::string text = read_file(o->text);
      double best = 1e30;
      size_t n = 0;
      for (int r = 0; r < o->repeats; ++r) {
        BpeCache cache;  // fresh: no run profits from an earlier one
        auto t0 = std::chrono::steady_clock::now();
        n = tok->encode(text, false, &cache).size();
        best = std::min(best, seconds_since(t0));
      }
      j["tokenizer"] = {{"bytes", text.size()}, {"tokens", n}, {"seconds", best},
                        {"mb_per_s", double(text.size()) / 1e6 / best}};
    }
    if (o->json) {
      std::printf("%s\n", j.dump().c_str());
      return;
    }
    if (j.contains("prefill"))
      for (auto& [T, v] : j["prefill"].items())
        std::printf("prefill %5s tokens   %10.1f tokens/s\n", T.c_str(), v["tokens_per_s"].get<double>());
    if (j.contains("decode")) std::printf("decode batch 1       %10.1f tokens/s\n", j["decode"]["tokens_per_s"].get<double>());
    if (j.contains("train"))
      std::printf("train %lldx%lld            %10.1f tokens/s, %.1f GFLOP/s, peak RSS %.0f MB\n",
                  (long long)j["train"]["batch"].get<int64_t>(), (long long)j["train"]["seq"].get<int64_t>(),
                  j["train"]["tokens_per_s"].get<double>(), j["train"]["gflops_per_s"].get<double>(),
                  j["train"]["peak_rss_mb"].get<double>());
    if (j.contains("tokenizer")) std::printf("tokenizer            %10.2f MB/s\n", j["tokenizer"]["mb_per_s"].get<double>());
  });
}

}  // namespace wafer::cli
