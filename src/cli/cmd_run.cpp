// cli/cmd_run.cpp: the commands that run a loaded model: `wafer logits`, `wafer generate`,
// `wafer eval`.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/io_util.h"
#include "core/error.h"
#include "core/file.h"
#include "infer/generate.h"
#include "infer/perplexity.h"
#include "io/safetensors.h"
#include "model/forward.h"
#include "model/sharding.h"

namespace wafer::cli {

void add_logits_command(CLI::App& app) {
  struct Opts {
    std::string model, ids, out, precision = "fp32";
    LayoutOptions layout;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("logits", "Write the logits [T, V] of one sequence to a safetensors file");
  cmd->add_option("--model", o->model, "HF model folder")->required();
  cmd->add_option("--ids", o->ids, "Token ids, comma separated")->required();
  cmd->add_option("--out", o->out, "Output .safetensors (one F32 tensor 'logits')")->required();
  add_precision_option(cmd, o->precision);
  o->layout.add_to(cmd, false);
  cmd->callback([o] {
    std::vector<int32_t> ids = parse_ids(o->ids, "logits --ids");
    WAFER_CHECK(!ids.empty(), "[logits] expected at least one id in --ids");
    auto par = o->layout.start(load_hf_config(o->model));
    check_sequence(par->layout, int64_t(ids.size()), "the number of --ids");
    auto m = load_inference_model(o->model, *par, o->precision);
    ForwardPass fp(*m, *par, PassMode::Inference);
    const int64_t T = int64_t(ids.size()), V = m->config.vocab_size;
    const float* logits = fp.forward(ids.data(), 1, T, 0, {}, LogitsRows::All);
    if (is_rank0()) write_safetensors(o->out, {{"logits", DType::F32, {T, V}, logits}});
  });
}

void add_generate_command(CLI::App& app) {
  struct Opts {
    std::string model, tokenizer, prompt, ids, precision = "fp32";
    int64_t max_new_tokens = 64;
    SamplingOptions sampling;
    bool print_ids = false;
    LayoutOptions layout;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("generate", "Continue a prompt, streaming text as it decodes");
  cmd->add_option("--model", o->model, "HF model folder")->required();
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer folder (default: the model folder)");
  auto* p = cmd->add_option("--prompt", o->prompt, "Prompt text");
  auto* i = cmd->add_option("--ids", o->ids, "Prompt as token ids, comma separated");
  p->excludes(i);
  cmd->add_option("--max-new-tokens", o->max_new_tokens, "Tokens to generate at most");
  cmd->add_option("--temperature", o->sampling.temperature, "0 = greedy");
  cmd->add_option("--top-k", o->sampling.top_k, "Keep the k most likely tokens (0 = all)");
  cmd->add_option("--top-p", o->sampling.top_p, "Keep the smallest set with this much probability (1 = all)");
  cmd->add_option("--seed", o->sampling.seed, "Sampling seed");
  cmd->add_flag("--print-ids", o->print_ids, "End with one line holding the new ids, comma separated");
  add_precision_option(cmd, o->precision);
  o->layout.add_to(cmd, false);
  cmd->callback([o] {
    WAFER_CHECK(!o->prompt.empty() || !o->ids.empty(), "[generate] expected --prompt TEXT or --ids 1,2,3");
    auto par = o->layout.start(load_hf_config(o->model));
    auto m = load_inference_model(o->model, *par, o->precision);
    const bool out = is_rank0();
    std::unique_ptr<Tokenizer> tok;
    if (!o->prompt.empty() || !o->tokenizer.empty() || Tokenizer::present(o->model))
      tok = find_tokenizer(o->tokenizer, o->model);
    std::vector<int32_t> prompt = !o->prompt.empty() ? tok->encode(o->prompt, false) : parse_ids(o->ids, "generate --ids");
    GenerateOptions g{.max_new_tokens = o->max_new_tokens, .sampling = o->sampling,
                      .stop_token = tok ? tok->eot_id() : int32_t(m->config.eos_token_id)};
    if (tok && out) {
      std::string echo = tok->decode(prompt);
      std::fwrite(echo.data(), 1, echo.size(), stdout);
      std::fflush(stdout);
    }
    GenerateResult r = generate(
        *m, prompt, g,
        [&](int32_t id) {
          if (out && tok && id != g.stop_token && id < tok->vocab_size()) {
            const std::string& b = tok->token_bytes(id);
            std::fwrite(b.data(), 1, b.size(), stdout);
            std::fflush(stdout);
          }
          return true;
        },
        *par);
    if (!out) return;
    if (tok) std::fputc('\n', stdout);
    if (o->print_ids || !tok) {
      std::string line;
      for (size_t k = 0; k < r.tokens.size(); ++k) {
        if (k) line += ',';
        line += std::to_string(r.tokens[k]);
      }
      std::printf("%s\n", line.c_str());
    }
    std::fflush(stdout);
    const int64_t decoded = int64_t(r.tokens.size()) - 1;
    std::fprintf(stderr, "[prefill %zu tokens in %.3f s (%.1f tok/s); decode %zu tokens, %.1f tok/s%s]\n",
                 prompt.size(), r.prefill_seconds, double(prompt.size()) / std::max(r.prefill_seconds, 1e-9),
                 r.tokens.size(), decoded > 0 ? double(decoded) / std::max(r.decode_seconds, 1e-9) : 0.0,
                 r.reason == StopReason::EndOfText ? "; stopped at end-of-text"
                 : r.reason == StopReason::ContextFull ? "; stopped: context full" : "");
  });
}

void add_eval_command(CLI::App& app) {
  struct Opts {
    std::string model, tokenizer, text, precision = "fp32";
    PerplexityOptions ppl;
    bool json = false;
    LayoutOptions layout;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("eval", "Perplexity of a text file (HF sliding-window method)");
  cmd->add_option("--model", o->model, "HF model folder")->required();
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer folder (default: the model folder)");
  cmd->add_option("--text", o->text, "Text file")->required();
  cmd->add_option("--ctx", o->ppl.ctx, "Window length (default: the model's context)");
  cmd->add_option("--stride", o->ppl.stride, "Window step (default: the window length)");
  cmd->add_flag("--json", o->json, "Print one JSON object");
  add_precision_option(cmd, o->precision);
  o->layout.add_to(cmd, false);
  cmd->callback([o] {
    auto par = o->layout.start(load_hf_config(o->model));
    auto m = load_inference_model(o->model, *par, o->precision);
    auto tok = find_tokenizer(o->tokenizer, o->model);
    BpeCache cache;
    std::vector<int32_t> ids = tok->encode(read_file(o->text), false, &cache);
    PerplexityResult r = perplexity(*m, ids, o->ppl, *par);
    if (!is_rank0()) return;
    if (o->json) {
      nlohmann::ordered_json j = {{"tokens", r.tokens}, {"scored", r.scored}, {"windows", r.windows},
                                  {"mean_nll", r.mean_nll()}, {"perplexity", r.perplexity()}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("tokens      %lld (%lld scored, %lld windows)\nmean NLL    %.6f nats\nperplexity  %.4f\n",
                  (long long)r.tokens, (long long)r.scored, (long long)r.windows, r.mean_nll(), r.perplexity());
    }
  });
}

}  // namespace wafer::cli
