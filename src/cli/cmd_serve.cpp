// cli/cmd_serve.cpp: `wafer serve`: the OpenAI-style HTTP server over continuous batching
// (src/serve/). Parses the flags, then hands a loader to the server so /health answers 503
// while the weights load. Under mpirun with --tp/--pp, world rank 0 serves and every rank loads
// and runs its shard of each batched step.
#include "cli/commands.h"
#include "cli/io_util.h"
#include "core/error.h"
#include "model/sharding.h"
#include "parallel/comm.h"
#include "serve/http_server.h"

namespace wafer::cli {

void add_serve_command(CLI::App& app) {
  struct Opts {
    std::string model, tokenizer, precision = "fp32", name, kv_cache = "auto";
    serve::ServerOptions server;
    LayoutOptions layout;
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
  cmd->add_option("--kv-cache", o->kv_cache,
                  "KV-cache elements: fp32, bf16 (half the memory and the bytes attention reads), or auto "
                  "(fp32 under --precision fp32, else bf16)")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}))
      ->capture_default_str();
  o->layout.add_to(cmd, false);
  cmd->callback([o] {
    const bool kv_fp32 = o->kv_cache == "fp32" || (o->kv_cache == "auto" && o->precision == "fp32");
    o->server.scheduler.kv_dtype = kv_fp32 ? DType::F32 : DType::BF16;
    WAFER_CHECK(o->server.scheduler.prefill_chunk >= 1, "[serve] expected --prefill-chunk >= 1");
    WAFER_CHECK(o->server.scheduler.max_queue >= 1, "[serve] expected --max-queue >= 1");
    // A missing or broken folder, or a layout that does not fit, fails before the port is taken.
    const ModelConfig c = load_hf_config(o->model);
    WAFER_CHECK(o->layout.layout.cp == 1 && o->layout.layout.dp == 1,
                "[serve] serving splits a model by --tp and --pp; found --cp ", o->layout.layout.cp, " --dp ",
                o->layout.layout.dp, " (run one server per replica instead)");
    std::shared_ptr<ParallelState> par = o->layout.start(c);
    if (world_rank() != 0) {
      auto m = load_inference_model(o->model, *par, o->precision);
      pack_serving_panels(*m);  // only the batched forward reads the weights from here on
      serve::follow_scheduler(*m, *par, o->server.scheduler);
      return;
    }
    serve::ServerOptions so = o->server;
    so.model_name = o->name;
    if (so.model_name.empty()) {
      std::string d = o->model;
      while (d.size() > 1 && d.back() == '/') d.pop_back();
      so.model_name = d.substr(d.find_last_of('/') + 1);
    }
    serve::run_server(so, [o, par] {
      serve::LoadedModel lm;
      lm.tokenizer = find_tokenizer(o->tokenizer, o->model);
      lm.model = load_inference_model(o->model, *par, o->precision);
      pack_serving_panels(*lm.model);
      if (par->world.size() > 1) lm.layout = par.get();
      return lm;
    });
  });
}

}  // namespace wafer::cli
