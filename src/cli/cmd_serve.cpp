// cli/cmd_serve.cpp: `wafer serve`: the OpenAI-style HTTP server over continuous batching
// (src/serve/). Parses the flags, then hands a loader to the server so /health answers 503
// while the weights load.
#include "cli/commands.h"
#include "cli/io_util.h"
#include "core/error.h"
#include "parallel/comm.h"
#include "serve/http_server.h"

namespace wafer::cli {

void add_serve_command(CLI::App& app) {
  struct Opts {
    std::string model, tokenizer, precision = "fp32", name;
    serve::ServerOptions server;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("serve", "Serve a model over HTTP (OpenAI-style /v1/completions, chat, SSE)");
  cmd->add_option("--model", o->model, "HF model folder")->required();
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer folder (default: the model folder)");
  cmd->add_option("--host", o->server.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", o->server.port, "Port (0 = any free port, printed at start)")->capture_default_str();
  cmd->add_option("--parallel", o->server.scheduler.slots, "Sequences decoded together (KV-cache slots)")
      ->capture_default_str();
  cmd->add_option("--ctx", o->server.scheduler.ctx, "Tokens per sequence, prompt included (default: the model's)");
  cmd->add_option("--max-queue", o->server.scheduler.max_queue, "Waiting sequences before 503")->capture_default_str();
  cmd->add_option("--batch-tokens", o->server.scheduler.max_batch_tokens, "Tokens per batched step at most")
      ->capture_default_str();
  cmd->add_option("--prefill-chunk", o->server.scheduler.prefill_chunk, "Prompt tokens per sequence per step")
      ->capture_default_str();
  cmd->add_option("--model-name", o->name, "Model id reported by /v1/models (default: the folder name)");
  add_precision_option(cmd, o->precision);
  cmd->callback([o] {
    WAFER_CHECK(world_size() == 1, "[serve] serves from one rank; --tp/--pp serving under mpirun is not supported yet");
    WAFER_CHECK(o->server.scheduler.prefill_chunk >= 1, "[serve] expected --prefill-chunk >= 1");
    WAFER_CHECK(o->server.scheduler.max_queue >= 1, "[serve] expected --max-queue >= 1");
    load_hf_config(o->model);  // a missing or broken folder fails before the port is taken
    serve::ServerOptions so = o->server;
    so.model_name = o->name;
    if (so.model_name.empty()) {
      std::string d = o->model;
      while (d.size() > 1 && d.back() == '/') d.pop_back();
      so.model_name = d.substr(d.find_last_of('/') + 1);
    }
    serve::run_server(so, [o] {
      serve::LoadedModel lm;
      lm.tokenizer = find_tokenizer(o->tokenizer, o->model);
      lm.model = load_hf_model(o->model);
      set_inference_precision(*lm.model, o->precision);
      return lm;
    });
  });
}

}  // namespace wafer::cli
