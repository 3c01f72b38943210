// model/sharding.cpp
#include "model/sharding.h"

#include "core/error.h"

namespace wafer {

Shard shard_for(const ModelConfig& c, const ParallelState& par) {
  const auto [begin, end] = stage_blocks(par.layout, c.n_layer, par.at.pp);
  return Shard::of(c, par.at.tp, par.layout.tp, begin, end, par.first_stage(), par.last_stage());
}

std::unique_ptr<Model> extract_shard(const Model& full, const Shard& sh) {
  WAFER_ASSERT(full.shard == Shard::full(full.config));
  auto m = std::make_unique<Model>(full.config, sh);
  shard_flat(full.config, sh, full.params.data(), m->params.data());
  return m;
}

void check_layout_fits(const Layout& l, const ModelConfig& c) {
  check_layout(l, c.n_head, c.ffn(), c.n_layer, world_size());
}

std::unique_ptr<Model> load_hf_shard(const std::string& dir, const ParallelState& par) {
  auto full = load_hf_model(dir);
  check_layout_fits(par.layout, full->config);
  const Shard sh = shard_for(full->config, par);
  if (sh == full->shard) return full;
  return extract_shard(*full, sh);
}

std::vector<float> gather_to_rank0(const ModelConfig& c, const Shard& sh, const float* local, const ParallelState& par) {
  std::vector<float> full(size_t(parameter_count(c)), 0.0f);
  const bool replica0 = par.at.dp == 0 && par.at.cp == 0;
  unshard_flat(c, sh, local, full.data(), [&](const ParamSpec& s) {
    const bool tied_copy = !sh.first_stage && s.name == "transformer.wte.weight";
    return replica0 && !tied_copy && (!s.tp_replicated || sh.tp_rank == 0);
  });
  Group world = par.world;
  world.reduce_sum(full.data(), int64_t(full.size()), 0);
  if (world_rank() != 0) full.clear();
  return full;
}

std::unique_ptr<Model> gather_model(const Model& m, const ParallelState& par) {
  if (m.shard == Shard::full(m.config)) {  // data parallel only: rank 0 holds it all already
    if (world_rank() != 0) return nullptr;
    auto full = std::make_unique<Model>(m.config);
    std::copy(m.params.begin(), m.params.end(), full->params.begin());
    return full;
  }
  std::vector<float> flat = gather_to_rank0(m.config, m.shard, m.params.data(), par);
  if (flat.empty()) return nullptr;
  auto full = std::make_unique<Model>(m.config);
  std::copy(flat.begin(), flat.end(), full->params.begin());
  return full;
}

}  // namespace wafer
