// model/sharding.h: moving whole models in and out of a parallel layout. Files on disk always
// hold whole tensors with HF names (layout-free); each rank keeps only its shard in memory.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/model.h"
#include "parallel/layout.h"

namespace wafer {

// This rank's shard (tp slice of its pipeline stage's tensors) for layout `par`.
Shard shard_for(const ModelConfig& c, const ParallelState& par);
// This rank's shard of a whole model: slices copied out of `full`.
std::unique_ptr<Model> extract_shard(const Model& full, const Shard& sh);
// Throws unless the layout fits the model (heads and MLP width divide by tp, pp <= layers, ranks).
void check_layout_fits(const Layout& l, const ModelConfig& c);
// Loads an HF folder and keeps this rank's shard (the whole model on one rank); with `quantized`,
// through load_hf_model_quantized.
std::unique_ptr<Model> load_hf_shard(const std::string& dir, const ParallelState& par,
                                     std::optional<QuantType> quantized = std::nullopt);

// One rank's piece of a shard-laid-out flat buffer (parameters or an AdamW moment), to be written
// as whole tensors. Without `partitioned` the piece is the whole shard buffer and dp×cp rank 0's
// copy is the one written; with it (ZeRO-1) dp×cp rank d holds elements
// [d·part, (d+1)·part) ∩ [0, n) of the shard's n, part = zero_partition(n, dp·cp, 1).
struct ShardPiece {
  std::string prefix;  // before each HF name: "" for parameters, "exp_avg." for a moment
  const float* data = nullptr;
  bool partitioned = false;
};
// Collective. Writes every tensor of every piece whole, under HF names with the piece's prefix,
// sorted by name, as `dtype` into the safetensors file `path` on world rank 0. Tensor by tensor:
// the ranks holding a slice of it send that slice to rank 0, which assembles it and appends it to
// the file, so no rank holds more than its shard plus one whole tensor, and only the owners'
// slices cross the network (not the whole model times the world). The file goes through a
// temporary name and a rename. One rank: the same calls, no messages.
void write_whole_tensors(const std::string& path, const ModelConfig& c, const Shard& sh, const ParallelState& par,
                         const std::vector<ShardPiece>& pieces, DType dtype);
// Collective: config.json and model.safetensors of the whole model into `dir` (on world rank 0),
// from every rank's shard, as write_whole_tensors does it.
void save_hf_shard(const Model& m, const ParallelState& par, const std::string& dir, const SaveOptions& opts = {});

// A shard-laid-out flat buffer (parameters, gradients or optimizer moments) of every rank ->
// the whole-model flat buffer (parameter_count floats) on world rank 0; other ranks get an
// empty vector. Collective. Each element comes from exactly one rank: tp rank 0 for replicated
// tensors, the first stage for wte, the first dp and cp replica.
std::vector<float> gather_to_rank0(const ModelConfig& c, const Shard& sh, const float* local, const ParallelState& par);
// The whole model on world rank 0 (null elsewhere); the model itself on one rank is copied.
std::unique_ptr<Model> gather_model(const Model& m, const ParallelState& par);

}  // namespace wafer
