// model/config.cpp: config.json read/write, presets, parameter and FLOP counts.
#include "model/config.h"

#include <cmath>

#include "core/error.h"
#include "core/file.h"
#include "core/json_file.h"

namespace wafer {

float ModelConfig::attn_scale() const {
  if (!scale_attn_weights) return 1.0f;
  return mup_scale_qk_dot_by_d ? 1.0f / float(head_dim()) : 1.0f / std::sqrt(float(head_dim()));
}

namespace {

void validate(const ModelConfig& c, const std::string& src) {
  // Upper bounds far past any real model (13B: V 50257, P 2048, C 5120, L 40, F 20480) that keep
  // parameter_count and every size derived from the shape inside int64.
  auto in_range = [&](const char* name, int64_t v, int64_t max) {
    WAFER_CHECK(v > 0 && v <= max, "[config] ", src, ": expected ", name, " in [1, ", max, "], found ", v);
  };
  in_range("vocab_size", c.vocab_size, int64_t(1) << 31);  // token ids are int32
  in_range("n_positions", c.n_positions, int64_t(1) << 24);
  in_range("n_embd", c.n_embd, int64_t(1) << 20);
  in_range("n_layer", c.n_layer, int64_t(1) << 16);
  in_range("n_head", c.n_head, c.n_embd);
  in_range("n_inner", c.ffn(), int64_t(1) << 22);
  WAFER_CHECK(c.n_embd % c.n_head == 0, "[config] ", src, ": n_embd (", c.n_embd, ") must be divisible by n_head (",
              c.n_head, ")");
  WAFER_CHECK(c.layer_norm_epsilon > 0, "[config] ", src, ": expected layer_norm_epsilon > 0, found ",
              c.layer_norm_epsilon);
}

}  // namespace

ModelConfig config_from_json(const nlohmann::json& j, const std::string& src) {
  WAFER_CHECK(j.is_object(), "[config] ", src, ": expected a JSON object");
  ModelConfig c;
  auto get_int = [&](const char* key, int64_t& out, bool required) {
    if (!j.contains(key) || j[key].is_null()) {
      WAFER_CHECK(!required, "[config] ", src, ": missing required field '", key, "'");
      return;
    }
    WAFER_CHECK(j[key].is_number_integer(), "[config] ", src, ": expected '", key, "' to be an integer, found ",
                j[key].dump());
    out = j[key].get<int64_t>();
  };
  auto get_float = [&](const char* key, double& out) {
    if (!j.contains(key) || j[key].is_null()) return;
    WAFER_CHECK(j[key].is_number(), "[config] ", src, ": expected '", key, "' to be a number, found ", j[key].dump());
    out = j[key].get<double>();
  };
  auto get_bool = [&](const char* key, bool& out) {
    if (!j.contains(key) || j[key].is_null()) return;
    WAFER_CHECK(j[key].is_boolean(), "[config] ", src, ": expected '", key, "' to be true or false, found ",
                j[key].dump());
    out = j[key].get<bool>();
  };
  if (j.contains("model_type") && j["model_type"].is_string())
    WAFER_CHECK(j["model_type"] == "gpt2", "[config] ", src, ": expected model_type \"gpt2\" (GPT2LMHeadModel), found ",
                j["model_type"].dump());
  get_int("vocab_size", c.vocab_size, true);
  get_int("n_positions", c.n_positions, true);
  get_int("n_embd", c.n_embd, true);
  get_int("n_layer", c.n_layer, true);
  get_int("n_head", c.n_head, true);
  get_int("n_inner", c.n_inner, false);
  get_int("bos_token_id", c.bos_token_id, false);
  get_int("eos_token_id", c.eos_token_id, false);
  get_float("layer_norm_epsilon", c.layer_norm_epsilon);
  get_bool("tie_word_embeddings", c.tie_word_embeddings);
  get_bool("scale_attn_weights", c.scale_attn_weights);
  get_float("mup_embeddings_scale", c.mup_embeddings_scale);
  get_float("mup_output_scale", c.mup_output_scale);
  get_bool("mup_scale_qk_dot_by_d", c.mup_scale_qk_dot_by_d);
  get_int("mup_base_width", c.mup_base_width, false);
  if (j.contains("activation_function")) {
    WAFER_CHECK(j["activation_function"].is_string(), "[config] ", src, ": activation_function must be a string");
    std::string a = j["activation_function"].get<std::string>();
    if (a == "gelu")
      c.activation = Activation::GeluErf;
    else if (a == "gelu_new" || a == "gelu_pytorch_tanh")
      c.activation = Activation::GeluTanh;
    else
      fail(str_cat("[config] ", src, ": activation_function \"", a,
                   "\" is not supported; expected \"gelu\" (exact erf) or \"gelu_new\" (tanh)"));
  }
  bool by_layer = false;
  auto flag = [&](const char* key) { bool v = false; get_bool(key, v); return v; };
  by_layer = flag("scale_attn_by_inverse_layer_idx");
  WAFER_CHECK(!by_layer, "[config] ", src, ": scale_attn_by_inverse_layer_idx = true is not supported (Cerebras-GPT "
              "and GPT-2 use false)");
  validate(c, src);
  return c;
}

nlohmann::ordered_json config_to_json(const ModelConfig& c) {
  nlohmann::ordered_json j;
  j["architectures"] = {"GPT2LMHeadModel"};
  j["model_type"] = "gpt2";
  j["activation_function"] = c.activation == Activation::GeluErf ? "gelu" : "gelu_new";
  j["vocab_size"] = c.vocab_size;
  j["n_positions"] = c.n_positions;
  j["n_ctx"] = c.n_positions;
  j["n_embd"] = c.n_embd;
  j["n_layer"] = c.n_layer;
  j["n_head"] = c.n_head;
  j["n_inner"] = c.n_inner > 0 ? nlohmann::ordered_json(c.n_inner) : nlohmann::ordered_json(nullptr);
  j["layer_norm_epsilon"] = c.layer_norm_epsilon;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["scale_attn_weights"] = c.scale_attn_weights;
  j["scale_attn_by_inverse_layer_idx"] = false;
  j["reorder_and_upcast_attn"] = false;
  j["initializer_range"] = 0.02;
  j["resid_pdrop"] = 0.0;
  j["embd_pdrop"] = 0.0;
  j["attn_pdrop"] = 0.0;
  j["bos_token_id"] = c.bos_token_id;
  j["eos_token_id"] = c.eos_token_id;
  j["use_cache"] = true;
  if (c.is_mup() || c.mup_embeddings_scale != 1.0 || c.mup_output_scale != 1.0 || c.mup_scale_qk_dot_by_d) {
    j["mup_base_width"] = c.mup_base_width;
    j["mup_embeddings_scale"] = c.mup_embeddings_scale;
    j["mup_output_scale"] = c.mup_output_scale;
    j["mup_scale_qk_dot_by_d"] = c.mup_scale_qk_dot_by_d;
  }
  return j;
}

ModelConfig load_config(const std::string& path) {
  return config_from_json(read_json_file(path, "config"), path);
}

void save_config(const ModelConfig& c, const std::string& path) {
  write_file_atomic(path, config_to_json(c).dump(2) + "\n");
}

namespace {
struct Preset {
  const char* name;
  int64_t layers, d, heads, ffn, positions;
  Activation act;
};
constexpr Preset kPresets[] = {
    {"111M", 10, 768, 12, 3072, 2048, Activation::GeluErf},
    {"256M", 14, 1088, 17, 4352, 2048, Activation::GeluErf},
    {"590M", 18, 1536, 12, 6144, 2048, Activation::GeluErf},
    {"1.3B", 24, 2048, 16, 8192, 2048, Activation::GeluErf},
    {"2.7B", 32, 2560, 32, 10240, 2048, Activation::GeluErf},
    {"6.7B", 32, 4096, 32, 16384, 2048, Activation::GeluErf},
    {"13B", 40, 5120, 40, 20480, 2048, Activation::GeluErf},
    {"gpt2", 12, 768, 12, 3072, 1024, Activation::GeluTanh},
    {"gpt2-medium", 24, 1024, 16, 4096, 1024, Activation::GeluTanh},
    {"gpt2-large", 36, 1280, 20, 5120, 1024, Activation::GeluTanh},
    {"gpt2-xl", 48, 1600, 25, 6400, 1024, Activation::GeluTanh},
};
}  // namespace

std::optional<ModelConfig> preset(const std::string& name) {
  for (const auto& p : kPresets) {
    if (name != p.name) continue;
    ModelConfig c;
    c.n_layer = p.layers;
    c.n_embd = p.d;
    c.n_head = p.heads;
    c.n_inner = p.ffn;
    c.n_positions = p.positions;
    c.activation = p.act;
    return c;
  }
  return std::nullopt;
}

std::vector<std::string> preset_names() {
  std::vector<std::string> v;
  for (const auto& p : kPresets) v.push_back(p.name);
  return v;
}

int64_t parameter_count(const ModelConfig& c) {
  const int64_t V = c.vocab_size, P = c.n_positions, C = c.n_embd, F = c.ffn(), L = c.n_layer;
  int64_t n = V * C + P * C + L * (4 * C * C + 2 * C * F + 9 * C + F) + 2 * C;
  if (!c.tie_word_embeddings) n += V * C;
  return n;
}

double forward_flops_per_token(const ModelConfig& c, int64_t T) {
  const double V = double(c.vocab_size), C = double(c.n_embd), F = double(c.ffn()), L = double(c.n_layer);
  double n_prime = V * C + L * (4 * C * C + 2 * C * F + 9 * C + F) + 2 * C;  // head counted once
  return 2.0 * n_prime + 4.0 * L * C * double(T);
}

}  // namespace wafer
