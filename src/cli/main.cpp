// cli/main.cpp: `wafer <subcommand>`. The only place that catches errors and picks exit codes:
// 0 success, 1 a wafer error (bad input, with one message line), 2 bad command-line usage.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include <string>
#include <thread>

#include "cli/commands.h"
#include "core/error.h"
#include "parallel/comm.h"

namespace {
// Under mpirun, ranks on one machine share its cores: unless told otherwise, each takes its
// share (at least one thread), so ranks do not oversubscribe the CPUs with spinning threads.
bool set_rank_threads() {
  const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  if (!local || std::getenv("OMP_NUM_THREADS")) return false;
  const int share = std::max(1, int(std::thread::hardware_concurrency()) / std::max(1, std::atoi(local)));
  setenv("OMP_NUM_THREADS", std::to_string(share).c_str(), 1);
  return true;
}

// One error line and a non-zero exit. Under mpirun the whole job ends with this rank: the
// others may be waiting for it in a collective.
int report(const char* what) {
  std::fflush(stdout);
  if (wafer::world_size() > 1) wafer::abort_world(what);
  std::fprintf(stderr, "wafer: error: %s\n", what);
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  // libgomp (shared by OpenBLAS, oneDNN and our kernels) reads its settings when it loads,
  // before main, so they are set here and the process starts again. Idle workers spin about a
  // millisecond (GOMP_SPINCOUNT=100000), then sleep: a decode step launches a hundred parallel
  // regions, and waking sleeping workers for each (OMP_WAIT_POLICY=PASSIVE) cost a third of
  // its time, while workers that never sleep (ACTIVE) would steal the core from anything
  // else. One pool, so nothing spins against another. The user's own settings win.
  const bool threads_set = set_rank_threads();
  const bool user_policy = std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT");
  if (!user_policy || threads_set) {
    if (!user_policy) setenv("GOMP_SPINCOUNT", "100000", 1);
    execv("/proc/self/exe", argv);  // returns only on failure; then carry on as we are
  }
  wafer::init_world(&argc, &argv);
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
  wafer::cli::add_plan_command(app);
  wafer::cli::add_serve_command(app);
  wafer::cli::add_export_command(app);
  wafer::cli::add_quantize_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    wafer::finalize_world();
    return rc;
  } catch (const wafer::Error& e) {
    return report(e.what());
  } catch (const std::bad_alloc&) {
    return report("out of memory");
  } catch (const std::exception& e) {
    return report(e.what());
  }
  wafer::finalize_world();
  return 0;
}
