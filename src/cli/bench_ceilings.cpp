// cli/bench_ceilings.cpp
#include "cli/bench_ceilings.h"

#include <omp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <random>
#include <tuple>
#include <vector>

#include "cli/bench_timing.h"
#include "core/error.h"
#include "kernels/cpu/bandwidth.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/gelu.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/matmul.h"
#include "plan/machine.h"

namespace wafer::cli {

namespace {

using Json = nlohmann::ordered_json;

// The best rate of the model's largest block shape (c_fc of 111M over 1024 rows) and a square one.
double peak_gemm_gflops(Precision p, int repeats) {
  double best = 0;
  for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{1024, 3072, 768}, {2048, 2048, 2048}}) {
    std::vector<float> a(size_t(M * K), 0.5f), b(size_t(K * N), 0.25f), c(size_t(M * N));
    std::vector<uint16_t> a16(a.size()), b16(b.size());
    convert_to_bf16(a16.data(), a.data(), int64_t(a.size()));
    convert_to_bf16(b16.data(), b.data(), int64_t(b.size()));
    const double s = best_seconds(repeats, [&] {
      gemm(p, M, N, K, 1.0f, {a.data(), a16.data(), K, false}, {b.data(), b16.data(), N, false}, 0.0f, c.data(), N);
    });
    best = std::max(best, 2.0 * double(M * N * K) / s / 1e9);
  }
  return best;
}

// fp32 GEMMs as a training step runs them: for a linear layer of IC -> OC over R = 1024 rows, the
// forward y[R, OC] = x[R, IC] W[IC, OC], the input gradient dx[R, IC] += dy[R, OC] Wᵀ and the
// weight gradient dW[IC, OC] += xᵀ dy (the transposed operands are what backward passes cost).
// Each is timed over 8 layers' distinct operands in turn, as a step meets them, not in cache from
// the call before: a GEMM repeated on the same operands runs faster than any step sees it.
std::vector<GemmSample> block_gemm_samples(int repeats) {
  const int64_t R = 1024, copies = 8;
  std::vector<GemmSample> out;
  for (auto [IC, OC] : {std::pair<int64_t, int64_t>{256, 768}, {256, 256}, {256, 1024}, {1024, 256}, {256, 3072},
                        {3072, 256}}) {
    struct Layer {
      std::vector<float> x, w, y, dy, dx, dw;
    };
    std::vector<Layer> ls;
    for (int64_t c = 0; c < copies; ++c)
      ls.push_back({std::vector<float>(size_t(R * IC), 0.5f), std::vector<float>(size_t(IC * OC), 0.25f),
                    std::vector<float>(size_t(R * OC)), std::vector<float>(size_t(R * OC), 0.1f),
                    std::vector<float>(size_t(R * IC)), std::vector<float>(size_t(IC * OC))});
    const double flops = 2.0 * double(R * IC * OC) * double(copies);
    const double f = best_seconds(repeats, [&] {
      for (Layer& l : ls)
        gemm(Precision::F32, R, OC, IC, 1.0f, {l.x.data(), nullptr, IC, false}, {l.w.data(), nullptr, OC, false}, 0.0f,
             l.y.data(), OC);
    });
    const double di = best_seconds(repeats, [&] {
      for (Layer& l : ls)
        gemm(Precision::F32, R, IC, OC, 1.0f, {l.dy.data(), nullptr, OC, false}, {l.w.data(), nullptr, OC, true}, 1.0f,
             l.dx.data(), IC);
    });
    const double dwt = best_seconds(repeats, [&] {
      for (Layer& l : ls)
        gemm(Precision::F32, IC, OC, R, 1.0f, {l.x.data(), nullptr, IC, true}, {l.dy.data(), nullptr, OC, false}, 1.0f,
             l.dw.data(), OC);
    });
    out.push_back({double(R), double(OC), double(IC), flops / f / 1e9});
    out.push_back({double(R), double(IC), double(OC), flops / di / 1e9});
    out.push_back({double(IC), double(OC), double(R), flops / dwt / 1e9});
  }
  return out;
}

// Elements per second of the passes bound by their transcendentals (1e9/s).
void transcendental_rates(int repeats, Json& j) {
  const int64_t N = 1024, V = 50257, F = 3072;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-4.0f, 4.0f);
  std::vector<float> logits(size_t(N * V)), rowmax(static_cast<size_t>(N));
  for (float& l : logits) l = u(rng);
  std::vector<int32_t> targets(static_cast<size_t>(N));
  for (auto& t : targets) t = int32_t(rng() % uint32_t(V));
  std::vector<double> sumexp(static_cast<size_t>(N)), target_logit(static_cast<size_t>(N));
  cross_entropy_shard_max(rowmax.data(), logits.data(), N, V, V);
  const double ce = best_seconds(repeats, [&] {
    cross_entropy_shard_sums(sumexp.data(), target_logit.data(), logits.data(), targets.data(), rowmax.data(), N, V, 0, V);
  });
  j["softmax_gelem_per_s"] = double(N * V) / ce / 1e9;
  std::vector<float> in(size_t(N * F)), out(size_t(N * F)), dout(size_t(N * F), 0.1f), din(size_t(N * F));
  for (float& v : in) v = u(rng);
  const double gf = best_seconds(repeats, [&] { gelu_erf_forward(out.data(), in.data(), N * F); });
  const double gb = best_seconds(repeats, [&] { gelu_erf_backward(din.data(), in.data(), dout.data(), N * F); });
  j["gelu_forward_gelem_per_s"] = double(N * F) / gf / 1e9;
  j["gelu_backward_gelem_per_s"] = double(N * F) / gb / 1e9;
}

// GFLOP/s of `procs` processes at once with `threads` threads each, summed, each running the
// GEMMs of a training step (forward and both backward products) over its own two blocks of width
// C, as a rank of tensor-parallel degree tp holds them, on R rows for `seconds`. Forked children,
// as ranks are processes: they share the cores as mpirun --oversubscribe's ranks do, evicting
// each other's cached operands when time-sliced.
double concurrent_gemm_gflops(int procs, int threads, int64_t R, int64_t C, int64_t tp, double seconds) {
  std::vector<int> fds;
  for (int p = 0; p < procs; ++p) {
    int fd[2];
    WAFER_CHECK(pipe(fd) == 0, "[bench] pipe failed");
    const pid_t pid = fork();
    WAFER_CHECK(pid >= 0, "[bench] fork failed");
    if (pid == 0) {
      close(fd[0]);
      omp_set_num_threads(threads);
      struct Linear {
        int64_t IC, OC;
        std::vector<float> x, w, y, dx, dw;
      };
      std::vector<Linear> ls;
      for (int layer = 0; layer < 2; ++layer)
        for (auto [IC, OC] : {std::pair<int64_t, int64_t>{C, 3 * C / tp}, {C / tp, C}, {C, 4 * C / tp}, {4 * C / tp, C}})
          ls.push_back({IC, OC, std::vector<float>(size_t(R * IC), 0.5f), std::vector<float>(size_t(IC * OC), 0.01f),
                        std::vector<float>(size_t(R * OC)), std::vector<float>(size_t(R * IC)),
                        std::vector<float>(size_t(IC * OC))});
      double flops = 0;
      const auto t0 = Clock::now();
      while (seconds_since(t0) < seconds)
        for (Linear& l : ls) {  // the trainer's own products (y as the output gradient)
          matmul_forward(l.y.data(), l.x.data(), l.w.data(), nullptr, R, l.IC, l.OC);
          matmul_backward(l.dx.data(), l.dw.data(), nullptr, l.y.data(), l.x.data(), l.w.data(), R, l.IC, l.OC);
          flops += 6.0 * double(R * l.IC * l.OC);
        }
      const double rate = flops / seconds_since(t0) / 1e9;
      _exit(write(fd[1], &rate, sizeof rate) == sizeof rate ? 0 : 1);
    }
    close(fd[1]);
    fds.push_back(fd[0]);
  }
  double total = 0;
  for (int fd : fds) {
    double rate = 0;
    const bool ok = read(fd, &rate, sizeof rate) == sizeof rate;
    close(fd);
    total += ok ? rate : 0;
  }
  for (int p = 0; p < procs; ++p) wait(nullptr);
  WAFER_CHECK(total > 0, "[bench] the concurrent GEMM processes reported nothing");
  return total;
}

}  // namespace

Json measure_ceilings(int repeats) {
  Json j;
  // First, while this process has started no OpenMP threads for the children to inherit.
  const int cores = omp_get_max_threads();
  // Ranks time-sliced on a core: two single-threaded processes per core against one, on
  // the 590M tp2 run's layers (256 rows, C = 1536, tp 2).
  const double alone = concurrent_gemm_gflops(cores, 1, 256, 1536, 2, 3.0);
  const double shared = concurrent_gemm_gflops(2 * cores, 1, 256, 1536, 2, 3.0);
  j["gemm_procs_per_core_1_gflops"] = alone;
  j["gemm_procs_per_core_2_gflops"] = shared;
  j["shared_core_gemm_eff"] = std::min(1.0, shared / alone);
  // A rank spanning the cores: one process with a thread per core against a single-threaded
  // process per core, on the block shapes of the fit below (1024 rows, C = 256): threads of one
  // GEMM split its products and pack their operands apart, so they do not add up to processes.
  // The difference is a few percent, less than this machine's noise from one second to the
  // next: the best of three alternating runs of each.
  double procs = 0, threaded = 0;
  for (int round = 0; round < 3; ++round) {
    procs = std::max(procs, concurrent_gemm_gflops(cores, 1, 1024, 256, 1, 1.5));
    threaded = std::max(threaded, concurrent_gemm_gflops(1, cores, 1024, 256, 1, 1.5));
  }
  j["gemm_thread_per_core_gflops"] = threaded;
  j["gemm_process_per_core_gflops"] = procs;
  j["threaded_rank_gemm_eff"] = std::min(1.0, threaded / procs);
  j["sgemm_gflops"] = peak_gemm_gflops(Precision::F32, repeats);
  if (bf16_gemm_supported()) j["bf16_gemm_gflops"] = peak_gemm_gflops(Precision::BF16, repeats);
  const std::vector<GemmSample> shapes = block_gemm_samples(repeats);
  Json list = Json::array();
  for (const GemmSample& g : shapes) list.push_back({g.m, g.n, g.k, g.gflops});
  j["sgemm_shapes"] = list;
  double max_eff = 1, half_dim = 0;
  fit_gemm_efficiency(shapes, j["sgemm_gflops"].get<double>(), &max_eff, &half_dim);
  j["sgemm_max_eff"] = max_eff;
  j["sgemm_half_dim"] = half_dim;
  transcendental_rates(repeats, j);
  j["gemm_isa"] = gemm_isa_name();
  j["kernel_isa"] = isa_name(kernel_isa());
  // Streaming read bandwidth: a sum over 1 GiB, all threads, far larger than any cache.
  const int64_t n = int64_t(1) << 28;
  std::vector<float> big(static_cast<size_t>(n));
  float* p = big.data();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) p[i] = 1.0f;
  double sink = 0;
  const double s = best_seconds(repeats, [&] { sink += sum_all(p, n); });
  j["read_gb_per_s"] = double(n) * 4.0 / s / 1e9;
  WAFER_ASSERT(sink > 0);
  return j;
}

void print_ceilings(const Json& c) {
  std::printf("sgemm fp32           %10.1f GFLOP/s\n", c["sgemm_gflops"].get<double>());
  if (c.contains("bf16_gemm_gflops"))
    std::printf("bf16 GEMM            %10.1f GFLOP/s (%s)\n", c["bf16_gemm_gflops"].get<double>(),
                c["gemm_isa"].get<std::string>().c_str());
  std::printf("sgemm at block shapes %9.0f%% of the peak at best (half-dimension %.0f)\n",
              100 * c["sgemm_max_eff"].get<double>(), c["sgemm_half_dim"].get<double>());
  std::printf("softmax exp          %10.2f G elements/s\n", c["softmax_gelem_per_s"].get<double>());
  std::printf("GELU (erf)           %10.2f forward, %.2f backward G elements/s\n",
              c["gelu_forward_gelem_per_s"].get<double>(), c["gelu_backward_gelem_per_s"].get<double>());
  std::printf("ranks sharing cores  %10.0f%% (GEMMs of 2 single-threaded processes per core against 1)\n",
              100 * c["shared_core_gemm_eff"].get<double>());
  if (c.contains("threaded_rank_gemm_eff"))
    std::printf("threads of one rank  %10.0f%% (GEMMs of 1 process with a thread per core against 1 process per core)\n",
                100 * c["threaded_rank_gemm_eff"].get<double>());
  std::printf("streaming read       %10.1f GB/s\n", c["read_gb_per_s"].get<double>());
}

}  // namespace wafer::cli
