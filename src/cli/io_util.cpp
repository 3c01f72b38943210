// cli/io_util.cpp: stdin, id parsing, tokenizer lookup.
#include "cli/io_util.h"

#include <cstdio>

#include "core/error.h"

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
  if (!explicit_dir.empty()) return Tokenizer::load(explicit_dir);
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

}  // namespace wafer::cli
