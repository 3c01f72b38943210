// train/data.h: token shards and the dataset the trainer draws from.
//
// A shard is a 32-byte header then little-endian token ids:
//   magic "WFRTOKS\0" | u32 version (1) | u32 bytes per token (2 or 4) | u64 tokens |
//   u32 vocab size | u32 CRC-32 of the ids
// A dataset folder holds train_NNN.bin and val_NNN.bin shards and manifest.json (counts and
// checksums). Batches are a pure function of (seed, batch index), so the data cursor is one
// integer and a resumed run sees exactly the batches an uninterrupted one would.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/file.h"
#include "train/train_step.h"

namespace wafer {

class Tokenizer;

// Writes tokens as a shard (2 bytes per id when the vocabulary fits, else 4); returns the CRC-32.
uint32_t write_shard(const std::string& path, const std::vector<int32_t>& tokens, int64_t vocab_size);

class TokenShard {
 public:
  // Maps and validates the header, the size and (when verify_crc) the checksum.
  TokenShard(const std::string& path, bool verify_crc = true);
  // The same over bytes already mapped or in memory (MappedFile's buffer constructor).
  explicit TokenShard(std::unique_ptr<MappedFile> file, bool verify_crc = true);
  int64_t size() const { return n_; }
  int64_t vocab_size() const { return vocab_; }
  uint32_t crc() const { return crc_; }
  int32_t operator[](int64_t i) const;

 private:
  std::unique_ptr<MappedFile> file_;
  int64_t n_ = 0, vocab_ = 0;
  uint32_t bytes_per_token_ = 2, crc_ = 0;
};

struct PrepareOptions {
  double val_fraction = 0.01;          // tail of the token stream held out for validation
  int64_t shard_tokens = 100'000'000;  // tokens per shard at most
  bool progress = true;                // a progress line on stderr
};

struct PrepareResult {
  int64_t files = 0;    // text files read and tokenized
  int64_t skipped = 0;  // files left out because they are not UTF-8 text (binary indexes, images)
  std::string first_skipped;  // the first of those, in sorted order, to show the user which kind
  int64_t bytes = 0, train_tokens = 0, val_tokens = 0;
};

// Tokenizes every file under `inputs` (files or folders, recursively, in sorted order; files
// that are not UTF-8 text are skipped) on all cores, <|endoftext|> after each document, and
// writes the shards and manifest.json into out_dir.
PrepareResult prepare_dataset(const std::vector<std::string>& inputs, const Tokenizer& tok, const std::string& tokenizer_dir,
                              const std::string& out_dir, const PrepareOptions& opts);

class Dataset {
 public:
  // Opens dir/manifest.json and every shard, checking counts and checksums against it.
  explicit Dataset(const std::string& dir);
  int64_t train_tokens() const { return train_.total; }
  int64_t val_tokens() const { return val_.total; }
  int64_t vocab_size() const { return vocab_; }
  const std::string& tokenizer_dir() const { return tokenizer_dir_; }

  // Batch number `index` of B random windows of T+1 train tokens (inputs and next-token
  // targets); the same (seed, index) always gives the same batch.
  Batch train_batch(uint64_t seed, int64_t index, int64_t B, int64_t T) const;
  // Validation batch k: B consecutive windows from the start of the validation tokens.
  Batch val_batch(int64_t k, int64_t B, int64_t T) const;

 private:
  struct Split {
    std::vector<std::unique_ptr<TokenShard>> shards;
    std::vector<int64_t> starts;  // first global index of each shard
    int64_t total = 0;
    int32_t at(int64_t i) const;
  };
  void open_split(const std::string& dir, const std::string& name, Split& s);
  Batch window_batch(const Split& s, const std::vector<int64_t>& offsets, int64_t T) const;

  Split train_, val_;
  int64_t vocab_ = 0;
  std::string tokenizer_dir_;
};

}  // namespace wafer
