// model/sharding.h: moving whole models in and out of a parallel layout. Files on disk always
// hold whole tensors with HF names (layout-free); each rank keeps only its shard in memory.
#pragma once
#include <memory>
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
// Loads an HF folder and keeps this rank's shard (the whole model on one rank).
std::unique_ptr<Model> load_hf_shard(const std::string& dir, const ParallelState& par);

// A shard-laid-out flat buffer (parameters, gradients or optimizer moments) of every rank ->
// the whole-model flat buffer (parameter_count floats) on world rank 0; other ranks get an
// empty vector. Collective. Each element comes from exactly one rank: tp rank 0 for replicated
// tensors, the first stage for wte, the first dp and cp replica.
std::vector<float> gather_to_rank0(const ModelConfig& c, const Shard& sh, const float* local, const ParallelState& par);
// The whole model on world rank 0 (null elsewhere); the model itself on one rank is copied.
std::unique_ptr<Model> gather_model(const Model& m, const ParallelState& par);

}  // namespace wafer
