// train/checkpoint.h: everything a run needs to continue, layout-free on disk:
//   RUN_DIR/ckpt-NNNNNNNN/model.safetensors + config.json   parameters (fp32, HF names)
//   RUN_DIR/ckpt-NNNNNNNN/optimizer.safetensors             AdamW m and v (exp_avg.<name>, ...)
//   RUN_DIR/ckpt-NNNNNNNN/state.json                        step, AdamW t, data cursor, seed,
//                                                           schedule, CRC-32 of the files above
//   RUN_DIR/latest                                          name of the newest complete checkpoint
// Each file is written under a temporary name and renamed; `latest` moves only after the whole
// checkpoint is on disk, so a crash at any point leaves the previous checkpoint usable.
#pragma once
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "model/model.h"
#include "parallel/layout.h"
#include "train/adamw.h"

namespace wafer {

struct CheckpointState {
  int64_t step = 0;           // optimizer steps completed
  nlohmann::json extra;       // the trainer's own fields (cursor, seed, schedule, options)
};

// state.json as load_checkpoint reads it (train/checkpoint_state.cpp, apart from the model so
// fuzz/ can link it alone).
struct CheckpointStateFile {
  int64_t step = 0, adam_t = 0;
  std::map<std::string, uint32_t> crc32;  // file name in the checkpoint folder -> CRC-32
  nlohmann::json trainer = nlohmann::json::object();
};
// Parses and validates state.json's text: version 1, non-negative step and adam_t, a CRC-32 for
// each of model.safetensors, config.json and optimizer.safetensors. Throws naming `source`.
CheckpointStateFile parse_checkpoint_state(std::string_view text, const std::string& source);

// AdamW moments as one rank holds them (TrainStep's optimizer): the shard's m and v [n] each, or
// under ZeRO-1 this rank's partition of them (model/sharding.h ShardPiece).
struct MomentPieces {
  const float* m = nullptr;
  const float* v = nullptr;
  bool partitioned = false;
  int64_t t = 0;  // AdamW steps taken
};
// Collective. Writes checkpoint st.step of the run: every tensor whole (model/sharding.h
// write_whole_tensors: rank 0 writes, the other ranks send it their slices), then state.json,
// then `latest`; older checkpoints are removed. One rank: the same calls.
void save_checkpoint(const std::string& run_dir, const Model& m, const ParallelState& par, const MomentPieces& mom,
                     const CheckpointState& st);
bool has_checkpoint(const std::string& run_dir);

// The newest checkpoint of a run, verified: state.json parsed, every file's CRC-32 checked.
struct CheckpointInfo {
  std::string dir;
  CheckpointStateFile state;
  ModelConfig config;
};
CheckpointInfo open_checkpoint(const std::string& run_dir);
// This rank's shard of the checkpoint's parameters (its slices of each tensor, nothing more).
std::unique_ptr<Model> load_checkpoint_shard(const CheckpointInfo& ck, const Shard& sh);
// Elements [lo, hi) of shard sh's AdamW moments into m and v [hi - lo] each: a ZeRO-1 rank reads
// only its partition.
void load_checkpoint_moments(const CheckpointInfo& ck, const Shard& sh, int64_t lo, int64_t hi, float* m, float* v);

}  // namespace wafer
