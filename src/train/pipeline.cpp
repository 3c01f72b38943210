// train/pipeline.cpp
#include "train/pipeline.h"

#include <chrono>

namespace wafer {

PipelineStats run_pipeline(ForwardPass& fp, Group& pp, PipeSchedule schedule, const std::vector<LocalBatch>& mbs,
                           float loss_scale, const ModelWeights& grads) {
  using clock = std::chrono::steady_clock;
  const Shard& sh = fp.model().shard;
  const int64_t C = fp.model().config.n_embd;
  const int p = pp.size(), stage = pp.rank(), m = int(mbs.size());
  const int slots = pipeline_slots(schedule, p, stage, m);
  // Sends complete in the background; a slot's buffers are reused only after its sends finish.
  std::vector<std::vector<CommRequest>> pending(static_cast<size_t>(slots));
  std::vector<std::vector<float>> dout(static_cast<size_t>(slots));  // gradients received from the next stage
  auto drain = [&](int slot) {
    for (auto& r : pending[size_t(slot)]) pp.wait(r);
    pending[size_t(slot)].clear();
  };
  PipelineStats st;
  const auto t0 = clock::now();
  auto busy = [&](auto&& fn) {
    const auto a = clock::now();
    fn();
    st.busy_s += std::chrono::duration<double>(clock::now() - a).count();
  };
  for (const PipeAction& a : pipeline_schedule(schedule, p, stage, m)) {
    const int slot = a.micro % slots;
    const LocalBatch& b = mbs[size_t(a.micro)];
    const int64_t n = fp.stage_rows(b) * C;  // floats of one activation [Ns, C]
    if (a.kind == PipeAction::Forward) {
      drain(slot);
      float* in = fp.prepare(slot, b);
      if (!sh.first_stage) pp.recv(in, n, stage - 1, 2 * a.micro);  // activations of stage-1
      const float* out = nullptr;
      busy([&] { out = fp.stage_forward(slot, b, loss_scale, &grads); });
      if (sh.last_stage)
        st.loss_sum += fp.stage_loss(slot);
      else
        pending[size_t(slot)].push_back(pp.isend(out, n, stage + 1, 2 * a.micro));
    } else {
      if (!sh.last_stage) {
        dout[size_t(slot)].resize(size_t(n));
        pp.recv(dout[size_t(slot)].data(), n, stage + 1, 2 * a.micro + 1);  // gradient from stage+1
      }
      const float* dx = nullptr;
      busy([&] { dx = fp.stage_backward(slot, b, dout[size_t(slot)].data(), grads); });
      if (!sh.first_stage) pending[size_t(slot)].push_back(pp.isend(dx, n, stage - 1, 2 * a.micro + 1));
    }
  }
  for (int s = 0; s < slots; ++s) drain(s);
  st.wall_s = std::chrono::duration<double>(clock::now() - t0).count();
  return st;
}

}  // namespace wafer
