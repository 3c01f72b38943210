// model/gguf_gpt2.cpp: GPT-2 ⇄ GGUF: tensor names and orientation, the per-tensor type policy,
// the metadata llama.cpp's gpt2 loader reads, and the tokenizer in and out of that metadata.
#include "model/gguf_gpt2.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/file.h"
#include "io/tensor_source.h"
#include "kernels/cpu/quant.h"

namespace wafer {

namespace {

// LLAMA_FTYPE of a file whose matrices are `t`. Q4_K: wafer's mix (every matrix Q4_K, the output
// matrix Q6_K) is nearest llama.cpp's Q4_K_S (14); the value is informational, nothing reads it.
uint32_t file_type_of(GgufType t) {
  switch (t) {
    case GgufType::F32:
      return 0;
    case GgufType::F16:
      return 1;
    case GgufType::Q4_0:
      return 2;
    case GgufType::Q8_0:
      return 7;
    case GgufType::Q4_K:
      return 14;
    case GgufType::Q5_K:  // not written (save_gguf_model refuses it)
      return 17;
    case GgufType::Q6_K:
      return 18;
    case GgufType::BF16:
      return 32;
  }
  return 0;
}

constexpr int32_t kTokenNormal = 1, kTokenControl = 3, kTokenUnused = 5;  // gguf-py TokenType

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// x as `type` bytes; x holds whole rows of ne[0] values, so blocks never straddle rows.
std::vector<uint8_t> encode_tensor(const float* x, int64_t n, int64_t row, GgufType type) {
  std::vector<uint8_t> out(size_t(n / gguf_block_size(type)) * gguf_type_size(type));
  const int64_t rows = n / row, row_bytes = int64_t(out.size()) / rows;
  switch (type) {
    case GgufType::F32:
      std::memcpy(out.data(), x, size_t(n) * 4);
      break;
    case GgufType::F16:
      convert_from_f32(out.data(), x, DType::F16, size_t(n));
      break;
    case GgufType::BF16:
      convert_from_f32(out.data(), x, DType::BF16, size_t(n));
      break;
    case GgufType::Q5_K:
      WAFER_ASSERT(false);  // save_gguf_model refuses it first
      break;
    case GgufType::Q8_0:
    case GgufType::Q4_0:
    case GgufType::Q4_K:
    case GgufType::Q6_K:
      // Rows are independent; the reference quantizers are scalar, so spread rows over threads.
#pragma omp parallel for schedule(dynamic, 16)
      for (int64_t r = 0; r < rows; ++r) {
        void* dst = out.data() + r * row_bytes;
        const float* src = x + r * row;
        if (type == GgufType::Q8_0) quantize_q8_0(static_cast<BlockQ8_0*>(dst), src, row);
        if (type == GgufType::Q4_0) quantize_q4_0(static_cast<BlockQ4_0*>(dst), src, row);
        if (type == GgufType::Q4_K) quantize_q4_k(static_cast<BlockQ4_K*>(dst), src, row);
        if (type == GgufType::Q6_K) quantize_q6_k(static_cast<BlockQ6_K*>(dst), src, row);
      }
      break;
  }
  return out;
}

std::vector<int64_t> gguf_ne(const ParamSpec& s, bool transposed) {
  // A transposed Conv1D weight [in, out] is torch [out, in], ne = [in, out]: the spec's shape.
  if (transposed) return s.shape;
  return {s.shape.rbegin(), s.shape.rend()};
}

GgufVocab read_vocab_files(const std::string& dir);
}  // namespace

bool is_gguf_path(const std::string& path) { return ends_with(path, ".gguf") || ends_with(path, ".GGUF"); }

std::string gguf_tensor_name(const std::string& hf_name, bool* transposed) {
  const std::string n = canonical_hf_name(hf_name);
  *transposed = false;
  if (n == "transformer.wte.weight") return "token_embd.weight";
  if (n == "transformer.wpe.weight") return "position_embd.weight";
  if (n == "lm_head.weight") return "output.weight";
  if (n == "transformer.ln_f.weight") return "output_norm.weight";
  if (n == "transformer.ln_f.bias") return "output_norm.bias";
  const std::string pre = "transformer.h.";
  if (n.compare(0, pre.size(), pre) != 0) return "";
  const size_t dot = n.find('.', pre.size());
  if (dot == std::string::npos) return "";
  const std::string layer = n.substr(pre.size(), dot - pre.size()), rest = n.substr(dot + 1);
  static const std::pair<const char*, const char*> kMap[] = {
      {"ln_1.", "attn_norm."}, {"attn.c_attn.", "attn_qkv."}, {"attn.c_proj.", "attn_output."},
      {"ln_2.", "ffn_norm."},  {"mlp.c_fc.", "ffn_up."},      {"mlp.c_proj.", "ffn_down."}};
  for (const auto& [hf, gg] : kMap) {
    const std::string h = hf;
    if (rest.compare(0, h.size(), h) != 0) continue;
    const std::string leaf = rest.substr(h.size());
    *transposed = leaf == "weight" && h.find("ln_") != 0;
    return "blk." + layer + "." + gg + leaf;
  }
  return "";
}

namespace {
// The GGUF block types that are wafer's QuantTypes.
constexpr std::pair<GgufType, QuantType> kQuantTypes[] = {
    {GgufType::Q8_0, QuantType::Q8_0}, {GgufType::Q4_0, QuantType::Q4_0},
    {GgufType::Q4_K, QuantType::Q4_K}, {GgufType::Q6_K, QuantType::Q6_K}};
std::optional<QuantType> quant_type_of(GgufType g) {
  for (const auto& [gg, q] : kQuantTypes)
    if (gg == g) return q;
  return std::nullopt;
}
GgufType gguf_type_of(QuantType q) {
  for (const auto& [g, qq] : kQuantTypes)
    if (qq == q) return g;
  fail(str_cat("[gguf] no GGUF type for quantization type ", quant_type_name(q)));
}
}  // namespace

GgufType gguf_tensor_type(const std::string& name, const std::vector<int64_t>& ne, GgufType base, bool tied) {
  if (ne.size() < 2 || name == "position_embd.weight" || base == GgufType::F32) return GgufType::F32;
  const std::optional<QuantType> q = quant_type_of(base);
  if (!q) return base;  // F16, BF16: every matrix
  // The blocks' types are the in-memory policy's, so a file loads back to the same blocks.
  const bool output = name == "output.weight" || (tied && name == "token_embd.weight");
  const std::optional<QuantType> t = matrix_quant_type(*q, ne[0], output);
  return t ? gguf_type_of(*t) : GgufType::F16;
}

GgufVocab read_gguf_vocab(const std::string& dir) {
  try {
    return read_vocab_files(dir);
  } catch (const nlohmann::json::exception& e) {
    fail(str_cat("[gguf] ", dir, ": the tokenizer files are not the JSON expected: ", e.what()));
  }
}

namespace {
GgufVocab read_vocab_files(const std::string& dir) {
  GgufVocab v;
  nlohmann::json vocab, added = nlohmann::json::array();
  std::vector<std::string> merges;
  if (file_exists(dir + "/vocab.json") && file_exists(dir + "/merges.txt")) {
    vocab = nlohmann::json::parse(read_file(dir + "/vocab.json"));
    std::string text = read_file(dir + "/merges.txt");
    size_t pos = 0;
    while (pos < text.size()) {
      size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      std::string line = text.substr(pos, end - pos);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty() && line.rfind("#version", 0) != 0) merges.push_back(line);
      pos = end + 1;
    }
  } else {
    const std::string path = file_exists(dir + "/tokenizer.json") ? dir + "/tokenizer.json" : dir;
    WAFER_CHECK(file_exists(path), "[gguf] ", dir, ": expected vocab.json + merges.txt or tokenizer.json");
    nlohmann::json j = nlohmann::json::parse(read_file(path));
    vocab = j.at("model").at("vocab");
    for (const auto& m : j.at("model").at("merges"))
      merges.push_back(m.is_string() ? m.get<std::string>()
                                     : m.at(0).get<std::string>() + " " + m.at(1).get<std::string>());
    if (j.contains("added_tokens")) added = j["added_tokens"];
  }
  WAFER_CHECK(vocab.is_object(), "[gguf] ", dir, ": expected the vocabulary to be a JSON object");
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const int64_t id = it.value().get<int64_t>();
    WAFER_CHECK(id >= 0 && id < int64_t(1) << 24, "[gguf] ", dir, ": token id ", id, " out of range");
    if (size_t(id) >= v.tokens.size()) v.tokens.resize(size_t(id) + 1);
    v.tokens[size_t(id)] = it.key();
  }
  for (const auto& a : added) {
    const int64_t id = a.at("id").get<int64_t>();
    if (id >= 0 && size_t(id) < v.tokens.size() && a.value("special", false)) v.special_ids.push_back(int32_t(id));
  }
  if (added.empty())  // vocab.json carries no flags: GPT-2's one added token is <|endoftext|>
    for (size_t i = 0; i < v.tokens.size(); ++i)
      if (v.tokens[i] == "<|endoftext|>") v.special_ids.push_back(int32_t(i));
  v.merges = std::move(merges);
  return v;
}
}  // namespace

void save_gguf_model(const Model& model, const std::string& path, GgufType type, const GgufVocab* vocab) {
  WAFER_CHECK(model.shard == Shard::full(model.config), "[gguf] export needs the whole model on one rank");
  WAFER_CHECK(type != GgufType::Q5_K, "[gguf] wafer reads Q5_K tensors but does not write them");
  WAFER_CHECK(model.config.scale_attn_weights,
              "[gguf] llama.cpp scales attention by 1/sqrt(D) always; a model "
              "with scale_attn_weights = false has no gpt2 GGUF form");
  auto hf = export_for_hf(model);  // μP multipliers folded into the weights
  const ModelConfig& c = hf->config;
  const bool tied = c.tie_word_embeddings;
  GgufMetadata kv = {
      {"general.architecture", GgufValue::str("gpt2")},
      {"gpt2.block_count", GgufValue::u32(uint32_t(c.n_layer))},
      {"gpt2.context_length", GgufValue::u32(uint32_t(c.n_positions))},
      {"gpt2.embedding_length", GgufValue::u32(uint32_t(c.n_embd))},
      {"gpt2.feed_forward_length", GgufValue::u32(uint32_t(c.ffn()))},
      {"gpt2.attention.head_count", GgufValue::u32(uint32_t(c.n_head))},
      {"gpt2.attention.layer_norm_epsilon", GgufValue::f32(float(c.layer_norm_epsilon))},
      {"general.file_type", GgufValue::u32(file_type_of(type))},
      {"general.quantization_version", GgufValue::u32(2)},  // GGML_QNT_VERSION
      {"wafer.activation_function", GgufValue::str(c.activation == Activation::GeluTanh ? "gelu_new" : "gelu")},
  };
  if (vocab) {
    WAFER_CHECK(int64_t(vocab->tokens.size()) <= c.vocab_size, "[gguf] the tokenizer has ", vocab->tokens.size(),
                " tokens, more than the model's vocab_size ", c.vocab_size);
    std::vector<std::string> tokens = vocab->tokens;
    std::vector<int32_t> types(size_t(c.vocab_size), kTokenNormal);
    tokens.resize(size_t(c.vocab_size));
    for (size_t i = 0; i < tokens.size(); ++i)  // rows past the tokenizer (and holes): as the converter pads
      if (i >= vocab->tokens.size() || tokens[i].empty())
        tokens[i] = "[PAD" + std::to_string(i) + "]", types[i] = kTokenUnused;
    for (int32_t id : vocab->special_ids) types[size_t(id)] = kTokenControl;
    kv.push_back({"tokenizer.ggml.model", GgufValue::str("gpt2")});
    kv.push_back({"tokenizer.ggml.pre", GgufValue::str("gpt-2")});
    kv.push_back({"tokenizer.ggml.tokens", GgufValue::str_array(std::move(tokens))});
    kv.push_back({"tokenizer.ggml.token_type", GgufValue::i32_array(std::move(types))});
    kv.push_back({"tokenizer.ggml.merges", GgufValue::str_array(vocab->merges)});
  }
  kv.push_back({"tokenizer.ggml.bos_token_id", GgufValue::u32(uint32_t(c.bos_token_id))});
  kv.push_back({"tokenizer.ggml.eos_token_id", GgufValue::u32(uint32_t(c.eos_token_id))});

  std::vector<std::vector<uint8_t>> data;
  std::vector<GgufTensorToWrite> tensors;
  ModelWeights w = hf->w;
  for_each_parameter(c, w, [&](const ParamSpec& s, float*& slot) {
    bool transposed;
    const std::string name = gguf_tensor_name(s.name, &transposed);
    WAFER_ASSERT(!name.empty());
    const std::vector<int64_t> ne = gguf_ne(s, transposed);
    const GgufType t = gguf_tensor_type(name, ne, type, tied);
    std::vector<float> tmp;
    const float* src = slot;
    if (transposed) {  // [in, out] → [out, in]
      const int64_t in = s.shape[0], out = s.shape[1];
      tmp.resize(size_t(in * out));
      for (int64_t i = 0; i < in; ++i)
        for (int64_t o = 0; o < out; ++o) tmp[size_t(o * in + i)] = slot[i * out + o];
      src = tmp.data();
    }
    data.push_back(encode_tensor(src, s.numel(), ne[0], t));
    tensors.push_back({name, t, ne, nullptr});
  });
  for (size_t i = 0; i < tensors.size(); ++i) tensors[i].data = data[i].data();
  write_gguf(path, kv, tensors);
}

ModelConfig gguf_model_config(const GgufFile& f) {
  const std::string& arch = f.get_string("general.architecture");
  WAFER_CHECK(arch == "gpt2", "[gguf] ", f.source(), ": expected general.architecture \"gpt2\", found \"", arch, "\"");
  const GgufTensor* emb = f.find_tensor("token_embd.weight");
  WAFER_CHECK(emb && emb->ne.size() == 2, "[gguf] ", f.source(), ": expected a 2-D tensor token_embd.weight");
  const int64_t C = f.get_int("gpt2.embedding_length"), F = f.get_int("gpt2.feed_forward_length");
  const int64_t L = f.get_int("gpt2.block_count");
  WAFER_CHECK(L >= 0 && L <= int64_t(f.tensors().size()) / 12, "[gguf] ", f.source(), ": gpt2.block_count ", L,
              " needs ", 12, " tensors per block, the file has ", f.tensors().size(), " tensors in all");
  nlohmann::json j = {
      {"model_type", "gpt2"},
      {"vocab_size", emb->ne[1]},
      {"n_positions", f.get_int("gpt2.context_length")},
      {"n_embd", C},
      {"n_layer", L},
      {"n_head", f.get_int("gpt2.attention.head_count")},
      {"layer_norm_epsilon", f.get_float("gpt2.attention.layer_norm_epsilon")},
      {"tie_word_embeddings", f.find_tensor("output.weight") == nullptr},
      // llama.cpp computes the tanh GELU; a file wafer wrote says which its model used.
      {"activation_function",
       f.find("wafer.activation_function") ? f.get_string("wafer.activation_function") : "gelu_new"},
  };
  if (F != 4 * C) j["n_inner"] = F;
  if (f.find("tokenizer.ggml.bos_token_id")) j["bos_token_id"] = f.get_int("tokenizer.ggml.bos_token_id");
  if (f.find("tokenizer.ggml.eos_token_id")) j["eos_token_id"] = f.get_int("tokenizer.ggml.eos_token_id");
  return config_from_json(j, f.source());
}

ModelConfig load_gguf_config(const std::string& path) { return gguf_model_config(GgufFile(path)); }

namespace {

// The model a file describes, every tensor checked against the metadata's parameter list
// before anything is allocated (the tensors are checked against the file's size, so a lying
// header cannot ask for more memory). Its parameters are still zero pages: nothing is written.
std::unique_ptr<Model> checked_empty_model(const GgufFile& f) {
  const ModelConfig c = gguf_model_config(f);
  std::set<std::string> used;
  for (const ParamSpec& s : parameter_specs(c)) {
    bool transposed;
    const std::string name = gguf_tensor_name(s.name, &transposed);
    const GgufTensor* t = f.find_tensor(name);
    WAFER_CHECK(t, "[gguf] ", f.source(), ": missing tensor '", name, "'");
    const std::vector<int64_t> ne = gguf_ne(s, transposed);
    WAFER_CHECK(t->ne == ne, "[gguf] ", f.source(), ": tensor '", name, "' expected ne ", shape_str(ne), ", found ",
                shape_str(t->ne));
    used.insert(name);
  }
  for (const GgufTensor& t : f.tensors())
    WAFER_CHECK(used.count(t.name), "[gguf] ", f.source(), ": unexpected tensor '", t.name, "' ", shape_str(t.ne),
                " for a gpt2 model with this metadata");
  return std::make_unique<Model>(c);
}

// Writes the tensors of f for which want(slot) holds into m's parameters as fp32 (dequantized,
// and transposed where the file stores [out, in]), then drops their pages of the mapped file.
void load_values(const GgufFile& f, Model& m, const std::function<bool(const float*)>& want) {
  std::vector<float> tmp;
  for_each_parameter(m.config, m.w, [&](const ParamSpec& s, float*& slot) {
    if (!want(slot)) return;
    bool transposed;
    const GgufTensor* t = f.find_tensor(gguf_tensor_name(s.name, &transposed));
    if (!transposed) {
      gguf_tensor_to_f32(slot, *t);
    } else {  // [out, in] on disk → [in, out]
      const int64_t in = s.shape[0], out = s.shape[1];
      tmp.resize(size_t(in * out));
      gguf_tensor_to_f32(tmp.data(), *t);
      for (int64_t o = 0; o < out; ++o)
        for (int64_t i = 0; i < in; ++i) slot[i * out + o] = tmp[size_t(o * in + i)];
    }
    f.release_pages(*t);
  });
}

}  // namespace

std::unique_ptr<Model> load_gguf_model(const std::string& path) {
  const GgufFile f(path);
  auto model = checked_empty_model(f);
  load_values(f, *model, [](const float*) { return true; });
  return model;
}

std::unique_ptr<Model> load_gguf_model(const std::string& path, QuantType t) {
  auto f = std::make_shared<const GgufFile>(path);
  auto model = checked_empty_model(*f);
  // The matrices are left unread: quantize_matrices takes the file's blocks in place where their
  // type is the policy's, and dequantizes the others one at a time just before quantizing them.
  const std::set<const float*> matrices = quantized_matrices(*model, t);
  load_values(*f, *model, [&](const float* slot) { return matrices.count(slot) == 0; });
  const auto given = gguf_quant_matrices(*f, *model);
  quantize_matrices(*model, t, &given, [&](float* w) {
    load_values(*f, *model, [w](const float* slot) { return slot == w; });
  });
  model->weight_file = std::move(f);  // the blocks used in place live in its mapping
  return model;
}

std::map<const float*, QuantMatrix> gguf_quant_matrices(const GgufFile& f, const Model& m) {
  WAFER_CHECK(m.shard == Shard::full(m.config), "[gguf] a file's blocks are for the whole model on one rank");
  std::map<const float*, QuantMatrix> out;
  auto add = [&](const float* w, const std::string& name) {
    const GgufTensor* t = f.find_tensor(name);
    if (!w || !t || t->ne.size() != 2) return;
    // ne = [cols, rows]: rows of ne[0] values, as QuantMatrix
    if (const auto q = quant_type_of(t->type)) out[w] = {*q, t->ne[1], t->ne[0], t->data};
  };
  for (size_t l = 0; l < m.w.layers.size(); ++l) {
    const LayerWeights& w = m.w.layers[l];
    const std::string blk = "blk." + std::to_string(l) + ".";
    add(w.qkv_w, blk + "attn_qkv.weight");
    add(w.attn_proj_w, blk + "attn_output.weight");
    add(w.fc_w, blk + "ffn_up.weight");
    add(w.fc_proj_w, blk + "ffn_down.weight");
  }
  add(m.w.wte, "token_embd.weight");
  if (m.w.lm_head != m.w.wte) add(m.w.lm_head, "output.weight");
  return out;
}

bool gguf_vocab_of(const GgufFile& f, GgufVocab* out) {
  if (!f.find("tokenizer.ggml.tokens") || !f.find("tokenizer.ggml.merges")) return false;
  const auto& tokens = f.get_strings("tokenizer.ggml.tokens");
  const GgufValue* types = f.find("tokenizer.ggml.token_type");
  auto type_of = [&](size_t i) -> int64_t {
    return types && types->is_array() && i < types->ints.size() ? types->ints[i] : kTokenNormal;
  };
  out->tokens.clear();
  out->special_ids.clear();
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (type_of(i) == kTokenUnused) continue;  // the converter's [PAD] rows: re-added on export
    if (out->tokens.size() < i) out->tokens.resize(i);
    out->tokens.push_back(tokens[i]);
    if (type_of(i) == kTokenControl) out->special_ids.push_back(int32_t(i));
  }
  out->merges = f.get_strings("tokenizer.ggml.merges");
  return true;
}

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::string& path) {
  GgufFile f(path);
  WAFER_CHECK(f.find("tokenizer.ggml.model") && f.get_string("tokenizer.ggml.model") == "gpt2", "[gguf] ", path,
              ": expected tokenizer.ggml.model \"gpt2\" (a byte-level BPE vocabulary)");
  const auto& tokens = f.get_strings("tokenizer.ggml.tokens");
  const GgufValue* types = f.find("tokenizer.ggml.token_type");
  nlohmann::json vocab = nlohmann::json::object();
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (types && types->is_array() && i < types->ints.size() && types->ints[i] == kTokenUnused) continue;  // padding
    vocab[tokens[i]] = i;
  }
  std::string merges = "#version: 0.2\n";
  for (const std::string& m : f.get_strings("tokenizer.ggml.merges")) merges += m + "\n";
  return Tokenizer::from_vocab_merges(vocab.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), merges,
                                      path);
}

}  // namespace wafer
