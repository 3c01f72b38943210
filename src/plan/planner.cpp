// plan/planner.cpp: the layout search and the time model.
//
// Time of one micro-batch on one stage = Σ over its blocks of
//   GEMMs       2mnk / (peak · eff(m, n, k)) for c_attn, attn c_proj, c_fc, mlp c_proj (backward 2×)
//   attention   causal: 2·N·T·Ca FLOPs forward at the efficiency of a (Tc, T, D) product (backward 2.5×:
//               the probabilities are recomputed from the log-sum-exp)
//   elementwise LayerNorms, residual adds: bytes moved / memory bandwidth (backward 2×); GELU and
//               the loss's softmax the longer of that and their erf/exp at the machine's measured rate
//   tp          2 all-reduces of [N, C] forward and 2 backward (with sp: reduce-scatter + all-gather)
//   cp          the ring's K/V shifts, overlapped with attention: only the excess is exposed
// plus the embedding on the first stage and the LM head and loss on the last. Recomputation adds
// the attention (selective) or the whole block (full) forward to the backward. The stages' times
// run through the real schedule (parallel/pipeline_schedule.h) to give the bubble, and the step
// adds the data-parallel gradient reduction and the AdamW pass (memory-bound) after it.
#include "plan/planner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "parallel/pipeline_schedule.h"

namespace wafer {

double all_reduce_seconds(double bytes, int p, const LinkLevel& l) {
  if (p <= 1) return 0;
  return 2.0 * (p - 1) * l.latency_us * 1e-6 + 2.0 * (p - 1) / p * bytes / (l.bw_gbs * 1e9);
}

double reduce_scatter_seconds(double bytes, int p, const LinkLevel& l) {
  if (p <= 1) return 0;
  return (p - 1) * l.latency_us * 1e-6 + double(p - 1) / p * bytes / (l.bw_gbs * 1e9);
}

double p2p_seconds(double bytes, const LinkLevel& l) { return l.latency_us * 1e-6 + bytes / (l.bw_gbs * 1e9); }

double pass_seconds(double bytes, double elements, double bw_gbs, double gelems) {
  const double memory = bytes / (bw_gbs * 1e9);
  return gelems > 0 ? std::max(memory, elements / (gelems * 1e9)) : memory;
}

bool group_crosses_nodes(int stride, int size, int ranks_per_node) {
  return size > 1 && (0 + stride * (size - 1)) / ranks_per_node != 0;
}

double pipeline_makespan(PipeSchedule sched, const std::vector<double>& fwd, const std::vector<double>& bwd, int m,
                         double p2p) {
  const int p = int(fwd.size());
  std::vector<std::vector<PipeAction>> acts{size_t(p)};
  for (int s = 0; s < p; ++s) acts[size_t(s)] = pipeline_schedule(sched, p, s, m);
  // done_f[s][i] / done_b[s][i]: finish times (-1: not yet run).
  std::vector<std::vector<double>> done_f(size_t(p), std::vector<double>(size_t(m), -1)), done_b = done_f;
  std::vector<size_t> next(size_t(p), 0);
  std::vector<double> free_at(size_t(p), 0);
  for (bool progress = true; progress;) {
    progress = false;
    for (int s = 0; s < p; ++s) {
      while (next[size_t(s)] < acts[size_t(s)].size()) {
        const PipeAction a = acts[size_t(s)][next[size_t(s)]];
        double ready;
        if (a.kind == PipeAction::Forward) {
          if (s > 0 && done_f[size_t(s - 1)][size_t(a.micro)] < 0) break;
          ready = s > 0 ? done_f[size_t(s - 1)][size_t(a.micro)] + p2p : 0;
        } else {
          if (s < p - 1 && done_b[size_t(s + 1)][size_t(a.micro)] < 0) break;
          ready = s < p - 1 ? done_b[size_t(s + 1)][size_t(a.micro)] + p2p : done_f[size_t(s)][size_t(a.micro)];
        }
        const double start = std::max(ready, free_at[size_t(s)]);
        const double end = start + (a.kind == PipeAction::Forward ? fwd[size_t(s)] : bwd[size_t(s)]);
        (a.kind == PipeAction::Forward ? done_f : done_b)[size_t(s)][size_t(a.micro)] = end;
        free_at[size_t(s)] = end;
        ++next[size_t(s)];
        progress = true;
      }
    }
  }
  for (int s = 0; s < p; ++s) WAFER_ASSERT(next[size_t(s)] == acts[size_t(s)].size());
  return *std::max_element(free_at.begin(), free_at.end());
}

std::string layout_label(const MemoryOptions& o) {
  const Layout& l = o.layout;
  std::string s = str_cat("tp", l.tp, " pp", l.pp, " cp", l.cp, " dp", l.dp);
  if (l.sp) s += " sp";
  if (l.zero) s += " zero1";
  if (l.pp > 1) s += l.schedule == PipeSchedule::GPipe ? " gpipe" : " 1f1b";
  return s + str_cat(" b", o.batch, " m", o.micro_batches, " rc=", recompute_name(o.recompute));
}

namespace {

struct Ctx {
  const PlanRequest& r;
  const Machine& mc;
  int world, ranks_per_node;
  double share;  // devices' worth of compute and bandwidth per rank
  // GEMM rate per rank in devices' worth: a rank spanning several cores of a CPU node runs them
  // as threads of one process, which lose the machine's threaded_rank_eff against a process each.
  double gemm_share() const { return share > 1 ? share * mc.threaded_rank_eff : share; }
};

// The link level a group of `size` ranks at `stride` spans.
const LinkLevel& link_of(const Ctx& x, int stride, int size) {
  return group_crosses_nodes(stride, size, x.ranks_per_node) ? x.mc.inter : x.mc.intra;
}

double gemm_s(const Ctx& x, double m, double n, double k) {
  const double rate = x.mc.peak_tflops(x.r.precision) * 1e12 * x.gemm_share() * x.mc.gemm_efficiency(m, n, k);
  return 2.0 * m * n * k / rate;
}

double mem_s(const Ctx& x, double bytes) { return bytes / (x.mc.mem_bw_gbs * 1e9 * x.share); }
double pass_s(const Ctx& x, double bytes, double elements, double gelems) {
  return pass_seconds(bytes, elements, x.mc.mem_bw_gbs * x.share, gelems * x.share);
}

struct StageCost {
  double fwd_compute = 0, bwd_compute = 0, fwd_comm = 0, bwd_comm = 0;
};

StageCost stage_cost(const Ctx& x, const MemoryOptions& o, int stage, const RowShape& rs, int64_t T) {
  const ModelConfig& c = x.r.model;
  const Layout& l = o.layout;
  const auto [begin, end] = stage_blocks(l, c.n_layer, stage);
  const Shard sh = Shard::of(c, 0, l.tp, begin, end, stage == 0, stage == l.pp - 1);
  const double N = double(rs.N), Ns = double(rs.Ns), C = double(c.n_embd), Ca = double(sh.attn_width(c));
  const double Fl = double(sh.ffn(c)), D = double(c.head_dim()), Vl = double(sh.vocab_rows());
  const double ab = x.r.act_bytes;
  const LinkLevel& tpl = link_of(x, 1, l.tp);
  const LinkLevel& cpl = link_of(x, l.tp, l.cp);

  // One block.
  const double gemm_f = gemm_s(x, N, 3 * Ca, C) + gemm_s(x, N, C, Ca) + gemm_s(x, N, Fl, C) + gemm_s(x, N, C, Fl);
  const double Tc = double(rs.Tc);
  const double attn_f = 2.0 * N * double(T) * Ca /
                        (x.mc.peak_tflops(x.r.precision) * 1e12 * x.gemm_share() * x.mc.gemm_efficiency(Tc, double(T), D));
  // LayerNorms and residual adds; GELU reads and writes [N, Fl] (backward: reads two, adds into one).
  const double norms_f = mem_s(x, 4.0 * (4 * N * C + 6 * Ns * C));
  const double elem_f = norms_f + pass_s(x, 4.0 * 2 * N * Fl, N * Fl, x.mc.gelu_fwd_gelems);
  const double elem_b = 2 * norms_f + pass_s(x, 4.0 * 3 * N * Fl, N * Fl, x.mc.gelu_bwd_gelems);
  const double tp_one = l.sp ? 2 * reduce_scatter_seconds(ab * N * C, l.tp, tpl) : all_reduce_seconds(ab * N * C, l.tp, tpl);
  // cp: (cp-1) shifts of K|V forward, of K|V|dK|dV (plus one home) backward; hidden behind attention.
  const double kv = ab * N * 2 * Ca;
  const double cp_f = l.cp > 1 ? std::max(0.0, (l.cp - 1) * p2p_seconds(kv, cpl) - attn_f) : 0;
  const double cp_b = l.cp > 1 ? std::max(0.0, l.cp * p2p_seconds(2 * kv, cpl) - 2.5 * attn_f) : 0;
  double recompute = 0, recompute_comm = 0;
  if (o.recompute == Recompute::Selective) recompute = attn_f;
  if (o.recompute == Recompute::Full) recompute = gemm_f + attn_f + elem_f, recompute_comm = 2 * tp_one + cp_f;

  StageCost s;
  const double L = double(sh.n_layers());
  s.fwd_compute = L * (gemm_f + attn_f + elem_f);
  s.bwd_compute = L * (2 * gemm_f + 2.5 * attn_f + elem_b + recompute);
  s.fwd_comm = L * (2 * tp_one + cp_f);
  s.bwd_comm = L * (2 * tp_one + cp_b + recompute_comm);
  if (sh.first_stage) {
    s.fwd_compute += mem_s(x, 4.0 * 3 * N * C);
    s.bwd_compute += mem_s(x, 4.0 * 3 * N * C);
    s.fwd_comm += l.sp ? reduce_scatter_seconds(ab * N * C, l.tp, tpl) : all_reduce_seconds(ab * N * C, l.tp, tpl);
  }
  if (sh.last_stage) {  // ln_f, the head's vocabulary shard, the loss (and its backward, done in the forward)
    // The loss: a max pass, then exp of every logit for the sums and again for the gradient.
    const double loss = mem_s(x, 4.0 * N * Vl) + pass_s(x, 4.0 * 3 * N * Vl, N * Vl, x.mc.softmax_gelems) +
                        pass_s(x, 4.0 * 3 * N * Vl, N * Vl, x.mc.softmax_gelems);
    s.fwd_compute += gemm_s(x, N, Vl, C) + loss + 2 * gemm_s(x, N, Vl, C);
    s.fwd_comm += 3 * all_reduce_seconds(4.0 * N, l.tp, tpl) + all_reduce_seconds(ab * N * C, l.tp, tpl);
  }
  return s;
}

int ceil_div(int a, int b) { return (a + b - 1) / b; }

}  // namespace

PlanResult evaluate_layout(const PlanRequest& r, const MemoryOptions& o) {
  const Machine& mc = r.machine;
  const ModelConfig& c = r.model;
  const Layout& l = o.layout;
  PlanResult p;
  p.opts = o;
  const int world = l.ranks();
  try {
    check_layout(l, c.n_head, c.ffn(), c.n_layer, world);
    if (l.sp) WAFER_CHECK(l.tp > 1, "[layout] --sp needs --tp > 1");
    // ZeRO-1 over one dp x cp rank shards nothing but is legal (the trainer runs it, as the scale
    // benchmark's 590M tp2 x pp2 does); the search itself skips it unless it is asked for.
    WAFER_CHECK(world <= r.nodes * mc.devices_per_node, "[layout] ", world, " ranks exceed the ", r.nodes, " x ",
                mc.devices_per_node, " devices");
    p.memory = stage_memory(c, o);
  } catch (const Error& e) {  // the layout rules' own message is the reason
    p.why = e.what();
    return p;
  }
  p.peak = *std::max_element(p.memory.begin(), p.memory.end(),
                             [](const MemoryAccount& a, const MemoryAccount& b) { return a.total() < b.total(); });
  p.peak_mb = p.peak.total() / (1 << 20) + mc.runtime_mb;

  Ctx x{r, mc, world, 1, 1.0};
  x.ranks_per_node = mc.memory_shared ? ceil_div(world, r.nodes) : mc.devices_per_node;
  x.share = mc.memory_shared ? double(mc.devices_per_node) / x.ranks_per_node : 1.0;
  // Memory: a device's own, or a CPU node's RAM shared by its ranks (node 0's ranks, the first ones).
  double need_mb = p.peak_mb;
  if (mc.memory_shared) {
    need_mb = 0;
    for (int rk = 0; rk < std::min(world, x.ranks_per_node); ++rk)
      need_mb += p.memory[size_t(coords_of(l, rk).pp)].total() / (1 << 20) + mc.runtime_mb;
  }
  const double have_mb = mc.mem_gb * 1024;
  p.fits = need_mb <= have_mb;
  if (!p.fits)
    p.why = str_cat("short of memory by ", int64_t(std::ceil((need_mb - have_mb) / 1024 * 10)) / 10.0, " GiB (needs ",
                    int64_t(need_mb / 1024 * 10) / 10.0, " GiB ", mc.memory_shared ? "per node" : "per device", ", has ",
                    mc.mem_gb, ")");

  // Time.
  const int64_t T = o.seq > 0 ? o.seq : c.n_positions;
  const RowShape rs = row_shape(l, o.batch, T);
  std::vector<double> fwd, bwd, fwd_c, bwd_c;
  double busiest = 0, busiest_compute = 0;
  for (int s = 0; s < l.pp; ++s) {
    const StageCost sc = stage_cost(x, o, s, rs, T);
    fwd.push_back(sc.fwd_compute + sc.fwd_comm), bwd.push_back(sc.bwd_compute + sc.bwd_comm);
    const double busy = o.micro_batches * (fwd.back() + bwd.back());
    if (busy > busiest) busiest = busy, busiest_compute = o.micro_batches * (sc.fwd_compute + sc.bwd_compute);
  }
  const LinkLevel& ppl = link_of(x, l.tp * l.cp * l.dp, l.pp);
  const double p2p = l.pp > 1 ? p2p_seconds(r.act_bytes * double(rs.Ns) * double(c.n_embd), ppl) : 0;
  const double with_p2p = pipeline_makespan(l.schedule, fwd, bwd, o.micro_batches, p2p);
  const double no_p2p = pipeline_makespan(l.schedule, fwd, bwd, o.micro_batches, 0);
  // Gradients: summed over the dp×cp replicas (ZeRO-1: reduce-scatter + all-gather of the
  // parameters: the same bytes), and wte's two copies with pp > 1.
  const double n = p.peak.weights / 4.0;
  const LinkLevel& dpl = link_of(x, l.tp, l.cp * l.dp);
  double dp_s = all_reduce_seconds(4.0 * n, l.dp * l.cp, dpl);
  if (l.pp > 1 && c.tie_word_embeddings)
    dp_s += all_reduce_seconds(4.0 * double(Shard::of(c, 0, l.tp, 0, 1, true, false).vocab_rows() * c.n_embd), 2, ppl);
  const double part = double(zero_partition(int64_t(n), l.dp * l.cp, l.zero));
  const double adam_s = mem_s(x, part * (7 * 4.0 + (o.precision == Precision::BF16 ? 2.0 : 0.0)));

  StepTime& t = p.time;
  t.stage_fwd = fwd, t.stage_bwd = bwd;
  t.compute = busiest_compute + adam_s;
  t.comm = (busiest - busiest_compute) + (with_p2p - no_p2p) + dp_s;
  t.bubble = no_p2p - busiest > 1e-9 * no_p2p ? no_p2p - busiest : 0.0;  // (round-off of equal stages)
  t.step = t.compute + t.comm + t.bubble;
  const double tokens = double(o.batch) * o.micro_batches * double(T);
  p.tokens_per_s = tokens / t.step;
  const double devices = mc.memory_shared ? double(r.nodes * mc.devices_per_node) : double(world);
  p.mfu = 3.0 * forward_flops_per_token(c, T) * tokens / t.step / (devices * mc.peak_tflops(r.precision) * 1e12);
  return p;
}

namespace {
std::vector<int> divisors(int n) {
  std::vector<int> d;
  for (int i = 1; i <= n; ++i)
    if (n % i == 0) d.push_back(i);
  return d;
}
}  // namespace

std::vector<PlanResult> plan_layouts(const PlanRequest& r) {
  const Machine& mc = r.machine;
  WAFER_CHECK(!mc.wafer_scale, "[plan] ", mc.name, " is a wafer-scale machine: use plan_wafer_scale");
  WAFER_CHECK(r.nodes >= 1, "[plan] expected --nodes >= 1, found ", r.nodes);
  const int devices = r.nodes * mc.devices_per_node;
  // A GPU job uses every device; ranks on a CPU node share its cores, so any rank count may run.
  std::vector<int> worlds = mc.memory_shared ? divisors(devices) : std::vector<int>{devices};
  const int64_t T = r.seq > 0 ? r.seq : r.model.n_positions;
  std::vector<PlanResult> out;
  auto pick = [](const auto& fixed, auto all) { return fixed ? decltype(all){*fixed} : all; };
  for (int world : worlds)
    for (int tp : pick(r.tp, divisors(world)))
      for (int pp : pick(r.pp, divisors(world)))
        for (int cp : pick(r.cp, divisors(world))) {
          if (world % (tp * pp * cp)) continue;
          const int dp = world / (tp * pp * cp);
          if (r.dp && *r.dp != dp) continue;
          for (bool sp : pick(r.sp, std::vector<bool>{false, true}))
            for (int zero : pick(r.zero, std::vector<int>{0, 1}))
              for (PipeSchedule sc : pick(r.schedule, std::vector<PipeSchedule>{PipeSchedule::OneFOneB, PipeSchedule::GPipe}))
                for (Recompute rc : pick(r.recompute, std::vector<Recompute>{Recompute::None, Recompute::Selective, Recompute::Full})) {
                  if ((sp && tp == 1 && !r.sp) || (zero && dp * cp == 1 && !r.zero) ||
                      (pp == 1 && sc == PipeSchedule::GPipe && !r.schedule))
                    continue;  // the same layout under another name
                  // The batch: given, or a split of the global batch into micro-batches.
                  const int64_t G = r.global_batch > 0 ? r.global_batch
                                    : r.batch > 0 ? r.batch * std::max(1, r.micro_batches)
                                                  : 8 * int64_t(world) * std::max(1, r.micro_batches);
                  std::vector<int> ms = r.micro_batches > 0 ? std::vector<int>{r.micro_batches}
                                        : r.batch > 0 ? std::vector<int>{int(std::max<int64_t>(1, G / r.batch))}
                                                      : divisors(int(std::min<int64_t>(G, 1 << 20)));
                  for (int m : ms) {
                    if (G % m) continue;
                    MemoryOptions o;
                    o.layout.tp = tp, o.layout.pp = pp, o.layout.cp = cp, o.layout.dp = dp;
                    o.layout.sp = sp, o.layout.zero = zero, o.layout.schedule = sc;
                    o.batch = G / m, o.micro_batches = m, o.seq = T, o.precision = r.precision, o.recompute = rc;
                    // Searching the split: skip micro-batches that leave a dp rank without a sequence.
                    if (r.micro_batches == 0 && r.batch == 0 && o.batch % dp) continue;
                    out.push_back(evaluate_layout(r, o));
                    if (out.back().memory.empty()) break;  // illegal whatever the batch split: one row
                  }
                }
        }
  std::stable_sort(out.begin(), out.end(), [](const PlanResult& a, const PlanResult& b) {
    if (a.fits != b.fits) return a.fits;
    if (a.fits) return a.time.step < b.time.step;
    return a.why.empty() > b.why.empty() || (a.why.empty() == b.why.empty() && a.peak_mb < b.peak_mb);
  });
  return out;
}

std::string memory_table(const std::vector<MemoryAccount>& stages) {
  std::string s = "stage   weights  bf16 copy  gradients  moments  activations   logits  buffers     total  (MiB per rank)\n";
  char buf[256];
  const double mb = 1 << 20;
  for (const MemoryAccount& a : stages) {
    std::snprintf(buf, sizeof buf, "%5d %9.1f %10.1f %10.1f %8.1f %12.1f %8.1f %8.1f %9.1f\n", a.stage, a.weights / mb,
                  a.weights_bf16 / mb, a.gradients / mb, a.moments / mb, a.activations / mb, a.logits / mb,
                  a.buffers / mb, a.total() / mb);
    s += buf;
  }
  return s;
}

nlohmann::ordered_json plan_result_json(const PlanResult& p) {
  const Layout& l = p.opts.layout;
  nlohmann::ordered_json j;
  j["layout"] = {{"tp", l.tp}, {"pp", l.pp}, {"cp", l.cp}, {"dp", l.dp}, {"sp", l.sp}, {"zero", l.zero},
                 {"micro_batches", p.opts.micro_batches}, {"batch", p.opts.batch},
                 {"schedule", l.schedule == PipeSchedule::GPipe ? "gpipe" : "1f1b"},
                 {"recompute", recompute_name(p.opts.recompute)}};
  j["fits"] = p.fits;
  j["peak_mb"] = p.peak_mb;
  const MemoryAccount& a = p.peak;
  const double mb = 1 << 20;
  j["memory"] = {{"weights", a.weights / mb}, {"weights_bf16", a.weights_bf16 / mb}, {"gradients", a.gradients / mb},
                 {"moments", a.moments / mb}, {"activations", a.activations / mb}, {"logits", a.logits / mb},
                 {"buffers", a.buffers / mb}, {"stage", a.stage}};
  j["step_s"] = p.time.step;
  j["compute_s"] = p.time.compute;
  j["comm_s"] = p.time.comm;
  j["bubble_s"] = p.time.bubble;
  j["tokens_per_s"] = p.tokens_per_s;
  j["mfu"] = p.mfu;
  if (!p.why.empty()) j["why"] = p.why;
  return j;
}

}  // namespace wafer
