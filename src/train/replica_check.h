// train/replica_check.h: `wafer train --check-replicas N`: the ranks that must hold the same
// parameters compare a hash of each tensor, so a replica that drifted (a lost or doubled
// reduction, a rank that skipped an update, memory corruption) stops the run at the step it
// shows instead of being averaged into the model and saved (Megatron compares parameter hashes
// across data-parallel replicas the same way). Compared:
//   dp × cp   every tensor of the shard (the replicas of one model shard, group `dpcp`);
//   tp        the tensors each tp rank holds whole (LayerNorms, wpe, the row-parallel biases);
//   embedding with a tied head and pp > 1, wte's copies on the first and the last stage.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"
#include "parallel/layout.h"

namespace wafer {

// 64-bit hash of n floats' bits. Every step of it is a bijection of the state, so two buffers
// that differ in a single element always hash differently.
uint64_t hash_floats(const float* x, int64_t n);

// Collective over every rank of `par`. Throws an Error naming `step`, the first tensor whose
// hashes differ, the group, and which world ranks hold which hash; every rank throws the same.
void check_replicas(const Model& m, const ParallelState& par, int64_t step);

// Fault injection for the tests: under WAFER_FAULT="corrupt:R:S:NAME" world rank R adds 1e-3 to
// the first element of its tensor NAME (HF name) when called during training step S.
void corrupt_for_fault_test(Model& m);

}  // namespace wafer
