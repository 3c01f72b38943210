// cli/main.cpp: `wafer <subcommand>`. The only place that catches errors and picks exit codes:
// 0 success, 1 a wafer error (bad input, with one message line), 2 bad command-line usage.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "cli/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  // libgomp (shared by OpenBLAS and our kernels) reads OMP_WAIT_POLICY when it loads, before
  // main. Idle workers that spin steal the other core on small machines, so unless the user
  // chose a policy, start again with PASSIVE (sleeping) workers.
  if (!std::getenv("OMP_WAIT_POLICY")) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);  // returns only on failure; then carry on as we are
  }
  CLI::App app{"wafer: train and run Cerebras-GPT (GPT-2 layout) models"};
  app.require_subcommand(1);
  wafer::cli::add_tokenize_command(app);
  wafer::cli::add_info_command(app);
  wafer::cli::add_init_command(app);
  wafer::cli::add_logits_command(app);
  wafer::cli::add_generate_command(app);
  wafer::cli::add_eval_command(app);
  wafer::cli::add_bench_command(app);
  wafer::cli::add_grads_command(app);
  wafer::cli::add_prepare_command(app);
  wafer::cli::add_train_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const wafer::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "wafer: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fflush(stdout);
    std::fprintf(stderr, "wafer: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "wafer: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
