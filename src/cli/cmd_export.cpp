// cli/cmd_export.cpp: `wafer export --gguf` (a model as a llama.cpp gpt2 GGUF file, float or
// quantized) and `wafer quantize` (the same, quantized types only). Both read an HF folder or a
// .gguf file and write through a temporary name and a rename.
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "core/error.h"
#include "io/gguf.h"
#include "model/gguf_gpt2.h"
#include "model/model.h"

namespace wafer::cli {

namespace {

struct ExportOpts {
  std::string model, tokenizer, type = "f16", out;
  bool gguf = false;
};

void run_export(const ExportOpts& o, bool quantized_only) {
  GgufType type;
  WAFER_CHECK(gguf_type_from_name(o.type, &type) && type != GgufType::Q5_K,  // Q5_K: read, not written
              "[export] expected --type f32, f16, bf16, q8_0, q4_0, q4_k or q6_k, found '", o.type, "'");
  if (quantized_only)
    WAFER_CHECK(type == GgufType::Q8_0 || type == GgufType::Q4_0 || type == GgufType::Q4_K || type == GgufType::Q6_K,
                "[quantize] expected --type q8_0, q4_0, q4_k or q6_k, found '", o.type,
                "' (float types: wafer export --gguf)");
  auto m = load_hf_model(o.model);  // a .gguf input is dequantized to fp32 first
  GgufVocab vocab;
  bool have_vocab = false;
  const std::string tok = o.tokenizer.empty() ? o.model : o.tokenizer;
  if (is_gguf_path(tok)) {
    have_vocab = gguf_vocab_of(GgufFile(tok), &vocab);
  } else if (Tokenizer::present(tok)) {
    vocab = read_gguf_vocab(tok);
    have_vocab = true;
  }
  if (!have_vocab)
    std::fprintf(stderr, "export: no tokenizer in %s; the file has none (llama.cpp needs one: pass --tokenizer DIR)\n",
                 tok.c_str());
  save_gguf_model(*m, o.out, type, have_vocab ? &vocab : nullptr);
  const auto bytes = std::filesystem::file_size(o.out);
  std::printf("wrote %s (gguf %s, %.1f MB)\n", o.out.c_str(), gguf_type_name(type), double(bytes) / 1e6);
}

CLI::App* add_common(CLI::App* cmd, ExportOpts& o) {
  cmd->add_option("--model", o.model, "HF model folder (config.json + weights) or a .gguf file")->required();
  cmd->add_option("--out", o.out, "The .gguf file to write")->required();
  cmd->add_option("--tokenizer", o.tokenizer, "Tokenizer folder or .gguf (default: the model's own)");
  return cmd;
}

}  // namespace

void add_export_command(CLI::App& app) {
  auto o = std::make_shared<ExportOpts>();
  auto* cmd = add_common(app.add_subcommand("export", "Write a model for llama.cpp (--gguf: a gpt2 GGUF file)"), *o);
  cmd->add_flag("--gguf", o->gguf, "GGUF output (the one export format)")->required();
  cmd->add_option("--type", o->type, "f32, f16, bf16, q8_0, q4_0, q4_k or q6_k (default f16)");
  cmd->callback([o] { run_export(*o, false); });
}

void add_quantize_command(CLI::App& app) {
  auto o = std::make_shared<ExportOpts>();
  auto* cmd = add_common(app.add_subcommand("quantize", "Write a quantized gpt2 GGUF file (q8_0, q4_0, q4_k, q6_k)"), *o);
  cmd->add_option("--type", o->type, "q8_0, q4_0, q4_k or q6_k")->required();
  cmd->callback([o] { run_export(*o, true); });
}

}  // namespace wafer::cli
