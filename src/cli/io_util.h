// cli/io_util.h: small helpers the subcommands share: stdin, id lists, locating a tokenizer.
#pragma once
#include <CLI/CLI.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
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

// --n-layer style overrides of a preset's or config's shape (init and train).
struct ShapeOverrides {
  int64_t n_layer = 0, n_embd = 0, n_head = 0, n_inner = 0, n_positions = 0, vocab_size = 0;
  std::string activation;
  void add_to(CLI::App* cmd);
  // Applies the overrides, then validates the result like a config.json.
  void apply(ModelConfig& c) const;
};

}  // namespace wafer::cli
