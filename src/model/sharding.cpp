// model/sharding.cpp
#include "model/sharding.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/memory.h"

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

std::unique_ptr<Model> load_hf_shard(const std::string& dir, const ParallelState& par,
                                     std::optional<QuantType> quantized) {
  const ModelConfig c = load_hf_config(dir);
  check_layout_fits(par.layout, c);
  const Shard sh = shard_for(c, par);
  return quantized ? load_hf_model_quantized(dir, c, sh, *quantized) : load_hf_model(dir, c, sh);
}

namespace {

// Where a tensor sits in one shard's flat buffer.
struct Placed {
  ParamSpec spec;      // the shard's view of it (shape, slice)
  int64_t offset = 0;  // first element in the shard buffer
};
// The tensors a shard writes (its own copy of each: one tp rank for replicated tensors, the
// first stage for a tied wte), by HF name, and the shard buffer's size.
struct ShardTable {
  std::map<std::string, Placed> owned;
  int64_t n = 0;
};
ShardTable shard_table(const ModelConfig& c, const Shard& sh) {
  ShardTable t;
  for (const ParamSpec& s : parameter_specs(c, sh)) {
    const bool tied_copy = !sh.first_stage && s.name == "transformer.wte.weight";  // the last stage's head
    if (!tied_copy && (!s.tp_replicated || sh.tp_rank == 0)) t.owned[s.name] = {s, t.n};
    t.n += s.numel();
  }
  return t;
}

// Elements [lo, hi) of the shard buffer that dp×cp rank d holds of a piece.
std::pair<int64_t, int64_t> piece_range(const ShardPiece& p, int64_t n, int d, int ranks) {
  if (!p.partitioned) return d == 0 ? std::pair<int64_t, int64_t>{0, n} : std::pair<int64_t, int64_t>{0, 0};
  const int64_t part = zero_partition(n, ranks, 1);
  return {std::min(n, int64_t(d) * part), std::min(n, int64_t(d + 1) * part)};
}

}  // namespace

void write_whole_tensors(const std::string& path, const ModelConfig& c, const Shard& sh, const ParallelState& par,
                         const std::vector<ShardPiece>& pieces, DType dtype) {
  const Layout& l = par.layout;
  Group world = par.world;
  const int dpcp = l.dp * l.cp, me = world.rank();
  // Every shard of the layout (pp stages × tp ranks), as rank 0 needs to know who holds what.
  std::vector<ShardTable> tables(size_t(l.pp * l.tp));
  for (int q = 0; q < l.pp; ++q) {
    const auto [begin, end] = stage_blocks(l, c.n_layer, q);
    for (int t = 0; t < l.tp; ++t)
      tables[size_t(q * l.tp + t)] = shard_table(c, Shard::of(c, t, l.tp, begin, end, q == 0, q == l.pp - 1));
  }
  // The file's tensors: (piece, whole tensor), sorted by written name.
  struct Item {
    size_t piece;
    ParamSpec whole;
    std::string name;
  };
  std::vector<Item> items;
  for (size_t k = 0; k < pieces.size(); ++k)
    for (const ParamSpec& s : parameter_specs(c)) items.push_back({k, s, pieces[k].prefix + s.name});
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.name < b.name; });

  std::vector<float> whole, slice;
  std::vector<uint8_t> converted;
  // Collective: tensor i whole into `whole` on rank 0; the other ranks send their slices.
  auto gather = [&](size_t i) {
    const Item& it = items[i];
    const ShardPiece& piece = pieces[it.piece];
    const int tag = int(i % 30000);
    if (me == 0) whole.assign(size_t(it.whole.numel()), 0.0f);
    for (int q = 0; q < l.pp; ++q)
      for (int t = 0; t < l.tp; ++t) {
        const ShardTable& tab = tables[size_t(q * l.tp + t)];
        auto at = tab.owned.find(it.whole.name);
        if (at == tab.owned.end()) continue;
        const Placed& pl = at->second;
        const int64_t n = pl.spec.numel();
        if (me == 0) slice.assign(size_t(n), 0.0f);
        for (int d = 0; d < dpcp; ++d) {
          const auto [lo, hi] = piece_range(piece, tab.n, d, dpcp);
          const int64_t begin = std::max(lo, pl.offset), end = std::min(hi, pl.offset + n);
          if (begin >= end) continue;
          const int owner = t + l.tp * (d + dpcp * q);  // rank order tp, cp, dp, pp (parallel/layout.h)
          if (me == owner) {
            const float* src = piece.data + (begin - lo);
            if (me == 0)
              std::copy(src, src + (end - begin), slice.data() + (begin - pl.offset));
            else
              world.send(src, end - begin, 0, tag);
          } else if (me == 0) {
            world.recv(slice.data() + (begin - pl.offset), end - begin, owner, tag);
          }
        }
        if (me == 0) copy_from_shard(pl.spec, slice.data(), whole.data());
      }
    world.barrier();  // no rank runs ahead to wait on a tensor rank 0 is still writing
  };
  if (me != 0) {
    for (size_t i = 0; i < items.size(); ++i) gather(i);
    return;
  }
  std::vector<TensorToWrite> header;
  for (const Item& it : items) header.push_back({it.name, dtype, it.whole.shape, nullptr});
  write_safetensors_streamed(path, header, [&](size_t i, const std::function<void(const void*, size_t)>& append) {
    gather(i);
    if (dtype == DType::F32) return append(whole.data(), whole.size() * sizeof(float));
    converted.resize(whole.size() * dtype_size(dtype));
    convert_from_f32(converted.data(), whole.data(), dtype, whole.size());
    append(converted.data(), converted.size());
  });
}

void save_hf_shard(const Model& m, const ParallelState& par, const std::string& dir, const SaveOptions& opts) {
  const bool rank0 = par.world.rank() == 0;
  if (rank0) std::filesystem::create_directories(dir);
  write_whole_tensors(dir + "/model.safetensors", m.config, m.shard, par, {{"", m.params.data(), false}}, opts.dtype);
  if (rank0) save_config(m.config, dir + "/config.json");
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
