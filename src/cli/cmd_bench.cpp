// cli/cmd_bench.cpp: `wafer bench`: wafer's own side of the benchmarks in bench/: training steps,
// prefill and decode of a model (random weights for a preset), tokenizer throughput, and the
// machine's ceilings (sgemm and bf16 GEMM GFLOP/s, streaming read GB/s) measured in the same run.
// Best of several runs, as text or JSON. bench/run.sh runs the competitors beside it.
#include <omp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/bench_ceilings.h"
#include "cli/bench_timing.h"
#include "cli/commands.h"
#include "cli/io_util.h"
#include "core/error.h"
#include "core/file.h"
#include "infer/generate.h"
#include "kernels/cpu/bandwidth.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/gemm.h"
#include "model/forward.h"
#include "plan/machine.h"
#include "train/train_step.h"

namespace wafer::cli {

namespace {

using Json = nlohmann::ordered_json;
double peak_rss_mb() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;
}

double current_rss_mb() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return double(resident) * double(sysconf(_SC_PAGESIZE)) / 1048576.0;
}

// Bytes of weights one decode step reads: every matrix once (blocks and the LM head) at the
// model's precision, plus the fp32 vectors (biases, LayerNorms, one position row).
double decode_weight_bytes(const Model& m) {
  const ModelConfig& c = m.config;
  const double C = double(c.n_embd), F = double(c.ffn()), L = double(c.n_layer), V = double(c.vocab_size);
  const double matrices = L * (4 * C * C + 2 * C * F) + V * C;
  double matrix_bytes = matrices * (m.precision == Precision::BF16 ? 2.0 : 4.0);
  if (!m.quant.empty()) {  // the quantized rows (an untied wte counted whole, though a step reads one row)
    matrix_bytes = 0;
    for (const auto& [w, q] : m.quant) matrix_bytes += double(q.rows) * double(quant_row_bytes(q.type, q.cols));
  }
  return matrix_bytes + 4.0 * (L * (9 * C + F) + 3 * C);
}

Json bench_train(Model& m, const std::string& shape, int steps) {
  const size_t x = shape.find('x');
  WAFER_CHECK(x != std::string::npos, "[bench] expected --train BxT, e.g. 4x256, found ", shape);
  const int64_t B = std::stoll(shape.substr(0, x)), T = std::stoll(shape.substr(x + 1));
  WAFER_CHECK(B >= 1 && T >= 2 && T <= m.config.n_positions, "[bench] --train ", shape, ": expected B >= 1 and 2 <= T <= ",
              m.config.n_positions);
  std::mt19937 rng(1);
  Batch b;
  b.B = B, b.T = T;
  for (int64_t s = 0; s < B; ++s) {
    std::vector<int32_t> seq(size_t(T + 1));
    for (auto& id : seq) id = int32_t(rng() % uint32_t(m.config.vocab_size));
    b.tokens.insert(b.tokens.end(), seq.begin(), seq.end() - 1);
    b.targets.insert(b.targets.end(), seq.begin() + 1, seq.end());
  }
  TrainStep ts(m, {}, 1.0);
  ts.step({b}, 1e-4);  // warm-up: first-touch allocations, GEMM primitives
  auto t0 = Clock::now();
  for (int k = 0; k < steps; ++k) ts.step({b}, 1e-4);
  const double per_step = seconds_since(t0) / steps;
  const double flops = 3.0 * forward_flops_per_token(m.config, T) * double(B * T);
  return {{"batch", B}, {"seq", T}, {"seconds_per_step", per_step}, {"tokens_per_s", double(B * T) / per_step},
          {"gflops_per_s", flops / per_step / 1e9}, {"peak_rss_mb", peak_rss_mb()}};
}

Json bench_inference(const Model& m, const std::string& prefill, int64_t decode_tokens, int repeats) {
  Json j;
  ForwardPass fp(m);
  std::mt19937 rng(1);
  const ModelConfig& c = m.config;
  for (int32_t T : parse_ids(prefill, "bench --prefill")) {
    WAFER_CHECK(T >= 1 && T <= c.n_positions, "[bench] prefill length ", T, " outside [1, ", c.n_positions, "]");
    std::vector<int32_t> ids(static_cast<size_t>(T));
    for (auto& id : ids) id = int32_t(rng() % uint32_t(c.vocab_size));
    const double s = best_seconds(repeats, [&] { fp.forward(ids.data(), 1, T, 0, {}, LogitsRows::Last); });
    // Every position through the blocks, the LM head for the last one only.
    const double flops = double(T) * forward_flops_per_token(c, T) - double(T - 1) * 2.0 * double(c.vocab_size * c.n_embd);
    j["prefill"][std::to_string(T)] = {{"seconds", s}, {"tokens_per_s", double(T) / s}, {"gflops_per_s", flops / s / 1e9}};
  }
  if (decode_tokens > 1) {
    std::vector<int32_t> prompt(16);
    for (auto& id : prompt) id = int32_t(rng() % uint32_t(c.vocab_size));
    int64_t decoded = 0;
    const double seconds = least_seconds(repeats, [&] {
      GenerateResult g = generate(m, prompt, {.max_new_tokens = decode_tokens, .sampling = {.temperature = 0}});
      decoded = int64_t(g.tokens.size()) - 1;
      return g.decode_seconds;
    });
    const double best = seconds / double(decoded), bytes = decode_weight_bytes(m);
    j["decode"] = {{"batch", 1}, {"tokens", decode_tokens}, {"seconds_per_token", best}, {"tokens_per_s", 1.0 / best},
                   {"weight_bytes_per_token", bytes}, {"gb_per_s", bytes / best / 1e9}};
  }
  // The model's memory, taken before the read probe below allocates a buffer of its weights' size.
  j["peak_rss_mb"] = peak_rss_mb();
  j["rss_mb"] = current_rss_mb();
  if (j.contains("decode")) {
    // The read rate at the weights' own size: small quantized models stay in a large L3, where
    // reading runs faster than the 1 GiB streaming figure, and that is their decode ceiling.
    const double bytes = j["decode"]["weight_bytes_per_token"].get<double>();
    std::vector<float> ws(static_cast<size_t>((int64_t(bytes / 4) + 1023) / 1024 * 1024), 1.0f);
    double sink = 0;
    const double read_s = best_seconds(repeats, [&] { sink += sum_all(ws.data(), int64_t(ws.size())); });
    WAFER_ASSERT(sink > 0);
    j["decode"]["read_gb_per_s_at_weight_size"] = double(ws.size()) * 4.0 / read_s / 1e9;
  }
  return j;
}

Json bench_tokenizer(const std::string& dir, const std::string& text_file, int repeats) {
  auto tok = Tokenizer::load(dir);
  const std::string text = read_file(text_file);
  double best = 1e30;
  size_t n = 0;
  for (int r = 0; r < repeats; ++r) {
    BpeCache cache;  // fresh: no run profits from an earlier one
    auto t0 = Clock::now();
    n = tok->encode(text, false, &cache).size();
    best = std::min(best, seconds_since(t0));
  }
  return {{"bytes", text.size()}, {"tokens", n}, {"seconds", best}, {"mb_per_s", double(text.size()) / 1e6 / best}};
}

void print_text(const Json& j) {
  if (j.contains("ceilings")) print_ceilings(j["ceilings"]);
  if (j.contains("prefill"))
    for (auto& [T, v] : j["prefill"].items())
      std::printf("prefill %5s tokens   %10.1f tokens/s, %.1f GFLOP/s\n", T.c_str(), v["tokens_per_s"].get<double>(),
                  v["gflops_per_s"].get<double>());
  if (j.contains("decode"))
    std::printf("decode batch 1       %10.1f tokens/s, %.1f GB/s of weights\n", j["decode"]["tokens_per_s"].get<double>(),
                j["decode"]["gb_per_s"].get<double>());
  if (j.contains("train"))
    std::printf("train %lldx%lld            %10.1f tokens/s, %.1f GFLOP/s, peak RSS %.0f MB\n",
                (long long)j["train"]["batch"].get<int64_t>(), (long long)j["train"]["seq"].get<int64_t>(),
                j["train"]["tokens_per_s"].get<double>(), j["train"]["gflops_per_s"].get<double>(),
                j["train"]["peak_rss_mb"].get<double>());
  if (j.contains("tokenizer")) std::printf("tokenizer            %10.2f MB/s\n", j["tokenizer"]["mb_per_s"].get<double>());
}

}  // namespace

void add_bench_command(CLI::App& app) {
  struct Opts {
    std::string preset, model, tokenizer, text, prefill = "128,1024", train, precision = "fp32";
    int train_steps = 3;
    ShapeOverrides shape;
    int64_t decode_tokens = 64;
    int repeats = 3;
    bool json = false, ceilings = false;
    std::string machine_out;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("bench", "Measure training, prefill, decode and tokenizer speed, and the machine's ceilings");
  cmd->add_option("--preset", o->preset, "Preset shape with random weights");
  cmd->add_option("--model", o->model, "HF model folder");
  cmd->add_option("--prefill", o->prefill, "Prompt lengths to time, comma separated");
  cmd->add_option("--decode-tokens", o->decode_tokens, "Tokens to decode at batch 1 (0 = skip)");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer folder, to time encoding of --text");
  cmd->add_option("--text", o->text, "Text file for the tokenizer timing");
  cmd->add_option("--train", o->train, "Time training steps (forward, backward, AdamW) at BxT, e.g. 4x256 (skips inference)");
  cmd->add_option("--train-steps", o->train_steps, "Timed training steps (after one warm-up step)");
  cmd->add_option("--repeats", o->repeats, "Runs per measurement (best is reported)");
  cmd->add_flag("--ceilings", o->ceilings, "Measure the machine: GEMM GFLOP/s (peak and at block shapes), softmax and GELU rates, streaming read GB/s");
  cmd->add_option("--machine-out", o->machine_out, "With --ceilings: write them as a machine file for wafer plan --machine FILE");
  cmd->add_flag("--json", o->json, "Print one JSON object");
  add_precision_option(cmd, o->precision);
  o->shape.add_to(cmd);
  cmd->callback([o] {
    Json j;
    if (o->ceilings) j["ceilings"] = measure_ceilings(o->repeats);
    if (o->ceilings && !o->machine_out.empty()) {  // one CPU node: its cores share the measured rates and the RAM
      const double ram_gb = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE)) / double(1 << 30);
      const Machine mc = machine_from_ceilings(j["ceilings"], omp_get_max_threads(), ram_gb, "this");
      write_file_atomic(o->machine_out, machine_to_json(mc).dump(2) + "\n");
    }
    std::unique_ptr<Model> m;
    const bool train = !o->train.empty();
    if (!o->model.empty()) {
      m = train ? load_hf_model(o->model) : load_inference_model(o->model, ParallelState::single(), o->precision);
    } else if (!o->preset.empty()) {
      ModelConfig c = resolve_config(o->preset, "", "");
      o->shape.apply(c);
      m = std::make_unique<Model>(c);
      init_weights(*m, {});
      if (!train) set_inference_precision(*m, o->precision);
    }
    if (m && train) {
      j["precision"] = precision_name(set_precision(*m, parse_precision(o->precision)));
      j["train"] = bench_train(*m, o->train, o->train_steps);
    } else if (m) {
      j["precision"] = m->quant.empty() ? std::string(precision_name(m->precision)) : o->precision;
      j.update(bench_inference(*m, o->prefill, o->decode_tokens, o->repeats));
    }
    if (!o->tokenizer.empty()) {
      WAFER_CHECK(!o->text.empty(), "[bench] --tokenizer needs --text FILE");
      j["tokenizer"] = bench_tokenizer(o->tokenizer, o->text, o->repeats);
    }
    if (o->json)
      std::printf("%s\n", j.dump().c_str());
    else
      print_text(j);
  });
}

}  // namespace wafer::cli
