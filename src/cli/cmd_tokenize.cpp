// cli/cmd_tokenize.cpp: `wafer tokenize`: text on stdin -> ids, or with --decode ids -> bytes.
#include <cstdio>

#include "cli/commands.h"
#include "cli/io_util.h"

namespace wafer::cli {

void add_tokenize_command(CLI::App& app) {
  struct Opts {
    std::string tokenizer;
    bool allow_special = false, json = false, decode = false;
  };
  auto opts = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("tokenize", "Encode stdin to token ids, or decode ids (--decode) to bytes");
  cmd->add_option("--tokenizer", opts->tokenizer, "Folder with vocab.json + merges.txt, or tokenizer.json")->required();
  cmd->add_flag("--allow-special", opts->allow_special, "Encode <|endoftext|> as its special id (50256)");
  cmd->add_flag("--json", opts->json, "Print the ids as one JSON array");
  cmd->add_flag("--decode", opts->decode, "Read ids (comma or whitespace separated) and write the decoded bytes");
  cmd->callback([opts] {
    auto tok = Tokenizer::load(opts->tokenizer);
    std::string input = read_stdin();
    if (opts->decode) {
      std::string bytes = tok->decode(parse_ids(input, "tokenize --decode"));
      std::fwrite(bytes.data(), 1, bytes.size(), stdout);
      return;
    }
    BpeCache cache;
    std::vector<int32_t> ids = tok->encode(input, opts->allow_special, &cache);
    if (opts->json) {
      std::string s = json_ids(ids) + "\n";
      std::fwrite(s.data(), 1, s.size(), stdout);
      return;
    }
    std::string s;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) s += ' ';
      s += std::to_string(ids[i]);
    }
    s += '\n';
    std::fwrite(s.data(), 1, s.size(), stdout);
  });
}

}  // namespace wafer::cli
