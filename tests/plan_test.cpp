// tests/plan_test.cpp: the planner's pieces against hand-computed cases: alpha-beta costs, the
// pipeline bubble of unequal stages, legality messages, memory fits, the JSON fields, machines.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>

#include "core/error.h"
#include "plan/machine.h"
#include "plan/planner.h"
#include "plan/published.h"
#include "plan/svg.h"
#include "plan/validate.h"
#include "plan/wafer_scale.h"

namespace wafer {
namespace {

TEST(Plan, AlphaBetaCosts) {
  const LinkLevel l{.bw_gbs = 10, .latency_us = 5};  // 10 GB/s, 5 µs
  // Ring all-reduce of 1 GB over 4 ranks: 2·3·5 µs + 2·(3/4)·1e9 / 1e10 s = 30 µs + 0.15 s.
  EXPECT_NEAR(all_reduce_seconds(1e9, 4, l), 0.15003, 1e-9);
  // Reduce-scatter: half of it: 3·5 µs + (3/4)·0.1 s.
  EXPECT_NEAR(reduce_scatter_seconds(1e9, 4, l), 0.075015, 1e-9);
  EXPECT_NEAR(p2p_seconds(1e6, l), 5e-6 + 1e-4, 1e-12);
  EXPECT_EQ(all_reduce_seconds(1e9, 1, l), 0.0);
}

TEST(Plan, GroupsCrossNodesByRankOrder) {
  // 8 ranks per node: tp 8 (stride 1) stays inside, dp 2 at stride 8 crosses, tp 16 crosses.
  EXPECT_FALSE(group_crosses_nodes(1, 8, 8));
  EXPECT_TRUE(group_crosses_nodes(8, 2, 8));
  EXPECT_TRUE(group_crosses_nodes(1, 16, 8));
  EXPECT_FALSE(group_crosses_nodes(2, 4, 8));
}

TEST(Plan, BubbleOfEqualStagesIsTheFormula) {
  // p equal stages, forward f and backward 2f, m micro-batches: makespan (m + p - 1)·3f.
  const int p = 4, m = 8;
  const std::vector<double> f(p, 1.0), b(p, 2.0);
  for (PipeSchedule s : {PipeSchedule::GPipe, PipeSchedule::OneFOneB})
    EXPECT_DOUBLE_EQ(pipeline_makespan(s, f, b, m, 0), (m + p - 1) * 3.0);
}

TEST(Plan, BubbleOfUnequalStagesShowsTheSlowStage) {
  // Two stages, the last (the LM head) twice as slow: forward 1 | 2, backward 2 | 4, m = 4.
  // GPipe by hand: stage 1 forwards end at 3,5,7,9; its backwards at 13,17,21,25; stage 0's
  // backward of micro-batch 3 starts at 25 and ends at 27. (p-1)/m would say 1.25 × the busiest.
  const std::vector<double> f{1, 2}, b{2, 4};
  EXPECT_DOUBLE_EQ(pipeline_makespan(PipeSchedule::GPipe, f, b, 4, 0), 27.0);
  // 1F1B: stage 0 runs F0 F1 B0 F2 B1 F3 B2 B3, stage 1 F0 B0 F1 B1 ...; the slow stage is busy
  // from t=1 to 1 + 4·6 = 25, then stage 0's last backward: 27.
  EXPECT_DOUBLE_EQ(pipeline_makespan(PipeSchedule::OneFOneB, f, b, 4, 0), 27.0);
  // A p2p cost of 0.5 per crossing adds to the critical path: the first forward's hop and the last backward's.
  EXPECT_DOUBLE_EQ(pipeline_makespan(PipeSchedule::OneFOneB, f, b, 4, 0.5), 28.0);
}

PlanRequest request(const std::string& preset_name, const std::string& machine) {
  PlanRequest r;
  r.model = *preset(preset_name);
  r.machine = load_machine(machine);
  r.seq = 256;
  r.global_batch = 8;
  return r;
}

TEST(Plan, Tp2On256MIsRejectedNaming17Heads) {
  PlanRequest r = request("256M", "this");
  r.tp = 2;
  const std::vector<PlanResult> rs = plan_layouts(r);
  ASSERT_FALSE(rs.empty());
  for (const PlanResult& p : rs) {
    EXPECT_FALSE(p.fits);
    EXPECT_NE(p.why.find("17 attention heads"), std::string::npos) << p.why;
  }
}

TEST(Plan, ThirteenBDoesNotFitOneCpuNode) {
  PlanRequest r = request("13B", "this");
  r.seq = 2048;
  const std::vector<PlanResult> rs = plan_layouts(r);
  ASSERT_FALSE(rs.empty());
  bool short_of_memory = false;
  for (const PlanResult& p : rs) {
    EXPECT_FALSE(p.fits) << layout_label(p.opts);
    short_of_memory = short_of_memory || p.why.find("short of memory by") != std::string::npos;
  }
  EXPECT_TRUE(short_of_memory);
  // 13B's weights alone: 12,853,386,240 fp32 parameters = 47.9 GiB > 24 GiB.
  MemoryOptions o;
  o.seq = 2048;
  EXPECT_GT(rank_memory(r.model, o, 0).weights, 24.0 * (1 << 30));
}

TEST(Plan, SmallModelFitsAndIsRankedFastestFirst) {
  const std::vector<PlanResult> rs = plan_layouts(request("111M", "this"));
  ASSERT_TRUE(rs.front().fits);
  for (size_t i = 1; i < rs.size() && rs[i].fits; ++i) EXPECT_LE(rs[i - 1].time.step, rs[i].time.step);
  const PlanResult& p = rs.front();
  EXPECT_NEAR(p.time.step, p.time.compute + p.time.comm + p.time.bubble, 1e-9 * p.time.step);
  EXPECT_GT(p.tokens_per_s, 0);
  EXPECT_GT(p.mfu, 0);
  EXPECT_LT(p.mfu, 1);
}

TEST(Plan, FixingEveryPartEvaluatesOneLayout) {
  PlanRequest r = request("111M", "a100-80gb");
  r.tp = 2, r.pp = 2, r.cp = 1, r.dp = 2, r.sp = true, r.zero = 1, r.micro_batches = 4, r.batch = 2;
  r.schedule = PipeSchedule::OneFOneB, r.recompute = Recompute::None;
  const std::vector<PlanResult> rs = plan_layouts(r);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_TRUE(rs[0].fits);
  EXPECT_EQ(rs[0].memory.size(), 2u);
  EXPECT_GT(rs[0].time.bubble, 0);
}

TEST(Plan, JsonHasTheFields) {
  PlanRequest r = request("256M", "this");
  const std::vector<PlanResult> rs = plan_layouts(r);
  bool saw_fit = false, saw_why = false;
  for (const PlanResult& p : rs) {
    const auto j = plan_result_json(p);
    for (const char* k : {"layout", "fits", "peak_mb", "memory", "step_s", "tokens_per_s", "mfu"})
      EXPECT_TRUE(j.contains(k)) << k;
    for (const char* k : {"tp", "pp", "cp", "dp", "sp", "zero", "micro_batches", "schedule", "recompute"})
      EXPECT_TRUE(j["layout"].contains(k)) << k;
    for (const char* k : {"weights", "weights_bf16", "gradients", "moments", "activations", "logits", "buffers"})
      EXPECT_TRUE(j["memory"].contains(k)) << k;
    saw_fit = saw_fit || p.fits;
    if (!p.fits) saw_why = saw_why || (j.contains("why") && !j["why"].get<std::string>().empty());
  }
  EXPECT_TRUE(saw_fit);
  EXPECT_TRUE(saw_why);  // tp = 17 does not fit 2 ranks, tp = 2 does not divide 17 heads
}

TEST(Plan, MachinesRoundTripAndRejectNonsense) {
  for (const std::string& n : builtin_machine_names()) {
    const Machine m = load_machine(n);
    const Machine back = machine_from_json(machine_to_json(m), n);
    EXPECT_EQ(back.peak_tflops_bf16, m.peak_tflops_bf16) << n;
    EXPECT_EQ(back.inter.bw_gbs, m.inter.bw_gbs) << n;
    EXPECT_EQ(back.softmax_gelems, m.softmax_gelems) << n;
    EXPECT_EQ(back.gelu_bwd_gelems, m.gelu_bwd_gelems) << n;
    EXPECT_FALSE(m.source.empty()) << n;
  }
  EXPECT_THROW(load_machine("no-such-machine"), Error);
  EXPECT_THROW(machine_from_json(nlohmann::json::parse(R"({"device": {}, "links": {}})"), "x"), Error);
  // wafer bench --ceilings --machine-out: the measured rates shared by the node's cores.
  const Machine c = machine_from_ceilings(nlohmann::json::parse(R"({"sgemm_gflops": 46, "read_gb_per_s": 12})"), 2,
                                          24, "here");
  EXPECT_EQ(c.devices_per_node, 2);
  EXPECT_TRUE(c.memory_shared);
  EXPECT_DOUBLE_EQ(c.peak_tflops_fp32, 0.023);
  EXPECT_DOUBLE_EQ(c.peak_tflops_bf16, 0.023);  // no bf16 GEMMs measured: the fp32 rate
  EXPECT_DOUBLE_EQ(c.mem_bw_gbs, 6);
  EXPECT_DOUBLE_EQ(c.mem_gb, 24);
  EXPECT_EQ(c.softmax_gelems, 0);  // not measured: the loss is costed by its bytes
  const Machine r = machine_from_ceilings(
      nlohmann::json::parse(R"({"sgemm_gflops": 46, "read_gb_per_s": 12, "sgemm_max_eff": 0.9, "sgemm_half_dim": 40,
                                "softmax_gelem_per_s": 0.8, "gelu_forward_gelem_per_s": 3, "gelu_backward_gelem_per_s": 2})"),
      2, 24, "here");
  EXPECT_DOUBLE_EQ(r.gemm_max_eff, 0.9);
  EXPECT_DOUBLE_EQ(r.gemm_half_dim, 40);
  EXPECT_DOUBLE_EQ(r.softmax_gelems, 0.4);  // per core
  EXPECT_DOUBLE_EQ(r.gelu_fwd_gelems, 1.5);
  EXPECT_DOUBLE_EQ(r.gelu_bwd_gelems, 1.0);
  EXPECT_DOUBLE_EQ(r.threaded_rank_eff, 1.0);  // not measured: threads add up as processes do
  EXPECT_DOUBLE_EQ(machine_from_ceilings(nlohmann::json::parse(
                                             R"({"sgemm_gflops": 46, "read_gb_per_s": 12, "threaded_rank_gemm_eff": 0.9})"),
                                         2, 24, "here")
                       .threaded_rank_eff,
                   0.9);
  // The efficiency curve: a large square GEMM near the maximum, a thin one far below.
  const Machine a = load_machine("a100-80gb");
  EXPECT_GT(a.gemm_efficiency(8192, 8192, 8192), 0.75);
  EXPECT_LT(a.gemm_efficiency(1, 8192, 8192), 0.01);
}

TEST(Plan, GemmEfficiencyFitRecoversTheCurve) {
  // Rates made by eff = 0.8 · h / (h + 100) at a 200 GFLOP/s peak: the fit gives both back.
  auto rate = [](double m, double n, double k) {
    const double h = 3.0 / (1 / m + 1 / n + 1 / k);
    return 200 * 0.8 * h / (h + 100);
  };
  std::vector<GemmSample> s;
  for (auto [m, n, k] : {std::tuple{1024., 768., 256.}, {1024., 256., 256.}, {256., 3072., 1024.}, {64., 64., 64.}})
    s.push_back({m, n, k, rate(m, n, k)});
  double max_eff = 0, half = 0;
  fit_gemm_efficiency(s, 200, &max_eff, &half);
  EXPECT_NEAR(max_eff, 0.8, 1e-9);
  EXPECT_NEAR(half, 100, 1e-6);
  // Every shape at the peak: no shape dependence, and never above the peak.
  for (auto& g : s) g.gflops = 210;
  fit_gemm_efficiency(s, 200, &max_eff, &half);
  EXPECT_DOUBLE_EQ(max_eff, 1.0);
  EXPECT_DOUBLE_EQ(half, 0.0);
}

TEST(Plan, PassesAreBoundByBytesOrTranscendentals) {
  // 1 GB at 10 GB/s: 0.1 s; 1e9 exps at 2 G/s: 0.5 s, the longer; without a rate, the bytes.
  EXPECT_DOUBLE_EQ(pass_seconds(1e9, 1e9, 10, 2), 0.5);
  EXPECT_DOUBLE_EQ(pass_seconds(1e9, 1e8, 10, 2), 0.1);
  EXPECT_DOUBLE_EQ(pass_seconds(1e9, 1e9, 10, 0), 0.1);
  // The loss's exps lengthen a step on a machine that measured them.
  PlanRequest r = request("111M", "this");
  r.tp = 1, r.pp = 1, r.cp = 1, r.dp = 1, r.zero = 0, r.micro_batches = 1, r.batch = 8;
  r.recompute = Recompute::None;
  const double with_rates = plan_layouts(r).front().time.step;
  r.machine.softmax_gelems = r.machine.gelu_fwd_gelems = r.machine.gelu_bwd_gelems = 0;
  const double bytes_only = plan_layouts(r).front().time.step;
  // 8 x 256 rows x 50,257 logits, two exp passes at 2 x 0.355 G/s: about 0.3 s more.
  EXPECT_GT(with_rates - bytes_only, 0.2);
}

TEST(Plan, ARankSpanningCoresLosesTheThreadedEfficiencyOnItsGemms) {
  // One rank on a 2-core node whose threads reach half a process each computes its GEMMs and
  // attention as one core does, and its memory passes at both cores' bandwidth: the same step as
  // one rank on a 1-core node with twice the bandwidth and transcendental rates.
  PlanRequest r = request("111M", "this");
  r.tp = 1, r.pp = 1, r.cp = 1, r.dp = 1, r.zero = 0, r.micro_batches = 1, r.batch = 8;
  r.recompute = Recompute::None, r.precision = Precision::F32;
  const double whole = plan_layouts(r).front().time.step;
  r.machine.threaded_rank_eff = 0.5;
  const double threaded = plan_layouts(r).front().time.step;
  PlanRequest one = r;
  one.machine.devices_per_node = 1, one.machine.threaded_rank_eff = 1;
  one.machine.mem_bw_gbs *= 2, one.machine.softmax_gelems *= 2;
  one.machine.gelu_fwd_gelems *= 2, one.machine.gelu_bwd_gelems *= 2;
  EXPECT_NEAR(threaded, plan_layouts(one).front().time.step, 1e-9 * threaded);
  EXPECT_GT(threaded, 1.5 * whole);  // GEMMs are most of a step
  // A rank per core is single-threaded: dp2 does not lose it.
  r.dp = 2;
  const double dp2 = plan_layouts(r).front().time.step;
  r.machine.threaded_rank_eff = 1;
  EXPECT_DOUBLE_EQ(plan_layouts(r).front().time.step, dp2);
}

TEST(Plan, WaferScaleModes) {
  WaferRequest w{*preset("111M"), load_machine("cs2"), 1, 2048, 0};
  std::vector<WaferModeResult> small = plan_wafer_scale(w);
  ASSERT_EQ(small.size(), 2u);
  EXPECT_TRUE(small[0].fits) << small[0].why;  // 111M fits layer-pipelined
  EXPECT_TRUE(small[1].fits);
  int cols = 0;
  for (const auto& g : small[0].regions) cols += g.cols;
  EXPECT_EQ(cols, 922);
  w.model = *preset("13B");
  w.systems = 16;
  std::vector<WaferModeResult> big = plan_wafer_scale(w);
  EXPECT_FALSE(big[0].fits);  // 13B's training state alone is 200 GB
  EXPECT_TRUE(big[1].fits) << big[1].why;
  EXPECT_NE(wafer_svg(w, big[1]).find("<svg"), std::string::npos);
}

TEST(Plan, SvgOfAClusterLayout) {
  PlanRequest r = request("111M", "a100-80gb");
  r.nodes = 2, r.tp = 4, r.dp = 4, r.pp = 1, r.cp = 1;  // 111M: 12 heads
  const std::vector<PlanResult> rs = plan_layouts(r);
  ASSERT_TRUE(rs.front().fits);
  const std::string s = cluster_svg(r, rs.front());
  EXPECT_NE(s.find("node 1"), std::string::npos);
  EXPECT_NE(s.find("rank 15"), std::string::npos);
  EXPECT_NE(s.find("between nodes"), std::string::npos);  // dp (ranks 0, 4, 8, 12) crosses the two nodes
}

TEST(Plan, PublishedTableIsPredictedWithOneMachineFile) {
  const auto rows = compare_published(load_machine("a100-80gb"));
  ASSERT_EQ(rows.size(), narayanan_table1().size());
  for (const auto& c : rows) {
    EXPECT_GT(c.predicted_step_s, 0);
    EXPECT_LT(std::abs(c.error), 0.5) << c.run.params_b << "B";  // a loose sanity bound; the README has the table
  }
  EXPECT_NE(published_table(rows).find("| 1008.0B |"), std::string::npos);
}

TEST(Plan, ValidationParsesMetricsAndPrintsTheTable) {
  // Three steps of 1024 tokens at 2048, 1024, 512 tokens/s; skip 1: steps of 1 s and 2 s.
  const std::string jsonl = R"({"step": 1, "loss": 9, "tokens_per_s": 2048, "peak_rss_mb": [100, 120]}
{"step": 1, "eval_loss": 9}
{"step": 2, "loss": 8, "tokens_per_s": 1024, "peak_rss_mb": [110, 130]}
{"step": 3, "loss": 7, "tokens_per_s": 512, "peak_rss_mb": [110, 125]}
)";
  double step = 0, peak = 0;
  parse_metrics(jsonl, 1, 1024, &step, &peak);
  EXPECT_DOUBLE_EQ(step, 1.5);
  EXPECT_DOUBLE_EQ(peak, 130);
  EXPECT_THROW(parse_metrics(jsonl, 3, 1024, &step, &peak), Error);
  ValidationRow a{"tp1 pp1", 1.1, 1.0, 99, 100, true, {}, {}}, b{"dp2", 2.0, 0.98, 50, 50, true, {}, {}},
      c{"590M tp2 pp2", 30, 20, 1000, 1050, false, {}, {}};
  const std::string t = validation_table({a, b, c});
  EXPECT_NE(t.find("| tp1 pp1 | 1.100 | 1.000 | +10% | 99 | 100 | -1% |\n"), std::string::npos) << t;
  EXPECT_NE(t.find("| dp2 | 2.000 | 0.980 | +104% | 50 | 50 | +0% | outside the targets"), std::string::npos) << t;
  // Only the planner's ranked layouts compete for the fastest; the 590M row is another model.
  EXPECT_NE(t.find("ranked first: tp1 pp1, measured +2% against the measured fastest (dp2)"), std::string::npos) << t;
  EXPECT_NE(t.find("2 missed"), std::string::npos) << t;  // the step times of dp2 and 590M
  EXPECT_NE(validation_table({a}).find("all met"), std::string::npos);
  // The runs: the fixed model's fitting layouts, each a wafer train command with its layout, then 590M.
  const Machine m = load_machine("this");
  const auto cases = validation_cases(m, 3);
  ASSERT_GE(cases.size(), 2u);
  for (size_t i = 0; i + 1 < cases.size(); ++i) {
    EXPECT_TRUE(cases[i].ranked);
    EXPECT_TRUE(cases[i].plan.fits);
    EXPECT_EQ(cases[i].plan.opts.recompute, Recompute::None);
  }
  const std::string cmd = validation_command("wafer", cases[0], "M", "DATA", "OUT", 5);
  EXPECT_NE(cmd.find("wafer train --preset 111M --n-layer 16"), std::string::npos) << cmd;
  EXPECT_NE(cmd.find("--data DATA --out OUT"), std::string::npos) << cmd;
  const ValidationCase& big = cases.back();
  EXPECT_FALSE(big.ranked);
  EXPECT_TRUE(big.plan.fits) << big.plan.why;
  const std::string bc = validation_command("wafer", big, "M", "DATA", "OUT", 5);
  EXPECT_NE(bc.find("mpirun -np 4 --oversubscribe wafer train --init M --batch 2 --seq 128 --micro-batches 2"),
            std::string::npos) << bc;
  EXPECT_NE(bc.find("--recompute full --tp 2 --pp 2 --cp 1 --dp 1 --zero 1"), std::string::npos) << bc;
  // Four ranks on the two cores: a device per rank at a core's rate, the step at least the
  // whole job's work over the two cores.
  const Machine four = shared_by_ranks(m, 4);
  EXPECT_EQ(four.devices_per_node, 4);
  EXPECT_DOUBLE_EQ(four.peak_tflops_fp32, m.peak_tflops_fp32);
  PlanResult p;
  p.opts.layout.tp = 2, p.opts.layout.pp = 2, p.opts.micro_batches = 2;
  p.time.stage_fwd = {1.0, 1.0}, p.time.stage_bwd = {2.0, 2.0}, p.time.step = 9.0;
  EXPECT_DOUBLE_EQ(oversubscribed_step(p, 2, 1.0), 12.0);  // (3 + 3) s x 2 micro-batches x 2 tp ranks / 2 cores
  EXPECT_DOUBLE_EQ(oversubscribed_step(p, 2, 0.6), 20.0);  // the cores at 60% when shared by two ranks each
  p.time.step = 13.0;
  EXPECT_DOUBLE_EQ(oversubscribed_step(p, 2, 1.0), 13.0);
}

}  // namespace
}  // namespace wafer
