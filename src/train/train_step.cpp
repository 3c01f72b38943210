// train/train_step.cpp
#include "train/train_step.h"

#include <cmath>

#include "core/error.h"

namespace wafer {

TrainStep::TrainStep(Model& m, const AdamWOptions& opt, double clip_norm)
    : m_(m),
      pass_(m, PassMode::Training),
      grads_(m.params.size(), 0.0f),
      gw_(point_weights(m.config, grads_.data())),
      adamw_(m.params.size(), param_groups(m.config), opt),
      clip_norm_(clip_norm) {}

StepResult TrainStep::compute_grads(const std::vector<Batch>& micro_batches) {
  WAFER_CHECK(!micro_batches.empty(), "[train] expected at least one micro-batch");
  int64_t counted = 0;
  for (const Batch& b : micro_batches)
    for (int32_t t : b.targets) counted += t >= 0;
  WAFER_CHECK(counted > 0, "[train] the batch has no target to predict (sequences need at least 2 tokens)");
  std::fill(grads_.begin(), grads_.end(), 0.0f);
  StepResult r;
  double loss_sum = 0.0;
  for (const Batch& b : micro_batches) {
    auto [sum, n] = pass_.forward_loss(b.tokens.data(), b.targets.data(), b.B, b.T);
    loss_sum += sum;
    pass_.backward(b.tokens.data(), b.targets.data(), b.B, b.T, float(1.0 / double(counted)), gw_);
    r.tokens += b.B * b.T;
  }
  r.loss = loss_sum / double(counted);
  r.grad_norm = grad_norm(grads_.data(), grads_.size());
  return r;
}

StepResult TrainStep::step(const std::vector<Batch>& micro_batches, double lr) {
  StepResult r = compute_grads(micro_batches);
  WAFER_CHECK(std::isfinite(r.loss) && std::isfinite(r.grad_norm), "[train] non-finite ",
              std::isfinite(r.loss) ? "gradient norm" : "loss", " (loss ", r.loss, ", grad norm ", r.grad_norm,
              "); parameters left as they were");
  if (clip_norm_ > 0) clip_grads(grads_.data(), grads_.size(), r.grad_norm, clip_norm_);
  adamw_.step(m_.params.data(), grads_.data(), lr);
  return r;
}

double TrainStep::eval_loss(const std::vector<Batch>& batches) {
  double sum = 0.0;
  int64_t n = 0;
  for (const Batch& b : batches) {
    auto [s, c] = pass_.forward_loss(b.tokens.data(), b.targets.data(), b.B, b.T);
    sum += s;
    n += c;
  }
  return n ? sum / double(n) : 0.0;
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
