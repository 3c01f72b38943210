// tests/serve_client.h: a `wafer serve` child process on a free port and small HTTP helpers,
// shared by the one-rank server tests (serve_test.cpp) and the mpirun ones (serve_parallel_test.cpp).
#pragma once
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace wafer {

using json = nlohmann::json;
using namespace std::chrono_literals;

// `wafer serve` as a child process on a free port; killed when this goes out of scope.
// With `ranks` > 1 it runs under mpirun (1 thread per rank), world rank 0 serving.
class ServerProcess {
 public:
  ServerProcess(const std::string& model, const std::vector<std::string>& extra, int ranks = 1) {
    log_ = test::temp_dir("serve-log-" + std::to_string(counter_++)) + "/err";
    std::vector<std::string> args;
    if (ranks > 1)
      args = {"mpirun", "-np", std::to_string(ranks), "--oversubscribe", "--mca", "btl_vader_single_copy_mechanism",
              "none"};
    for (const std::string& a : {test::wafer_binary(), std::string("serve"), std::string("--model"), model,
                                 std::string("--port"), std::string("0")})
      args.push_back(a);
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = fork();
    if (pid_ == 0) {
      FILE* f = std::fopen(log_.c_str(), "w");
      dup2(fileno(f), 2);
      setenv("OMP_NUM_THREADS", ranks > 1 ? "1" : "2", 1);
      setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
      setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execvp(argv[0], argv.data());
      _exit(127);
    }
    for (int i = 0; i < 1200 && port_ == 0; ++i) {  // up to 120 s (ASan builds load slowly)
      std::this_thread::sleep_for(100ms);
      std::ifstream in(log_);
      std::string line;
      while (std::getline(in, line)) {
        const auto at = line.find("ready on http://127.0.0.1:");
        if (at != std::string::npos) port_ = std::atoi(line.c_str() + at + 26);
      }
      int st;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
    }
  }
  ~ServerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string log() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // SIGTERM, then the exit status (bounded wait; -1 if it had to be killed).
  int terminate() {
    kill(pid_, SIGTERM);
    for (int i = 0; i < 300; ++i) {
      int st;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
      std::this_thread::sleep_for(100ms);
    }
    return -1;
  }

 private:
  static inline int counter_ = 0;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_;
};

inline std::string tiny_model() {
  static std::string dir = [] {
    std::string d = test::temp_dir("serve-model");
    auto r = test::run_command(test::wafer_binary() +
                               " init --preset 111M --n-layer 2 --n-embd 64 --n-head 4 --n-positions 128 --tokenizer " +
                               test::gpt2_tokenizer_dir() + " --out " + d);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return d;
  }();
  return dir;
}

struct Reply {
  int status = 0;
  json body;
  std::string raw, retry_after;
};

inline Reply post(int port, const std::string& path, const std::string& body) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(60, 0);
  auto r = cli.Post(path.c_str(), body, "application/json");
  Reply out;
  if (!r) return out;
  out.status = r->status, out.raw = r->body, out.retry_after = r->get_header_value("Retry-After");
  out.body = json::parse(r->body, nullptr, false);
  return out;
}

inline Reply get(int port, const std::string& path) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(30, 0);
  auto r = cli.Get(path.c_str());
  Reply out;
  if (!r) return out;
  out.status = r->status, out.raw = r->body;
  out.body = json::parse(r->body, nullptr, false);
  return out;
}


}  // namespace wafer
