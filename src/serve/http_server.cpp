// serve/http_server.cpp: the endpoints on cpp-httplib's threaded server. A handler thread parses
// and checks the request (serve/openai_json), queues its sequences on the scheduler and turns
// the token events that come back into text, stop-string matches and JSON, either as one body
// or as server-sent events. The scheduler runs on the calling thread; a signal thread ends it.
#include "serve/http_server.h"

#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <chrono>
#include <cstdio>
#include <random>
#include <thread>

#include "core/error.h"
#include "serve/openai_json.h"

namespace wafer::serve {

namespace {

using namespace std::chrono_literals;

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string random_id(const char* prefix) {
  static std::atomic<uint64_t> counter{0};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s%llx%04llx", prefix, (unsigned long long)unix_time(),
                (unsigned long long)(counter++ & 0xffff));
  return buf;
}

const char* finish_name(Finish f, bool stop_string) {
  if (stop_string) return "stop";
  return f == Finish::Stop ? "stop" : "length";
}

// One request's choices, from token events to text and JSON.
class Job {
 public:
  Job(CompletionRequest r, std::vector<std::shared_ptr<SeqStream>> streams, const Tokenizer& tok, std::string model,
      int32_t eot)
      : r_(std::move(r)), tok_(tok), model_(std::move(model)), eot_(eot), id_(random_id(r_.chat ? "chatcmpl-" : "cmpl-")),
        created_(unix_time()) {
    for (size_t i = 0; i < streams.size(); ++i) {
      Choice c(streams[i], r_.stop);
      const size_t p = i / size_t(r_.n);
      c.prompt = p;
      if (r_.echo) {
        c.prefix = r_.prompt_texts[p];
        if (r_.logprobs >= 0) {
          c.lp.add(tok_, r_.prompts[p][0], 0, nullptr, nullptr);
          c.prompt_offset = token_text(tok_, r_.prompts[p][0]).size();
        }
      }
      choices_.push_back(std::move(c));
    }
    for (const auto& p : r_.prompts) prompt_tokens_ += int64_t(p.size());
  }

  bool done() const {
    for (const auto& c : choices_)
      if (c.finish == Finish::None) return false;
    return true;
  }

  void cancel_all() {
    for (auto& c : choices_) c.stream->cancel();
  }

  // Collects what the scheduler produced (waiting up to `timeout` for the first unfinished choice).
  void poll(std::chrono::milliseconds timeout) {
    bool waited = false;
    for (auto& c : choices_) {
      if (c.finish != Finish::None) continue;
      std::vector<TokenEvent> ev;
      const Finish f = c.stream->wait(ev, waited ? 0ms : timeout);
      waited = true;
      for (const TokenEvent& e : ev) take(c, e);
      if (f != Finish::None) c.finish = f;
    }
  }

  // Server-sent events for what is new since the last call; [DONE] after the last.
  std::string sse() {
    std::string out;
    for (size_t i = 0; i < choices_.size(); ++i) {
      Choice& c = choices_[i];
      if (c.sent_final) continue;
      const bool fin = c.finish != Finish::None;
      std::string piece = c.prefix + c.text.take(fin);
      c.prefix.clear();
      if (piece.empty() && !fin && c.lp.empty() && c.clp.empty() && (!r_.chat || c.sent_role)) continue;
      json ch = {{"index", i}};
      if (r_.chat) {
        json delta = json::object();
        if (!c.sent_role) delta["role"] = "assistant", c.sent_role = true;
        if (!piece.empty()) delta["content"] = piece;
        ch["delta"] = delta;
        ch["logprobs"] = r_.logprobs >= 0 && !c.clp.empty() ? c.clp.to_json() : json(nullptr);
        c.clp.clear();
      } else {
        ch["text"] = piece;
        ch["logprobs"] = r_.logprobs >= 0 && !c.lp.empty() ? c.lp.to_json() : json(nullptr);
        c.lp.clear();
      }
      ch["finish_reason"] = fin ? json(finish_name(c.finish, c.stop_string)) : json(nullptr);
      c.sent_final = fin;
      json chunk = head(r_.chat ? "chat.completion.chunk" : "text_completion");
      chunk["choices"] = json::array({ch});
      out += "data: " + dump(chunk) + "\n\n";
    }
    if (done() && !done_sent_) {
      if (r_.include_usage) {
        json chunk = head(r_.chat ? "chat.completion.chunk" : "text_completion");
        chunk["choices"] = json::array();
        chunk["usage"] = usage();
        out += "data: " + dump(chunk) + "\n\n";
      }
      out += "data: [DONE]\n\n";
      done_sent_ = true;
    }
    return out;
  }

  json body() {
    json j = head(r_.chat ? "chat.completion" : "text_completion");
    json arr = json::array();
    for (size_t i = 0; i < choices_.size(); ++i) {
      Choice& c = choices_[i];
      const std::string text = c.prefix + c.text.text();
      json ch = {{"index", i}};
      if (r_.chat) {
        ch["message"] = {{"role", "assistant"}, {"content", text}};
        ch["logprobs"] = r_.logprobs >= 0 ? c.clp.to_json() : json(nullptr);
      } else {
        ch["text"] = text;
        ch["logprobs"] = r_.logprobs >= 0 ? c.lp.to_json() : json(nullptr);
      }
      ch["finish_reason"] = finish_name(c.finish, c.stop_string);
      arr.push_back(std::move(ch));
    }
    j["choices"] = std::move(arr);
    j["usage"] = usage();
    return j;
  }

  bool sent_done() const { return done_sent_; }
  bool streaming() const { return r_.stream; }

 private:
  struct Choice {
    Choice(std::shared_ptr<SeqStream> s, const std::vector<std::string>& stops) : stream(std::move(s)), text(stops) {}
    std::shared_ptr<SeqStream> stream;
    ChoiceText text;
    size_t prompt = 0;
    std::string prefix;  // echo: the prompt's text, sent before the completion
    LogprobsJson lp;       // completions (streaming: since the last chunk)
    ChatLogprobsJson clp;  // chat, likewise
    size_t prompt_offset = 0;
    int64_t generated = 0;
    Finish finish = Finish::None;
    bool stop_string = false, sent_role = false, sent_final = false;
  };

  void take(Choice& c, const TokenEvent& e) {
    if (e.prompt) {  // echo + logprobs: a prompt token's log-probability
      c.lp.add(tok_, e.token, c.prompt_offset, &e.lp.logprob, &e.lp.top);
      c.prompt_offset += token_text(tok_, e.token).size();
      return;
    }
    c.generated += 1;
    if (c.stop_string || e.token == eot_) return;
    const std::string bytes = token_text(tok_, e.token);
    const size_t offset = (r_.echo ? r_.prompt_texts[c.prompt].size() : 0) + c.text.size();
    if (e.has_logprobs && !r_.chat) c.lp.add(tok_, e.token, offset, &e.lp.logprob, &e.lp.top);
    if (e.has_logprobs && r_.chat) c.clp.add(tok_, e.token, e.lp.logprob, e.lp.top);
    if (c.text.append(bytes)) {
      c.stop_string = true;
      c.stream->cancel();  // a stop string: the scheduler frees the slot next step
    }
  }

  json head(const char* object) const {
    return {{"id", id_}, {"object", object}, {"created", created_}, {"model", model_}};
  }

  json usage() const {
    int64_t gen = 0;
    for (const auto& c : choices_) gen += c.generated;
    return {{"prompt_tokens", prompt_tokens_}, {"completion_tokens", gen}, {"total_tokens", prompt_tokens_ + gen}};
  }

  CompletionRequest r_;
  const Tokenizer& tok_;
  std::string model_;
  int32_t eot_;
  std::string id_;
  int64_t created_;
  std::vector<Choice> choices_;
  int64_t prompt_tokens_ = 0;
  bool done_sent_ = false;
};

class Server {
 public:
  explicit Server(const ServerOptions& o) : o_(o) {}

  void routes() {
    svr_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      const bool ok = ready_ && !stopping_;
      res.status = ok ? 200 : 503;
      res.set_content(dump({{"status", ok ? "ok" : stopping_ ? "shutting down" : "loading"}}), "application/json");
    });
    svr_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      Scheduler* s = sched_.load();
      res.set_content(metrics_.render(s ? s->queued() : 0, s ? s->busy() : 0, s ? s->slots() : o_.scheduler.slots),
                      "text/plain; version=0.0.4");
    });
    svr_.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      json m = {{"id", o_.model_name}, {"object", "model"}, {"created", started_}, {"owned_by", "wafer"}};
      if (ready_) m["max_model_len"] = sched_.load()->ctx();
      res.set_content(dump({{"object", "list"}, {"data", json::array({m})}}), "application/json");
    });
    svr_.Post("/v1/completions", [this](const httplib::Request& q, httplib::Response& r) { completion(q, r, false); });
    svr_.Post("/v1/chat/completions", [this](const httplib::Request& q, httplib::Response& r) { completion(q, r, true); });
    svr_.Post("/tokenize", [this](const httplib::Request& q, httplib::Response& r) {
      guarded(r, [&] {
        const json b = parse_body(q);
        const json& c = b.contains("content") ? b["content"] : b.contains("prompt") ? b["prompt"] : json();
        if (!c.is_string()) throw ApiError(400, "'content' must be a string", "content");
        const bool special = b.contains("add_special") && b["add_special"].is_boolean() && b["add_special"].get<bool>();
        r.set_content(dump({{"tokens", lm_.tokenizer->encode(c.get<std::string>(), special)}}), "application/json");
      });
    });
    svr_.Post("/detokenize", [this](const httplib::Request& q, httplib::Response& r) {
      guarded(r, [&] {
        const json b = parse_body(q);
        if (!b.contains("tokens") || !b["tokens"].is_array()) throw ApiError(400, "'tokens' must be a list of ids", "tokens");
        std::vector<int32_t> ids;
        for (const json& v : b["tokens"]) {
          if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= lm_.tokenizer->vocab_size())
            throw ApiError(400, "'tokens' holds " + v.dump() + ", not an id of the vocabulary [0, " +
                                    std::to_string(lm_.tokenizer->vocab_size()) + ")", "tokens");
          ids.push_back(int32_t(v.get<int64_t>()));
        }
        r.set_content(dump({{"content", lm_.tokenizer->decode(ids)}}), "application/json");
      });
    });
    // Unknown paths and httplib's own errors get the same JSON error shape.
    svr_.set_error_handler([](const httplib::Request& q, httplib::Response& res) {
      if (!res.body.empty()) return;
      const std::string msg = res.status == 404 ? "no route " + q.method + " " + q.path : "HTTP error";
      res.set_content(dump(error_body(msg, res.status == 404 ? "not_found_error" : "invalid_request_error", "")),
                      "application/json");
    });
  }

  // Runs `fn`, answering an ApiError or any exception as JSON; 503 while not ready.
  template <typename F>
  void guarded(httplib::Response& res, F&& fn) {
    try {
      if (stopping_) throw ApiError(503, "the server is shutting down", "", "unavailable_error");
      if (!ready_) throw ApiError(503, "the model is loading", "", "unavailable_error");
      fn();
    } catch (const ApiError& e) {
      fail(res, e.status, e.what(), e.type, e.param);
    } catch (const std::exception& e) {
      fail(res, 500, e.what(), "server_error", "");
    }
  }

  void fail(httplib::Response& res, int status, const std::string& msg, const std::string& type,
            const std::string& param) {
    res.status = status;
    if (status == 503 || status == 429) res.set_header("Retry-After", "1");
    res.set_content(dump(error_body(msg, type, param)), "application/json");
  }

  static json parse_body(const httplib::Request& q) {
    json b = json::parse(q.body, nullptr, false);
    if (b.is_discarded()) throw ApiError(400, "the request body is not valid JSON", "");
    if (!b.is_object()) throw ApiError(400, "the request body must be a JSON object", "");
    return b;
  }

  void completion(const httplib::Request& q, httplib::Response& res, bool chat) {
    metrics_.requests++;
    std::shared_ptr<Job> job;
    guarded(res, [&] {
      const json b = parse_body(q);
      Scheduler& s = *sched_.load();
      const Tokenizer& tok = *lm_.tokenizer;
      const int64_t V = lm_.model->config.vocab_size;
      CompletionRequest r = chat ? parse_chat(b, tok, s.ctx(), V) : parse_completion(b, tok, s.ctx(), V);
      const uint64_t seed = r.seed ? *r.seed : std::random_device{}();
      std::vector<SeqParams> seqs;
      for (const auto& p : r.prompts)
        for (int64_t c = 0; c < r.n; ++c) {
          SeqParams sp;
          sp.prompt = p, sp.max_tokens = r.max_tokens;
          sp.sampling = {.temperature = r.temperature, .top_k = r.top_k, .top_p = r.top_p, .seed = seed + uint64_t(c)};
          sp.top_logprobs = r.logprobs;
          sp.prompt_logprobs = !chat && r.echo && r.logprobs >= 0;
          sp.stop_token = eot_;
          seqs.push_back(std::move(sp));
        }
      auto streams = s.submit(std::move(seqs));
      if (streams.empty()) throw ApiError(503, "the queue is full; retry later", "", "unavailable_error");
      job = std::make_shared<Job>(std::move(r), std::move(streams), tok, o_.model_name, eot_);
      inflight_++;
    });
    if (!job) {
      metrics_.requests_failed++;
      return;
    }
    if (job->streaming()) {
      res.set_header("Cache-Control", "no-cache");
      // A stream's connection is not reused: node-fetch (under the openai client, on Node 18)
      // reports "Premature close" on a later request when a socket that carried a chunked
      // response is closed under it by the keep-alive limit.
      res.set_header("Connection", "close");
      res.set_chunked_content_provider(
          "text/event-stream",
          [job](size_t, httplib::DataSink& sink) {
            job->poll(50ms);
            const std::string out = job->sse();
            if (!out.empty() && !sink.write(out.data(), out.size())) {
              job->cancel_all();  // the client is gone: free its slots
              return false;
            }
            if (job->sent_done()) {
              sink.done();
              return true;
            }
            if (!sink.is_writable()) {
              job->cancel_all();
              return false;
            }
            return true;
          },
          [this, job](bool) {
            job->cancel_all();
            inflight_--;
          });
      return;
    }
    // Non-streaming answers go out chunked too, as one chunk at the end: while the handler waits
    // it can then see a closed connection (httplib 0.11 shows a handler its socket only through
    // a content provider's sink) and cancel the request's sequences, freeing their slots.
    res.set_header("Connection", "close");  // as for streams (node-fetch and chunked responses)
    res.set_chunked_content_provider(
        "application/json",
        [job](size_t, httplib::DataSink& sink) {
          job->poll(50ms);
          if (!job->done()) {
            if (sink.is_writable()) return true;
            job->cancel_all();  // the client is gone
            return false;
          }
          const std::string body = dump(job->body());
          if (!sink.write(body.data(), body.size())) return false;
          sink.done();
          return true;
        },
        [this, job](bool) {
          job->cancel_all();
          inflight_--;
        });
  }

  void serve(const std::function<LoadedModel()>& load, const std::function<void(int)>& on_ready);

 private:
  ServerOptions o_;
  httplib::Server svr_;
  Metrics metrics_;
  LoadedModel lm_;
  std::unique_ptr<Scheduler> owned_;
  std::atomic<Scheduler*> sched_{nullptr};
  std::atomic<bool> ready_{false}, stopping_{false};
  std::atomic<int64_t> inflight_{0};  // requests between submit and their last byte
  int32_t eot_ = -1;
  int64_t started_ = unix_time();
};

// SIGTERM and SIGINT write a byte to a pipe (the one thing a handler may safely do) that the
// signal thread reads. A handler, not sigwait with the signals blocked: threads that started
// before the server (MPI's progress threads, OpenMP's pool) would still take them.
int g_signal_pipe[2] = {-1, -1};
void on_stop_signal(int) {
  const char b = 1;
  [[maybe_unused]] ssize_t n = write(g_signal_pipe[1], &b, 1);
}

void Server::serve(const std::function<LoadedModel()>& load, const std::function<void(int)>& on_ready) {
  signal(SIGPIPE, SIG_IGN);  // a closed socket must not kill us
  WAFER_CHECK(pipe(g_signal_pipe) == 0, "[serve] cannot create the signal pipe");
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::mutex mu;
  bool quit = false;
  std::thread sig([&] {
    char b;
    while (read(g_signal_pipe[0], &b, 1) < 0 && errno == EINTR) {
    }
    std::lock_guard<std::mutex> lock(mu);
    quit = true;
    stopping_ = true;
    if (Scheduler* s = sched_.load()) s->shutdown();
  });

  const int threads = o_.http_threads > 0 ? o_.http_threads
                                          : int(o_.scheduler.slots + o_.scheduler.max_queue + 8);
  svr_.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  svr_.set_read_timeout(10, 0);
  svr_.set_write_timeout(10, 0);
  svr_.set_keep_alive_timeout(5);
  svr_.set_keep_alive_max_count(1000);  // httplib's default of 5 closes a busy client's connection
  svr_.set_payload_max_length(size_t(16) << 20);
  routes();
  int port = o_.port;
  bool bound = port == 0 ? (port = svr_.bind_to_any_port(o_.host)) > 0 : svr_.bind_to_port(o_.host, port);
  auto end_signal_thread = [&] {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!quit) on_stop_signal(0);
    }
    sig.join();
    signal(SIGTERM, SIG_DFL);  // the pipe stays open until exit: a late signal's write must not fail
    signal(SIGINT, SIG_DFL);
  };
  if (!bound) {
    end_signal_thread();
    WAFER_CHECK(false, "[serve] cannot listen on ", o_.host, ":", o_.port, " (in use, or not an address of this machine)");
  }
  std::thread http([&] { svr_.listen_after_bind(); });
  std::fprintf(stderr, "wafer serve: listening on http://%s:%d (loading the model)\n", o_.host.c_str(), port);
  auto stop_http = [&] {
    svr_.stop();
    http.join();
  };
  try {
    lm_ = load();
    eot_ = lm_.tokenizer->eot_id();
    owned_ = std::make_unique<Scheduler>(*lm_.model, o_.scheduler, metrics_,
                                         lm_.layout ? *lm_.layout : ParallelState::single());
  } catch (...) {
    stop_http();
    end_signal_thread();
    throw;
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    sched_ = owned_.get();
    if (quit) owned_->shutdown();
  }
  ready_ = true;
  std::fprintf(stderr, "wafer serve: ready on http://%s:%d (%lld slots of %lld tokens, %s KV cache of %.0f MiB)\n",
               o_.host.c_str(), port, (long long)owned_->slots(), (long long)owned_->ctx(),
               o_.scheduler.kv_dtype == DType::BF16 ? "bf16" : "fp32",
               double(KVCache::bytes(*lm_.model, owned_->slots(), owned_->ctx(), o_.scheduler.kv_dtype)) / (1 << 20));
  if (on_ready) on_ready(port);
  owned_->run();  // until SIGTERM / SIGINT
  // Streams have been ended; give their handlers a moment to send the last chunks.
  for (int i = 0; i < 250 && inflight_.load() > 0; ++i) std::this_thread::sleep_for(20ms);
  stop_http();
  end_signal_thread();
  std::fprintf(stderr, "wafer serve: stopped\n");
}

}  // namespace

void run_server(const ServerOptions& o, const std::function<LoadedModel()>& load,
                const std::function<void(int port)>& on_ready) {
  Server s(o);
  s.serve(load, on_ready);
}

}  // namespace wafer::serve
