// train/checkpoint.h: everything a run needs to continue, layout-free on disk:
//   RUN_DIR/ckpt-NNNNNNNN/model.safetensors + config.json   parameters (fp32, HF names)
//   RUN_DIR/ckpt-NNNNNNNN/optimizer.safetensors             AdamW m and v (exp_avg.<name>, ...)
//   RUN_DIR/ckpt-NNNNNNNN/state.json                        step, AdamW t, data cursor, seed,
//                                                           schedule, CRC-32 of the files above
//   RUN_DIR/latest                                          name of the newest complete checkpoint
// Each file is written under a temporary name and renamed; `latest` moves only after the whole
// checkpoint is on disk, so a crash at any point leaves the previous checkpoint usable.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "model/model.h"
#include "train/adamw.h"

namespace wafer {

struct CheckpointState {
  int64_t step = 0;           // optimizer steps completed
  nlohmann::json extra;       // the trainer's own fields (cursor, seed, schedule, options)
};

void save_checkpoint(const std::string& run_dir, const Model& m, const AdamW& opt, const CheckpointState& st);
bool has_checkpoint(const std::string& run_dir);
// Loads the newest checkpoint: verifies every file's CRC, then returns the model and fills the
// optimizer moments and `st`. Throws naming the file on any mismatch.
std::unique_ptr<Model> load_checkpoint(const std::string& run_dir, AdamWOptions opt_options,
                                       std::unique_ptr<AdamW>* opt, CheckpointState* st);

}  // namespace wafer
