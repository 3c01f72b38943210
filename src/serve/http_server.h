// serve/http_server.h: `wafer serve`'s HTTP front (cpp-httplib): the OpenAI-style endpoints,
// server-sent events, /health, /metrics, /tokenize, /detokenize, and a clean stop on SIGTERM or
// SIGINT. Nothing of HTTP shows through this header: the CLI passes options and a loader.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "model/model.h"
#include "serve/scheduler.h"
#include "tokenizer/bpe.h"

namespace wafer::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string model_name = "wafer";  // the id /v1/models reports
  SchedulerOptions scheduler;
  int http_threads = 0;               // 0 = slots + queue + 8 (one per connection in flight)
  bool log_requests = false;
};

struct LoadedModel {
  std::unique_ptr<Model> model;  // the whole model, or world rank 0's shard of `layout`
  std::unique_ptr<Tokenizer> tokenizer;
  const ParallelState* layout = nullptr;  // null: one rank (the other ranks run follow_scheduler)
};

// Binds host:port (throws when it cannot), answers /health with 503 while `load` runs, then
// serves until SIGTERM or SIGINT: new requests get 503, in-flight streams are ended with their
// final chunk and [DONE], and the call returns. `on_ready` runs once the model is loaded.
void run_server(const ServerOptions& o, const std::function<LoadedModel()>& load,
                const std::function<void(int port)>& on_ready = {});

}  // namespace wafer::serve
