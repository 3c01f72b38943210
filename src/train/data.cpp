// train/data.cpp: shard files, the parallel `prepare` tokenizer and the deterministic sampler.
#include "train/data.h"

#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_file.h"
#include "tokenizer/bpe.h"

namespace wafer {

namespace fs = std::filesystem;

namespace {
constexpr char kMagic[8] = {'W', 'F', 'R', 'T', 'O', 'K', 'S', '\0'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeader = 32;

uint32_t crc_of(const void* p, size_t n) { return uint32_t(crc32_z(0L, static_cast<const Bytef*>(p), n)); }

// splitmix64: a well-mixed 64-bit hash, so nearby (seed, index) pairs give unrelated streams.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

bool is_text(const std::string& s) {
  if (s.find('\0') != std::string::npos) return false;
  for (size_t i = 0; i < s.size();) {  // valid UTF-8
    unsigned char c = s[i];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!len || i + len > s.size()) return false;
    for (int k = 1; k < len; ++k)
      if ((s[i + k] & 0xC0) != 0x80) return false;
    i += size_t(len);
  }
  return true;
}
}  // namespace

uint32_t write_shard(const std::string& path, const std::vector<int32_t>& tokens, int64_t vocab_size) {
  const uint32_t bpt = vocab_size <= 65536 ? 2 : 4;
  std::vector<uint8_t> ids(tokens.size() * bpt);
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (bpt == 2) {
      uint16_t v = uint16_t(tokens[i]);
      std::memcpy(&ids[2 * i], &v, 2);
    } else {
      uint32_t v = uint32_t(tokens[i]);
      std::memcpy(&ids[4 * i], &v, 4);
    }
  }
  uint8_t header[kHeader] = {};
  uint64_t n = tokens.size();
  uint32_t vocab = uint32_t(vocab_size), crc = crc_of(ids.data(), ids.size());
  std::memcpy(header, kMagic, 8);
  std::memcpy(header + 8, &kVersion, 4);
  std::memcpy(header + 12, &bpt, 4);
  std::memcpy(header + 16, &n, 8);
  std::memcpy(header + 24, &vocab, 4);
  std::memcpy(header + 28, &crc, 4);
  write_file_atomic(path, [&](const auto& append) {
    append(header, kHeader);
    append(ids.data(), ids.size());
  });
  return crc;
}

TokenShard::TokenShard(const std::string& path, bool verify_crc)
    : TokenShard(std::make_unique<MappedFile>(path), verify_crc) {}

TokenShard::TokenShard(std::unique_ptr<MappedFile> file, bool verify_crc) : file_(std::move(file)) {
  const std::string& path = file_->path();
  const uint8_t* d = file_->data();
  WAFER_CHECK(file_->size() >= kHeader && std::memcmp(d, kMagic, 8) == 0, "[data] ", path,
              ": not a wafer token shard (bad magic or shorter than the 32-byte header); re-run wafer prepare");
  uint32_t version;
  uint64_t n;
  uint32_t vocab;
  std::memcpy(&version, d + 8, 4);
  std::memcpy(&bytes_per_token_, d + 12, 4);
  std::memcpy(&n, d + 16, 8);
  std::memcpy(&vocab, d + 24, 4);
  std::memcpy(&crc_, d + 28, 4);
  WAFER_CHECK(version == kVersion, "[data] ", path, ": shard version ", version, ", this wafer reads version ", kVersion,
              "; re-run wafer prepare");
  WAFER_CHECK(bytes_per_token_ == 2 || bytes_per_token_ == 4, "[data] ", path, ": expected 2 or 4 bytes per token, found ",
              bytes_per_token_);
  WAFER_CHECK(n <= (file_->size() - kHeader) / bytes_per_token_ &&
                  file_->size() == kHeader + n * bytes_per_token_,
              "[data] ", path, ": header says ", n, " tokens (", kHeader + n * bytes_per_token_, " bytes), the file has ",
              file_->size(), " bytes (truncated?)");
  n_ = int64_t(n);
  vocab_ = vocab;
  if (verify_crc)
    WAFER_CHECK(crc_of(d + kHeader, n * bytes_per_token_) == crc_, "[data] ", path,
                ": checksum mismatch, the token data is corrupt; re-run wafer prepare");
}

int32_t TokenShard::operator[](int64_t i) const {
  const uint8_t* p = file_->data() + kHeader + size_t(i) * bytes_per_token_;
  if (bytes_per_token_ == 2) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return int32_t(v);
  }
  uint32_t v;
  std::memcpy(&v, p, 4);
  return int32_t(v);
}

PrepareResult prepare_dataset(const std::vector<std::string>& inputs, const Tokenizer& tok,
                              const std::string& tokenizer_dir, const std::string& out_dir, const PrepareOptions& opts) {
  WAFER_CHECK(opts.val_fraction >= 0 && opts.val_fraction < 1, "[prepare] expected --val-fraction in [0, 1), found ",
              opts.val_fraction);
  WAFER_CHECK(tok.eot_id() >= 0, "[prepare] the tokenizer has no <|endoftext|> token to separate documents");
  std::vector<std::string> files;
  for (const auto& in : inputs) {
    WAFER_CHECK(fs::exists(in), "[prepare] input ", in, " does not exist");
    if (fs::is_regular_file(in)) {
      files.push_back(in);
      continue;
    }
    std::vector<std::string> found;
    for (const auto& e : fs::recursive_directory_iterator(in, fs::directory_options::skip_permission_denied))
      if (e.is_regular_file() && !e.is_symlink()) found.push_back(e.path().string());  // links: the same text twice
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  WAFER_CHECK(!files.empty(), "[prepare] no files found under the inputs");

  std::vector<std::vector<int32_t>> per_file(files.size());
  std::vector<char> skipped(files.size(), 0);
  std::atomic<int64_t> done{0}, bytes{0}, tokens{0};
#pragma omp parallel
  {
    BpeCache cache;
#pragma omp for schedule(dynamic)
    for (size_t i = 0; i < files.size(); ++i) {
      std::string text = read_file(files[i]);
      if (!is_text(text)) {
        skipped[i] = 1;
      } else {
        per_file[i] = tok.encode(text, false, &cache);
        per_file[i].push_back(tok.eot_id());
        bytes += int64_t(text.size());
        tokens += int64_t(per_file[i].size());
      }
      int64_t d = ++done;
      if (opts.progress) {
#pragma omp critical
        std::fprintf(stderr, "\r[prepare] %lld/%zu files, %.1f MB, %lld tokens", (long long)d, files.size(),
                     double(bytes.load()) / 1e6, (long long)tokens.load());
      }
    }
  }
  if (opts.progress) std::fprintf(stderr, "\n");

  std::vector<int32_t> all;
  all.reserve(size_t(tokens.load()));
  PrepareResult r;
  for (size_t i = 0; i < files.size(); ++i) {
    if (skipped[i]) {
      if (r.skipped++ == 0) r.first_skipped = files[i];
      continue;
    }
    ++r.files;
    all.insert(all.end(), per_file[i].begin(), per_file[i].end());
  }
  r.bytes = bytes.load();
  WAFER_CHECK(!all.empty(), "[prepare] no UTF-8 text found under the inputs (", r.skipped, " files skipped)");
  const int64_t n_val = int64_t(double(all.size()) * opts.val_fraction);
  r.val_tokens = n_val;
  r.train_tokens = int64_t(all.size()) - n_val;

  fs::create_directories(out_dir);
  nlohmann::ordered_json manifest;
  manifest["version"] = kVersion;
  manifest["vocab_size"] = tok.vocab_size();
  manifest["tokenizer"] = fs::absolute(tokenizer_dir).string();
  manifest["files"] = r.files;
  manifest["skipped_files"] = r.skipped;
  manifest["bytes"] = r.bytes;
  auto write_split = [&](const std::string& name, int64_t begin, int64_t end) {
    nlohmann::ordered_json shards = nlohmann::ordered_json::array();
    int64_t k = 0;
    for (int64_t s = begin; s < end; s += opts.shard_tokens, ++k) {
      std::vector<int32_t> part(all.begin() + s, all.begin() + std::min(end, s + opts.shard_tokens));
      char fname[64];
      std::snprintf(fname, sizeof fname, "%s_%03lld.bin", name.c_str(), (long long)k);
      uint32_t crc = write_shard(out_dir + "/" + fname, part, tok.vocab_size());
      shards.push_back({{"file", fname}, {"tokens", part.size()}, {"crc32", crc}});
    }
    manifest[name] = {{"tokens", end - begin}, {"shards", shards}};
  };
  write_split("train", 0, r.train_tokens);
  write_split("val", r.train_tokens, int64_t(all.size()));
  write_file_atomic(out_dir + "/manifest.json", manifest.dump(2) + "\n");
  return r;
}

int32_t Dataset::Split::at(int64_t i) const {
  size_t s = size_t(std::upper_bound(starts.begin(), starts.end(), i) - starts.begin()) - 1;
  return (*shards[s])[i - starts[s]];
}

void Dataset::open_split(const std::string& dir, const std::string& name, Split& s) {
  const std::string mpath = dir + "/manifest.json";
  nlohmann::json m = read_json_file(mpath, "data");
  WAFER_CHECK(m.is_object() && m.contains(name) && m[name].is_object() && m[name].contains("shards") &&
                  m[name]["shards"].is_array(),
              "[data] ", mpath, ": missing the '", name, "' split; re-run wafer prepare");
  for (const auto& sh : m[name]["shards"]) {
    WAFER_CHECK(sh.is_object() && sh.contains("file") && sh["file"].is_string() && sh.contains("tokens") &&
                    sh["tokens"].is_number_unsigned() && sh.contains("crc32") && sh["crc32"].is_number_unsigned(),
                "[data] ", mpath, ": expected each '", name, "' shard as {\"file\": NAME, \"tokens\": N, \"crc32\": C}, ",
                "found ", sh.dump().substr(0, 120), "; re-run wafer prepare");
    const std::string file = sh["file"].get<std::string>();
    WAFER_CHECK(!file.empty() && file.find('/') == std::string::npos, "[data] ", mpath, ": expected a shard file name ",
                "inside the dataset folder, found '", file, "'");
    const std::string path = dir + "/" + file;
    auto shard = std::make_unique<TokenShard>(path);
    WAFER_CHECK(uint64_t(shard->size()) == sh["tokens"].get<uint64_t>() && shard->crc() == sh["crc32"].get<uint64_t>(),
                "[data] ", path, ": does not match manifest.json (", shard->size(), " tokens, crc ", shard->crc(),
                "); re-run wafer prepare");
    WAFER_CHECK(shard->vocab_size() == vocab_, "[data] ", path, ": vocabulary ", shard->vocab_size(), ", manifest says ",
                vocab_);
    s.starts.push_back(s.total);
    s.total += shard->size();
    s.shards.push_back(std::move(shard));
  }
}

Dataset::Dataset(const std::string& dir) {
  const std::string mpath = dir + "/manifest.json";
  WAFER_CHECK(file_exists(mpath), "[data] ", dir, ": no manifest.json; create the dataset with wafer prepare");
  nlohmann::json m = read_json_file(mpath, "data");
  WAFER_CHECK(m.is_object(), "[data] ", mpath, ": expected a JSON object, found ", m.type_name(), "; re-run wafer prepare");
  WAFER_CHECK(m.contains("version") && m["version"] == kVersion, "[data] ", mpath, ": expected version ", kVersion,
              ", found ", m.contains("version") ? m["version"].dump() : "none", "; re-run wafer prepare");
  WAFER_CHECK(m.contains("vocab_size") && m["vocab_size"].is_number_unsigned() &&
                  m["vocab_size"].get<uint64_t>() <= UINT32_MAX,
              "[data] ", mpath, ": expected vocab_size to be a count, found ",
              m.contains("vocab_size") ? m["vocab_size"].dump() : "none");
  vocab_ = m["vocab_size"].get<int64_t>();
  WAFER_CHECK(!m.contains("tokenizer") || m["tokenizer"].is_string(), "[data] ", mpath,
              ": expected tokenizer to be a folder name, found ", m.contains("tokenizer") ? m["tokenizer"].dump() : "");
  tokenizer_dir_ = m.value("tokenizer", std::string());
  open_split(dir, "train", train_);
  open_split(dir, "val", val_);
}

Batch Dataset::window_batch(const Split& s, const std::vector<int64_t>& offsets, int64_t T) const {
  Batch b;
  b.B = int64_t(offsets.size());
  b.T = T;
  for (int64_t off : offsets)
    for (int64_t t = 0; t < T; ++t) {
      b.tokens.push_back(s.at(off + t));
      b.targets.push_back(s.at(off + t + 1));
    }
  return b;
}

Batch Dataset::train_batch(uint64_t seed, int64_t index, int64_t B, int64_t T) const {
  WAFER_CHECK(train_.total >= T + 1, "[data] the training split has ", train_.total, " tokens, a window of --seq ", T,
              " needs ", T + 1);
  std::vector<int64_t> offsets;
  const uint64_t range = uint64_t(train_.total - T);  // window starts in [0, total - T - 1]
  for (int64_t b = 0; b < B; ++b)
    offsets.push_back(int64_t(mix(mix(seed) ^ mix(uint64_t(index) * 1000003u + uint64_t(b))) % range));
  return window_batch(train_, offsets, T);
}

Batch Dataset::val_batch(int64_t k, int64_t B, int64_t T) const {
  WAFER_CHECK(val_.total >= T + 1, "[data] the validation split has ", val_.total, " tokens, a window of --seq ", T,
              " needs ", T + 1, " (raise --val-fraction in wafer prepare)");
  const int64_t windows = (val_.total - 1) / T;
  std::vector<int64_t> offsets;
  for (int64_t b = 0; b < B; ++b) offsets.push_back(((k * B + b) % windows) * T);
  return window_batch(val_, offsets, T);
}

}  // namespace wafer
