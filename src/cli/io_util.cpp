// cli/io_util.cpp: stdin, id parsing, tokenizer lookup.
#include "cli/io_util.h"

#include <cstdio>

#include "core/error.h"
#include "model/gguf_gpt2.h"
#include "model/sharding.h"

namespace wafer::cli {

std::string read_stdin() {
  std::string s;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) s.append(buf, n);
  return s;
}

std::vector<int32_t> parse_ids(const std::string& text, const std::string& what) {
  std::vector<int32_t> ids;
  size_t i = 0;
  auto is_sep = [](char c) { return c == ',' || c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
  while (i < text.size()) {
    if (is_sep(text[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && !is_sep(text[j])) ++j;
    std::string tok = text.substr(i, j - i);
    bool digits = !tok.empty() && tok.size() <= 9 && tok.find_first_not_of("0123456789") == std::string::npos;
    WAFER_CHECK(digits, "[", what, "] expected token ids (non-negative integers, comma or space separated), found '",
                tok.substr(0, 40), "'");
    ids.push_back(int32_t(std::stol(tok)));
    i = j;
  }
  return ids;
}

std::unique_ptr<Tokenizer> find_tokenizer(const std::string& explicit_dir, const std::string& model_dir) {
  if (!explicit_dir.empty())
    return is_gguf_path(explicit_dir) ? load_gguf_tokenizer(explicit_dir) : Tokenizer::load(explicit_dir);
  if (is_gguf_path(model_dir)) return load_gguf_tokenizer(model_dir);
  WAFER_CHECK(!model_dir.empty() && Tokenizer::present(model_dir), "[tokenizer] expected vocab.json + merges.txt or ",
              "tokenizer.json in the model folder ", model_dir, ", found neither (pass --tokenizer DIR)");
  return Tokenizer::load(model_dir);
}

std::string json_ids(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(ids[i]);
  }
  return s + "]";
}

ModelConfig resolve_config(const std::string& preset_name, const std::string& config_file, const std::string& model_dir) {
  int given = !preset_name.empty() + !config_file.empty() + !model_dir.empty();
  WAFER_CHECK(given == 1, "[config] expected exactly one of --preset, --config, --model; found ", given);
  if (!preset_name.empty()) {
    auto p = preset(preset_name);
    if (!p) {
      std::string names;
      for (const auto& n : preset_names()) names += " " + n;
      fail(str_cat("[config] unknown preset '", preset_name, "'; expected one of:", names));
    }
    return *p;
  }
  if (!config_file.empty()) return load_config(config_file);
  return load_config(model_dir + "/config.json");
}

void add_precision_option(CLI::App* cmd, std::string& precision, bool inference) {
  cmd->add_option("--precision", precision,
                  inference ? "Weights: fp32 (default), bf16 (AVX512-BF16/AMX via oneDNN), or quantized q8_0, q4_0, "
                              "q4_k, q6_k (ggml's blocks; int8 dot products, AVX512-VNNI where the CPU has it)"
                            : "GEMM precision: fp32 (default) or bf16 (AVX512-BF16/AMX via oneDNN)");
}

namespace {
bool is_quantized_precision(const std::string& precision) { return !precision.empty() && precision[0] == 'q'; }
}  // namespace

void set_inference_precision(Model& m, const std::string& precision) {
  if (is_quantized_precision(precision)) {
    quantize_matrices(m, quant_type_from_name(precision));
    return;
  }
  if (set_precision(m, parse_precision(precision)) == Precision::BF16) release_fp32_matrices(m);
}

std::unique_ptr<Model> load_inference_model(const std::string& path, const ParallelState& par,
                                            const std::string& precision) {
  if (is_quantized_precision(precision)) return load_hf_shard(path, par, quant_type_from_name(precision));
  auto m = load_hf_shard(path, par);
  set_inference_precision(*m, precision);
  return m;
}

void LayoutOptions::add_to(CLI::App* cmd, bool training) {
  cmd->add_option("--tp", layout.tp, "Tensor-parallel ranks (split heads, MLP and vocabulary)");
  cmd->add_option("--pp", layout.pp, "Pipeline stages (split the blocks)");
  cmd->add_option("--cp", layout.cp, "Context-parallel ranks (split each sequence; ring attention)");
  cmd->add_option("--dp", layout.dp, "Data-parallel replicas (split each batch's sequences)");
  cmd->add_option("--comm-timeout", comm_timeout, "Seconds a rank waits for a peer before ending the job (45)");
  if (!training) return;
  cmd->add_flag("--sp", layout.sp, "Megatron sequence parallelism inside the tensor-parallel group");
  cmd->add_option("--zero", layout.zero, "1: shard the AdamW state over the data-parallel ranks (ZeRO-1)");
  cmd->add_option("--schedule", schedule, "Pipeline schedule: 1f1b (default) or gpipe");
  cmd->add_option("--stage-layers", layout.stage_layers, "Blocks per pipeline stage, e.g. 6,2 (default: even)")
      ->delimiter(',');
}

std::unique_ptr<ParallelState> LayoutOptions::start(const ModelConfig& c) {
  layout.schedule = schedule_from_name(schedule);
  if (comm_timeout > 0) set_comm_timeout(comm_timeout);
  check_layout(layout, c.n_head, c.ffn(), c.n_layer, world_size());
  return std::make_unique<ParallelState>(ParallelState::create(layout));
}

void ShapeOverrides::add_to(CLI::App* cmd) {
  cmd->add_option("--n-layer", n_layer, "Override the number of blocks");
  cmd->add_option("--n-embd", n_embd, "Override the width C");
  cmd->add_option("--n-head", n_head, "Override the number of heads");
  cmd->add_option("--n-inner", n_inner, "Override the MLP width F");
  cmd->add_option("--n-positions", n_positions, "Override the context length P");
  cmd->add_option("--vocab-size", vocab_size, "Override the vocabulary size V");
  cmd->add_option("--activation", activation, "gelu (exact erf) or gelu_new (tanh)");
}

void ShapeOverrides::apply(ModelConfig& c) const {
  if (n_layer) c.n_layer = n_layer;
  if (n_embd) c.n_embd = n_embd;
  if (n_head) c.n_head = n_head;
  if (n_inner) c.n_inner = n_inner;
  if (n_positions) c.n_positions = n_positions;
  if (vocab_size) c.vocab_size = vocab_size;
  if (!activation.empty()) {
    WAFER_CHECK(activation == "gelu" || activation == "gelu_new", "[init] expected --activation gelu or gelu_new, found ",
                activation);
    c.activation = activation == "gelu" ? Activation::GeluErf : Activation::GeluTanh;
  }
  // Round-trip through the JSON parser so overrides get the same validation as a config.json.
  c = config_from_json(nlohmann::json::parse(config_to_json(c).dump()), "the command-line shape");
}


}  // namespace wafer::cli
