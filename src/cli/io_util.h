// cli/io_util.h: small helpers the subcommands share: stdin, id lists, locating a tokenizer.
#pragma once
#include <CLI/CLI.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/model.h"
#include "parallel/layout.h"
#include "tokenizer/bpe.h"

namespace wafer::cli {

std::string read_stdin();
// "464,26532 318" -> {464, 26532, 318}: comma and/or whitespace separated, throws on anything else.
std::vector<int32_t> parse_ids(const std::string& text, const std::string& what);
// The tokenizer in `explicit_dir` if given, else the one in `model_dir`; throws naming both.
std::unique_ptr<Tokenizer> find_tokenizer(const std::string& explicit_dir, const std::string& model_dir);
std::string json_ids(const std::vector<int32_t>& ids);
// The config named by exactly one of a preset name, a config.json path or a model folder.
ModelConfig resolve_config(const std::string& preset_name, const std::string& config_file, const std::string& model_dir);

// --precision fp32|bf16: the GEMMs' precision (bf16 runs them on oneDNN where the CPU has
// AVX512-BF16 or AMX, with fp32 accumulation; training keeps fp32 master weights). Inference
// commands (`inference`) also take q8_0, q4_0 and q4_k.
void add_precision_option(CLI::App* cmd, std::string& precision, bool inference = true);
// Inference commands: this rank's shard of the model at `path` (an HF folder or a GGUF file) at
// --precision: bf16 rounds the weights once and keeps only the bf16 matrices in memory;
// q8_0|q4_0|q4_k|q6_k keeps only quantized rows, reading one matrix in fp32 at a time
// (load_hf_model_quantized). A GGUF file loaded whole at a quantized precision is computed on
// in place wherever its blocks are of the type the precision's policy gives (load_gguf_model
// with a type): nothing quantized twice, no fp32 copy.
std::unique_ptr<Model> load_inference_model(const std::string& path, const ParallelState& par,
                                            const std::string& precision);
// The precision step alone, for a model already in memory (a preset with random weights).
void set_inference_precision(Model& m, const std::string& precision);

// --n-layer style overrides of a preset's or config's shape (init and train).
struct ShapeOverrides {
  int64_t n_layer = 0, n_embd = 0, n_head = 0, n_inner = 0, n_positions = 0, vocab_size = 0;
  std::string activation;
  void add_to(CLI::App* cmd);
  // Applies the overrides, then validates the result like a config.json.
  void apply(ModelConfig& c) const;
};

// --tp --pp --cp --dp and friends: how the ranks of an mpirun job split the model.
struct LayoutOptions {
  Layout layout;
  std::string schedule = "1f1b";
  double comm_timeout = 0;  // seconds; 0 = the default (WAFER_COMM_TIMEOUT or 45)
  // training: also --sp, --zero, --schedule (the inference commands take the four sizes only).
  void add_to(CLI::App* cmd, bool training);
  // Checks the layout against the model and the world size, then builds this rank's groups
  // (collective: every rank calls it).
  std::unique_ptr<ParallelState> start(const ModelConfig& c);
};

// World rank 0 prints and writes; the others compute alongside it.
inline bool is_rank0() { return world_rank() == 0; }

}  // namespace wafer::cli
