// model/config.h: the model's hyperparameters as HF's GPT2Config spells them, the named presets
// (Cerebras-GPT 111M..13B, GPT-2 small..xl), and the counts derived from them.
//
// Dimension letters used across model/ and below:
//   B batch, T sequence length (tokens), C = n_embd, H = n_head, D = C / H head size,
//   F = n_inner (MLP width), V = vocab_size, P = n_positions, L = n_layer.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wafer {

enum class Activation { GeluErf, GeluTanh };  // HF "gelu" / "gelu_new"

struct ModelConfig {
  int64_t vocab_size = 50257;   // V
  int64_t n_positions = 2048;   // P
  int64_t n_embd = 768;         // C
  int64_t n_layer = 12;         // L
  int64_t n_head = 12;          // H
  int64_t n_inner = 0;          // F; 0 means 4·C (HF's null)
  Activation activation = Activation::GeluErf;
  double layer_norm_epsilon = 1e-5;
  bool tie_word_embeddings = true;
  bool scale_attn_weights = true;
  int64_t bos_token_id = 50256;
  int64_t eos_token_id = 50256;
  // μP (wafer's own config.json fields; HF GPT-2 ignores them, so exports fold them in).
  double mup_embeddings_scale = 1.0;  // multiplies the embedding output (μP: 10)
  double mup_output_scale = 1.0;      // multiplies the logits (μP: base_width / C)
  bool mup_scale_qk_dot_by_d = false; // attention scale 1/D instead of 1/sqrt(D)
  int64_t mup_base_width = 0;         // μP base width (256); 0 = standard parametrisation

  int64_t ffn() const { return n_inner > 0 ? n_inner : 4 * n_embd; }
  int64_t head_dim() const { return n_embd / n_head; }
  // s in softmax(Q Kᵀ · s): 1/sqrt(D), 1/D under μP, 1 when scale_attn_weights is false.
  float attn_scale() const;
  bool is_mup() const { return mup_base_width > 0; }

  bool operator==(const ModelConfig&) const = default;
};

// Parses an HF config.json object; `source` names the file in messages. Throws on missing or
// ill-typed fields, unsupported options, and shapes that do not divide (C % H).
ModelConfig config_from_json(const nlohmann::json& j, const std::string& source);
nlohmann::ordered_json config_to_json(const ModelConfig& c);
ModelConfig load_config(const std::string& path);  // a config.json file
void save_config(const ModelConfig& c, const std::string& path);

std::optional<ModelConfig> preset(const std::string& name);
std::vector<std::string> preset_names();

// Exact count of stored parameters: V·C + P·C + L(4C² + 2CF + 9C + F) + 2C (+ V·C untied).
int64_t parameter_count(const ModelConfig& c);
// Forward FLOPs per token at context T: 2·N' + 4·L·C·T, N' = parameters less the position
// embeddings, the head counted once as a matmul (tied or not); the attention term counts Q·Kᵀ and
// P·V over the full T×T (the PaLM / llm.c convention; causal masking halves the real work).
// Training is 3× that: 6·N' + 12·L·C·T.
double forward_flops_per_token(const ModelConfig& c, int64_t T);

}  // namespace wafer
