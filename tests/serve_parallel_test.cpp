// tests/serve_parallel_test.cpp: `wafer serve` under mpirun with --tp 2 and --pp 2 (2 ranks, 1
// thread each): world rank 0 serves, both ranks run their shard of every batched step. Greedy
// completions of several prompts at once give the same tokens as the one-rank server, their
// log-probabilities agree to fp32 round-off, /health and /metrics answer, and SIGTERM stops
// every rank cleanly (rank 0 finishes its streams, then releases the others).
#include <cmath>

#include "serve_client.h"

namespace wafer {
namespace {

// Greedy completions of four prompts sent together (so they share batched steps), as token ids
// (logprobs: 1 gives each chosen token's log-probability too).
struct Completion {
  std::string text;
  std::vector<double> logprobs;
};

std::vector<Completion> complete_four(int port) {
  const std::vector<std::string> prompts = {"The wafer", "Once upon a time", "In the beginning", "GPT"};
  std::vector<Completion> out(prompts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i)
    threads.emplace_back([&, i] {
      const json req = {{"prompt", prompts[i]}, {"max_tokens", 10}, {"temperature", 0}, {"logprobs", 1}};
      const Reply r = post(port, "/v1/completions", req.dump());
      ASSERT_EQ(r.status, 200) << r.raw;
      const json& c = r.body["choices"][0];
      out[i].text = c["text"].get<std::string>();
      for (const auto& lp : c["logprobs"]["token_logprobs"]) out[i].logprobs.push_back(lp.get<double>());
    });
  for (auto& t : threads) t.join();
  return out;
}

TEST(ServeParallel, TensorAndPipelineLayoutsGiveOneRanksTokens) {
  std::vector<Completion> want;
  {
    ServerProcess one(tiny_model(), {"--parallel", "4"});
    ASSERT_GT(one.port(), 0) << one.log();
    want = complete_four(one.port());
  }
  for (const std::string layout : {"--tp", "--pp"}) {
    ServerProcess two(tiny_model(), {"--parallel", "4", layout, "2"}, 2);
    ASSERT_GT(two.port(), 0) << layout << ": " << two.log();
    EXPECT_EQ(get(two.port(), "/health").status, 200);
    // Idle longer than a second: the followers are kept waiting by rank 0's keep-alives.
    std::this_thread::sleep_for(1500ms);
    const std::vector<Completion> got = complete_four(two.port());
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(got[i].text, want[i].text) << layout << " 2, prompt " << i;
      ASSERT_EQ(got[i].logprobs.size(), want[i].logprobs.size()) << layout;
      for (size_t k = 0; k < want[i].logprobs.size(); ++k)
        EXPECT_NEAR(got[i].logprobs[k], want[i].logprobs[k], 1e-4) << layout << " 2, prompt " << i << " token " << k;
    }
    size_t generated = 0;
    for (const auto& c : got) generated += c.logprobs.size();
    const Reply m = get(two.port(), "/metrics");
    EXPECT_NE(m.raw.find("wafer_generated_tokens_total " + std::to_string(generated) + "\n"), std::string::npos) << m.raw;
    // mpirun passes SIGTERM to every rank and itself exits 1 after a signal, whatever the ranks
    // did: what shows a clean stop is rank 0's last line and no rank's error.
    EXPECT_GE(two.terminate(), 0) << layout << ": did not stop within 30 s\n" << two.log();
    EXPECT_NE(two.log().find("wafer serve: stopped"), std::string::npos) << two.log();
    EXPECT_EQ(two.log().find("error"), std::string::npos) << two.log();
  }
}

TEST(ServeParallel, LayoutsThatCannotServeAreRefused) {
  auto r = test::run_command("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 mpirun -np 2 "
                             "--oversubscribe " + test::wafer_binary() + " serve --model " + tiny_model() +
                             " --port 0 --dp 2");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("serving splits a model by --tp and --pp; found --cp 1 --dp 2"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace wafer
