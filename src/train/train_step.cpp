// train/train_step.cpp
#include "train/train_step.h"

#include <chrono>
#include <cmath>

#include "core/error.h"
#include "model/memory.h"
#include "train/pipeline.h"

namespace wafer {

TrainStep::TrainStep(Model& m, const AdamWOptions& opt, double clip_norm)
    : TrainStep(m, ParallelState::single(), opt, clip_norm) {}

namespace {
// Buffer sizes come from the memory account (model/memory.h), which also prints them.
size_t zero_part(size_t n, const ParallelState& par) {
  return size_t(zero_partition(int64_t(n), par.dpcp.size(), par.layout.zero));
}
}  // namespace

TrainStep::TrainStep(Model& m, const ParallelState& par, const AdamWOptions& opt, double clip_norm)
    : m_(m),
      par_(par),
      tp_(par.tp),
      pp_(par.pp),
      dpcp_(par.dpcp),
      embed_(par.embed),
      world_(par.world),
      pass_(m, par, PassMode::Training),
      eval_pass_(m, par, PassMode::Inference),
      grads_(size_t(gradient_elems(int64_t(m.params.size()), par.dpcp.size(), par.layout.zero)), 0.0f),
      gw_(point_weights(m.config, m.shard, grads_.data())),
      n_(m.params.size()),
      part_(zero_part(m.params.size(), par)),
      adamw_(size_t(moment_elems(int64_t(n_), par.dpcp.size(), par.layout.zero)),
             par.layout.zero ? param_groups(m.config, m.shard, std::min(n_, size_t(par.dpcp.rank()) * part_),
                                            std::min(n_, size_t(par.dpcp.rank() + 1) * part_))
                             : param_groups(m.config, m.shard, 0, n_),
             opt),
      clip_norm_(clip_norm) {
  WAFER_ASSERT(m.shard.tp_size == par.tp.size() && m.shard.tp_rank == par.at.tp);
  size_t offset = 0;
  const bool replica0 = par.at.dp == 0 && par.at.cp == 0;
  for (const auto& s : parameter_specs(m.config, m.shard)) {
    const size_t n = size_t(s.numel());
    const bool tied_copy = !m.shard.first_stage && s.name == "transformer.wte.weight";  // the last stage's head
    // Count each element of the model once: one tp rank for replicated tensors, the first stage's
    // wte, one dp×cp replica (all hold the same summed gradient) unless ZeRO splits it.
    if ((!s.tp_replicated || par.at.tp == 0) && !tied_copy && (replica0 || par.layout.zero))
      norm_ranges_.push_back({offset, offset + n});
    if (s.tp_replicated && s.kind != ParamKind::Embedding) sp_ranges_.push_back({offset, offset + n});
    if (s.name == "transformer.wte.weight") wte_range_ = {offset, offset + n};
    offset += n;
  }
}

StepResult TrainStep::compute_grads(const std::vector<Batch>& micro_batches) {
  const Layout& lay = par_.layout;
  WAFER_CHECK(!micro_batches.empty(), "[train] expected at least one micro-batch");
  int64_t counted = 0;
  for (const Batch& b : micro_batches)
    for (int32_t t : b.targets) counted += t >= 0;
  WAFER_CHECK(counted > 0, "[train] the batch has no target to predict (sequences need at least 2 tokens)");
  // This rank's rows: its dp share of each micro-batch's sequences, its cp chunks of each sequence.
  std::vector<LocalBatch> local;
  StepResult r;
  for (const Batch& b : micro_batches) {
    WAFER_CHECK(b.B % lay.dp == 0, "[layout] --dp ", lay.dp, " splits each micro-batch's sequences, so it must divide ",
                b.B, " (the sequences per micro-batch)");
    check_sequence(lay, b.T, "the sequence length");
    WAFER_CHECK(b.T <= m_.config.n_positions, "[train] a row of ", b.T, " tokens exceeds the model's context of ",
                m_.config.n_positions);
    const int64_t Bd = b.B / lay.dp, row0 = par_.at.dp * Bd * b.T;
    local.push_back(local_batch(b.tokens.data() + row0, b.targets.data() + row0, Bd, b.T, par_.at.cp, lay.cp));
    r.tokens += b.B * b.T;
  }
  const TrafficBytes before{par_.tp.bytes_sent(), par_.cp.bytes_sent(),
                            par_.pp.bytes_sent() + par_.embed.bytes_sent(), par_.dpcp.bytes_sent()};
  auto comm_seconds = [&] {
    return par_.tp.seconds() + par_.cp.seconds() + par_.pp.seconds() + par_.embed.seconds() + par_.dpcp.seconds() +
           par_.world.seconds();
  };
  const double comm0 = comm_seconds();
  std::fill(grads_.begin(), grads_.end(), 0.0f);

  PipelineStats ps = run_pipeline(pass_, pp_, lay.schedule, local, float(1.0 / double(counted)), gw_);
  fault_point();  // (tests: a rank dies or hangs here, between the backward and the reductions)

  // Sum each gradient over the ranks that share it.
  if (m_.shard.tp_size > 1 && lay.sp)
    for (auto [lo, hi] : sp_ranges_) tp_.all_reduce_sum(grads_.data() + lo, int64_t(hi - lo));
  if (lay.pp > 1 && m_.config.tie_word_embeddings && (m_.shard.first_stage || m_.shard.last_stage))
    embed_.all_reduce_sum(grads_.data() + wte_range_.first, int64_t(wte_range_.second - wte_range_.first));
  if (lay.zero) {
    grad_part_.resize(part_);
    dpcp_.reduce_scatter_sum(grad_part_.data(), grads_.data(), int64_t(part_));
  } else {
    dpcp_.all_reduce_sum(grads_.data(), int64_t(n_));
  }

  // The loss: the last stage's rows summed over dp and cp, then known to every stage.
  double loss_sum = ps.loss_sum;
  dpcp_.all_reduce_sum(&loss_sum, 1);
  pp_.broadcast(&loss_sum, sizeof loss_sum, pp_.size() - 1);
  r.loss = loss_sum / double(counted);
  double sumsq = local_grad_sumsq();
  world_.all_reduce_sum(&sumsq, 1);
  r.grad_norm = std::sqrt(sumsq);

  // Pipeline bubble: idle over busy time of each stage, averaged over the stages.
  double bubble[2] = {ps.busy_s > 0 ? (ps.wall_s - ps.busy_s) / ps.busy_s : 0.0, 1.0};
  pp_.all_reduce_sum(bubble, 2);
  r.bubble = lay.pp > 1 ? bubble[0] / bubble[1] : 0.0;
  r.bytes = {par_.tp.bytes_sent() - before.tp, par_.cp.bytes_sent() - before.cp,
             par_.pp.bytes_sent() + par_.embed.bytes_sent() - before.pp, par_.dpcp.bytes_sent() - before.dp};
  r.comm_s = comm_seconds() - comm0;
  return r;
}

double TrainStep::local_grad_sumsq() const {
  // Under ZeRO-1 this rank holds the summed gradient of [lo, hi) only.
  const size_t lo = par_.layout.zero ? size_t(dpcp_.rank()) * part_ : 0;
  const size_t hi = par_.layout.zero ? std::min(n_, lo + part_) : n_;
  const float* g = par_.layout.zero ? grad_part_.data() - lo : grads_.data();
  double s = 0.0;
  for (auto [a, b] : norm_ranges_) {
    const size_t from = std::max(a, lo), to = std::min(b, hi);
    if (from < to) {
      const double n = grad_norm(g + from, to - from);
      s += n * n;
    }
  }
  return s;
}

StepResult TrainStep::step(const std::vector<Batch>& micro_batches, double lr) {
  StepResult r = compute_grads(micro_batches);
  WAFER_CHECK(std::isfinite(r.loss) && std::isfinite(r.grad_norm), "[train] non-finite ",
              std::isfinite(r.loss) ? "gradient norm" : "loss", " (loss ", r.loss, ", grad norm ", r.grad_norm,
              "); parameters left as they were");
  // Clipping and the bf16 copy the GEMMs read ride along in AdamW's one pass over the buffer.
  const float scale = clip_norm_ > 0 ? clip_coefficient(r.grad_norm, clip_norm_) : 1.0f;
  if (!par_.layout.zero) {
    adamw_.step(m_.params.data(), grads_.data(), lr, scale, m_.params_bf16.empty() ? nullptr : m_.params_bf16.data());
    return r;
  }
  // ZeRO-1: update this rank's range (its bf16 copy in the same pass), then each range goes from
  // its owner straight into every rank's parameters: one broadcast per owner, in place, so the
  // step allocates no shard-sized temporaries. The other ranges' bf16 copies are rounded as
  // they arrive.
  uint16_t* bf16 = m_.params_bf16.empty() ? nullptr : m_.params_bf16.data();
  const auto [lo, hi] = moment_range();
  if (hi > lo) adamw_.step(m_.params.data() + lo, grad_part_.data(), lr, scale, bf16 ? bf16 + lo : nullptr);
  const uint64_t sent = dpcp_.bytes_sent();
  const double waited = dpcp_.seconds();
  for (int d = 0; d < dpcp_.size(); ++d) {
    const size_t a = std::min(n_, size_t(d) * part_), b = std::min(n_, a + part_);
    if (b == a) continue;
    dpcp_.broadcast(m_.params.data() + a, int64_t((b - a) * sizeof(float)), d);
    if (bf16 && d != dpcp_.rank()) convert_to_bf16(bf16 + a, m_.params.data() + a, int64_t(b - a));
  }
  r.bytes.dp += dpcp_.bytes_sent() - sent;  // the step's traffic includes the parameters' gather
  r.comm_s += dpcp_.seconds() - waited;
  return r;
}

double TrainStep::eval_loss(const std::vector<Batch>& batches) {
  double sum = 0.0;
  int64_t n = 0;
  for (const Batch& b : batches) {
    auto [s, c] = eval_pass_.forward_loss(b.tokens.data(), b.targets.data(), b.B, b.T);
    sum += s;
    n += c;
  }
  return n ? sum / double(n) : 0.0;
}

std::pair<int64_t, int64_t> TrainStep::moment_range() const {
  if (!par_.layout.zero) return {0, int64_t(n_)};
  const size_t lo = std::min(n_, size_t(dpcp_.rank()) * part_);
  return {int64_t(lo), int64_t(std::min(n_, lo + part_))};
}

Batch batch_from_sequences(const std::vector<std::vector<int32_t>>& seqs) {
  WAFER_CHECK(!seqs.empty(), "[batch] expected at least one sequence");
  Batch b;
  b.B = int64_t(seqs.size());
  b.T = int64_t(seqs[0].size());
  for (const auto& s : seqs) {
    WAFER_CHECK(int64_t(s.size()) == b.T && b.T > 0, "[batch] expected every sequence to have ", b.T,
                " tokens, found one with ", s.size());
    b.tokens.insert(b.tokens.end(), s.begin(), s.end());
    for (int64_t t = 0; t < b.T; ++t) b.targets.push_back(t + 1 < b.T ? s[size_t(t + 1)] : -1);
  }
  return b;
}

}  // namespace wafer
