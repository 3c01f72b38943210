// tokenizer/bpe.h: GPT-2 byte-level BPE. Loads vocab.json + merges.txt (or tokenizer.json),
// encodes bytes to token ids exactly as HF tokenizers / tiktoken do, decodes ids to bytes.
// Not here: the regex pre-tokenizer (pretokenize.h), the model.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/pretokenize.h"

namespace wafer {

// Memo of piece -> ids, one per thread (encoding is otherwise stateless and const).
struct BpeCache {
  std::unordered_map<std::string, std::vector<int32_t>> pieces;
  size_t max_entries = 1 << 18;
};

class Tokenizer {
 public:
  // `path` is a folder holding vocab.json + merges.txt or tokenizer.json, or a tokenizer.json file.
  static std::unique_ptr<Tokenizer> load(const std::string& path);
  // The same from the files' text already in memory (tests, fuzz/); `dir` or `source` names
  // them in messages.
  static std::unique_ptr<Tokenizer> from_vocab_merges(std::string_view vocab_json, std::string_view merges_txt,
                                                      const std::string& dir);
  static std::unique_ptr<Tokenizer> from_tokenizer_json(std::string_view text, const std::string& source);
  // True when `dir` holds a tokenizer load() accepts.
  static bool present(const std::string& dir);

  // Text bytes (any, also invalid UTF-8) -> ids. Special tokens such as <|endoftext|> are
  // recognised only with allow_special; otherwise they are ordinary text.
  std::vector<int32_t> encode(std::string_view text, bool allow_special, BpeCache* cache = nullptr) const;
  // Ids -> the exact bytes they stand for; throws on an id outside the vocabulary.
  std::string decode(std::span<const int32_t> ids) const;
  const std::string& token_bytes(int32_t id) const { return token_bytes_[size_t(id)]; }

  int32_t vocab_size() const { return int32_t(token_bytes_.size()); }
  // Id of <|endoftext|>, or -1 when the vocabulary has none.
  int32_t eot_id() const { return eot_id_; }

 private:
  using MergeList = std::vector<std::pair<std::string, std::string>>;
  static std::unique_ptr<Tokenizer> build(const nlohmann::json& vocab, const MergeList& merges,
                                          const nlohmann::json& added, const std::string& vocab_source);
  void build_byte_tables();
  void add_merges(const std::vector<std::pair<std::string, std::string>>& merges, const std::string& source);
  void encode_piece(std::string_view piece, std::vector<int32_t>& out, BpeCache* cache) const;
  void bpe(std::vector<int32_t>& ids) const;

  struct Merge {
    int32_t rank;
    int32_t merged;
  };
  std::vector<std::string> token_bytes_;                  // [V] raw bytes of each token
  std::unordered_map<std::string, int32_t> token_ids_;    // vocab.json key (byte-mapped) -> id
  std::unordered_map<uint64_t, Merge> merges_;            // (left id << 32 | right id) -> merge
  std::vector<std::pair<std::string, int32_t>> specials_; // raw text -> id
  int32_t byte_token_[256];                               // byte -> single-byte token id
  int32_t eot_id_ = -1;
  Pretokenizer pretokenizer_;
};

}  // namespace wafer
