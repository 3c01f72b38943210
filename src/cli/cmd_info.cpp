// cli/cmd_info.cpp: `wafer info` (shapes, parameter count, memory, FLOPs of a preset or a
// model folder) and `wafer init` (a randomly initialised HF folder from a preset or config).
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/io_util.h"
#include "core/error.h"
#include "core/file.h"
#include "io/tensor_source.h"
#include "model/memory.h"
#include "model/model.h"
#include "plan/planner.h"
#include "train/recipe.h"

namespace wafer::cli {

namespace {

std::string with_commas(int64_t n) {
  std::string s = std::to_string(n), out;
  int k = 0;
  for (size_t i = s.size(); i-- > 0;) {
    out.insert(out.begin(), s[i]);
    if (++k % 3 == 0 && i > 0 && s[i - 1] != '-') out.insert(out.begin(), ',');
  }
  return out;
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f %s", b, units[u]);
  return buf;
}

}  // namespace

void add_info_command(CLI::App& app) {
  struct Opts {
    std::string preset, config, model;
    bool json = false;
    // --layout: the memory account of each rank (model/memory.h) for a training layout.
    bool layout = false;
    LayoutOptions lay;
    int64_t batch = 8, seq = 0;
    int micro_batches = 1;
    std::string precision = "fp32", recompute = "none";
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("info", "Shapes, exact parameter count, memory and FLOPs of a model");
  cmd->add_option("--preset", o->preset, "111M 256M 590M 1.3B 2.7B 6.7B 13B gpt2 gpt2-medium gpt2-large gpt2-xl");
  cmd->add_option("--config", o->config, "An HF config.json");
  cmd->add_option("--model", o->model, "An HF model folder");
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->add_flag("--layout", o->layout,
                "Print each rank's predicted peak memory by component for the layout given by --tp --pp --cp --dp "
                "--sp --zero --schedule, --batch, --seq, --micro-batches, --precision, --recompute");
  o->lay.add_to(cmd, true);
  cmd->add_option("--batch", o->batch, "(--layout) sequences per micro-batch, the whole job's");
  cmd->add_option("--seq", o->seq, "(--layout) tokens per sequence (default: the context)");
  cmd->add_option("--micro-batches", o->micro_batches, "(--layout) micro-batches per step");
  cmd->add_option("--recompute", o->recompute, "(--layout) none, selective or full (the account models all three)");
  add_precision_option(cmd, o->precision, false);
  cmd->callback([o] {
    ModelConfig c = resolve_config(o->preset, o->config, o->model);
    if (o->layout) {
      MemoryOptions mo;
      mo.layout = o->lay.layout;
      mo.layout.schedule = schedule_from_name(o->lay.schedule);
      check_layout(mo.layout, c.n_head, c.ffn(), c.n_layer, mo.layout.ranks());
      mo.batch = o->batch, mo.seq = o->seq, mo.micro_batches = o->micro_batches;
      mo.precision = parse_precision(o->precision), mo.recompute = recompute_from_name(o->recompute);
      const std::vector<MemoryAccount> st = stage_memory(c, mo);
      if (o->json) {
        nlohmann::ordered_json j = nlohmann::ordered_json::array();
        for (const MemoryAccount& a : st)
          j.push_back({{"stage", a.stage}, {"weights", a.weights}, {"weights_bf16", a.weights_bf16},
                       {"gradients", a.gradients}, {"moments", a.moments}, {"activations", a.activations},
                       {"logits", a.logits}, {"buffers", a.buffers}, {"total", a.total()}});
        std::printf("%s\n", nlohmann::ordered_json{{"layout", layout_label(mo)}, {"bytes_per_rank", j}}.dump(2).c_str());
        return;
      }
      std::printf("layout       %s, T=%lld, %s\n", layout_label(mo).c_str(),
                  (long long)(mo.seq > 0 ? mo.seq : c.n_positions), precision_name(mo.precision));
      std::printf("%s", memory_table(st).c_str());
      std::printf("(the same functions size the real buffers; process overhead, the binary and libraries not included)\n");
      return;
    }
    const int64_t N = parameter_count(c), T = c.n_positions;
    const double fwd = forward_flops_per_token(c, T);
    std::vector<ParamSpec> specs = parameter_specs(c);
    const std::string formula =
        "forward = 2*N' + 4*L*C*T, training = 3*forward = 6*N' + 12*L*C*T; N' = parameters without position "
        "embeddings (head counted once), T = context";
    // Chinchilla-style compute-optimal plan, as the Cerebras-GPT runs used: 20 tokens/parameter.
    const Recipe rec = published_recipe(c);
    const double plan_tokens = 20.0 * double(N);
    const double plan_flops = 3.0 * fwd * plan_tokens;
    const double plan_steps = std::ceil(plan_tokens / double(rec.batch_sequences * c.n_positions));
    if (o->json) {
      nlohmann::ordered_json j;
      j["name"] = !o->preset.empty() ? o->preset : !o->model.empty() ? o->model : o->config;
      j["config"] = config_to_json(c);
      j["parameters"] = N;
      j["weight_bytes"] = {{"f32", 4 * N}, {"bf16", 2 * N}};
      j["training_state_bytes"] = 16 * N;
      j["training_state"] = "fp32 parameters + gradients + AdamW m and v (16 bytes/parameter), activations not included";
      j["flops_per_token"] = {{"context", T}, {"forward", fwd}, {"training", 3 * fwd}, {"formula", formula}};
      j["compute_optimal"] = {{"tokens", plan_tokens}, {"training_flops", plan_flops},
                              {"batch_sequences", rec.batch_sequences}, {"sequence_length", c.n_positions},
                              {"steps", plan_steps}, {"peak_lr", rec.peak_lr},
                              {"decay", rec.decay == Decay::Linear ? "linear" : "cosine"}};
      nlohmann::ordered_json ts = nlohmann::ordered_json::array();
      for (const auto& s : specs) ts.push_back({{"name", s.name}, {"shape", s.shape}});
      j["tensors"] = ts;
      std::printf("%s\n", j.dump(2).c_str());
      return;
    }
    std::printf("model        %s\n", (!o->preset.empty() ? o->preset : !o->model.empty() ? o->model : o->config).c_str());
    std::printf("shape        L=%lld C=%lld H=%lld D=%lld F=%lld V=%lld P=%lld, %s, %s head\n", (long long)c.n_layer,
                (long long)c.n_embd, (long long)c.n_head, (long long)c.head_dim(), (long long)c.ffn(),
                (long long)c.vocab_size, (long long)c.n_positions,
                c.activation == Activation::GeluErf ? "gelu (erf)" : "gelu_new (tanh)",
                c.tie_word_embeddings ? "tied" : "untied");
    std::printf("parameters   %s\n", with_commas(N).c_str());
    std::printf("weights      %s fp32, %s bf16\n", human_bytes(4.0 * double(N)).c_str(), human_bytes(2.0 * double(N)).c_str());
    std::printf("train state  %s (fp32 params + grads + AdamW m, v; activations extra)\n",
                human_bytes(16.0 * double(N)).c_str());
    std::printf("FLOPs/token  %.4g forward, %.4g training at T=%lld\n", fwd, 3 * fwd, (long long)T);
    std::printf("             (%s)\n", formula.c_str());
    std::printf("plan         compute-optimal: 20 tokens/parameter = %.3g tokens, %.3g training FLOPs,\n"
                "             %.0f steps at the published batch of %lld x %lld tokens; peak lr %.2g, %s decay\n",
                plan_tokens, plan_flops, plan_steps, (long long)rec.batch_sequences, (long long)c.n_positions,
                rec.peak_lr, rec.decay == Decay::Linear ? "linear" : "cosine");
    std::printf("tensors\n");
    for (const auto& s : specs) {
      if (s.layer > 0) continue;  // blocks repeat: show block 0
      std::printf("  %-44s %s\n", s.name.c_str(), shape_str(s.shape).c_str());
    }
    if (c.n_layer > 1) std::printf("  (blocks 1..%lld repeat block 0)\n", (long long)c.n_layer - 1);
  });
}

void add_init_command(CLI::App& app) {
  struct Opts {
    std::string preset, config, out, tokenizer, dtype = "f32";
    uint64_t seed = 1234;
    ShapeOverrides shape;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("init", "Write a randomly initialised HF model folder (Cerebras-GPT init rules)");
  cmd->add_option("--preset", o->preset, "A preset name (see wafer info)");
  cmd->add_option("--config", o->config, "An HF config.json");
  cmd->add_option("--out", o->out, "Folder to write")->required();
  cmd->add_option("--seed", o->seed, "Random seed");
  cmd->add_option("--dtype", o->dtype, "f32, bf16 or f16 on disk");
  cmd->add_option("--tokenizer", o->tokenizer, "Copy this tokenizer (vocab.json + merges.txt) into the folder");
  o->shape.add_to(cmd);
  cmd->callback([o] {
    ModelConfig c = resolve_config(o->preset, o->config, "");
    o->shape.apply(c);
    DType dt;
    WAFER_CHECK(o->dtype == "f32" || o->dtype == "bf16" || o->dtype == "f16", "[init] expected --dtype f32, bf16 or f16, found ",
                o->dtype);
    dtype_from_name(o->dtype == "f32" ? "F32" : o->dtype == "bf16" ? "BF16" : "F16", &dt);
    Model m(c);
    init_weights(m, {.seed = o->seed});
    save_hf_model(m, o->out, {.dtype = dt});
    if (!o->tokenizer.empty()) {
      auto tok = Tokenizer::load(o->tokenizer);  // validates before copying
      for (const char* f : {"vocab.json", "merges.txt", "tokenizer.json"})
        if (file_exists(o->tokenizer + "/" + f)) write_file_atomic(o->out + "/" + f, read_file(o->tokenizer + "/" + f));
    }
    std::printf("wrote %s (%s parameters)\n", o->out.c_str(), with_commas(parameter_count(c)).c_str());
  });
}

}  // namespace wafer::cli
