// tokenizer/bpe.cpp: vocabulary loading and the BPE merge loop.
//
// GPT-2 maps each byte to a printable Unicode character (bytes_to_unicode) and stores tokens
// as strings of those characters; we keep each token's raw bytes instead and index merges by
// token id pairs. Merging always takes the lowest-ranked adjacent pair, leftmost first, which is
// what OpenAI's encoder.py, HF tokenizers and tiktoken all compute for GPT-2's merge list.
#include "tokenizer/bpe.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <queue>

#include "core/error.h"
#include "core/file.h"
#include "core/json_file.h"

namespace wafer {

namespace {

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100.. in byte order. Returns the code point for each byte.
std::vector<uint32_t> bytes_to_unicode() {
  std::vector<uint32_t> cp(256, 0);
  std::vector<bool> direct(256, false);
  for (int b = '!'; b <= '~'; ++b) direct[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) cp[b] = direct[b] ? uint32_t(b) : next++;
  return cp;
}

void append_utf8(std::string& s, uint32_t c) {
  if (c < 0x80) {
    s += char(c);
  } else if (c < 0x800) {
    s += char(0xC0 | (c >> 6));
    s += char(0x80 | (c & 0x3F));
  } else {
    s += char(0xE0 | (c >> 12));
    s += char(0x80 | ((c >> 6) & 0x3F));
    s += char(0x80 | (c & 0x3F));
  }
}

// Decodes a vocab.json key (UTF-8 of byte-mapped characters) to raw bytes; false when a
// character is not one of the 256 byte characters.
bool unmap_token(const std::string& key, const std::unordered_map<uint32_t, uint8_t>& byte_of, std::string* out) {
  out->clear();
  for (size_t i = 0; i < key.size();) {
    unsigned char c = key[i];
    uint32_t cp;
    int len;
    if (c < 0x80) { cp = c; len = 1; }
    else if ((c >> 5) == 6) { cp = c & 0x1F; len = 2; }
    else if ((c >> 4) == 14) { cp = c & 0x0F; len = 3; }
    else return false;
    if (i + len > key.size()) return false;
    for (int k = 1; k < len; ++k) cp = cp << 6 | (key[i + k] & 0x3F);
    auto it = byte_of.find(cp);
    if (it == byte_of.end()) return false;
    *out += char(it->second);
    i += len;
  }
  return true;
}

}  // namespace

bool Tokenizer::present(const std::string& dir) {
  return (file_exists(dir + "/vocab.json") && file_exists(dir + "/merges.txt")) ||
         file_exists(dir + "/tokenizer.json");
}

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& path) {
  if (file_exists(path + "/vocab.json") && file_exists(path + "/merges.txt"))
    return from_vocab_merges(read_file(path + "/vocab.json"), read_file(path + "/merges.txt"), path);
  bool is_json_file = path.size() >= 5 && path.substr(path.size() - 5) == ".json" && file_exists(path);
  std::string tj = is_json_file ? path : path + "/tokenizer.json";
  if (file_exists(tj)) return from_tokenizer_json(read_file(tj), tj);
  fail(str_cat("[tokenizer] expected vocab.json + merges.txt or tokenizer.json in ", path,
               ", found neither (pass --tokenizer DIR; scripts/setup.sh puts GPT-2's in third_party/gpt2-tokenizer)"));
}

std::unique_ptr<Tokenizer> Tokenizer::from_vocab_merges(std::string_view vocab_json, std::string_view text,
                                                        const std::string& dir) {
  const std::string vocab_source = dir + "/vocab.json";
  nlohmann::json vocab = parse_json(vocab_json, "tokenizer", vocab_source);
  MergeList merges;
  size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line(text.substr(pos, nl - pos));
    pos = nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    size_t sp = line.find(' ');
    WAFER_CHECK(sp != std::string::npos && sp > 0 && sp + 1 < line.size() && line.find(' ', sp + 1) == std::string::npos,
                "[tokenizer] ", dir, "/merges.txt line ", line_no, ": expected two tokens separated by one space, found '",
                line, "'");
    merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
  }
  return build(vocab, merges, nlohmann::json::array(), vocab_source);
}

std::unique_ptr<Tokenizer> Tokenizer::from_tokenizer_json(std::string_view text, const std::string& tj) {
  nlohmann::json j = parse_json(text, "tokenizer", tj);
  WAFER_CHECK(j.is_object() && j.contains("model") && j["model"].is_object() &&
                  (!j["model"].contains("type") || j["model"]["type"] == "BPE") && j["model"].contains("vocab") &&
                  j["model"].contains("merges") && j["model"]["merges"].is_array(),
              "[tokenizer] ", tj, ": expected a BPE model with 'vocab' and 'merges'");
  MergeList merges;
  for (const auto& m : j["model"]["merges"]) {
    if (m.is_string()) {
      std::string s = m.get<std::string>();
      size_t sp = s.find(' ');
      WAFER_CHECK(sp != std::string::npos, "[tokenizer] ", tj, ": merge '", s, "' has no space");
      merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else {
      WAFER_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(), "[tokenizer] ", tj,
                  ": expected merges as \"a b\" strings or [a, b] pairs");
      merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    }
  }
  nlohmann::json added = nlohmann::json::array();
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) added = j["added_tokens"];
  return build(j["model"]["vocab"], merges, added, tj);
}

std::unique_ptr<Tokenizer> Tokenizer::build(const nlohmann::json& vocab, const MergeList& merges,
                                            const nlohmann::json& added, const std::string& vocab_source) {
  auto tok = std::unique_ptr<Tokenizer>(new Tokenizer());
  std::vector<uint32_t> cp = bytes_to_unicode();
  std::unordered_map<uint32_t, uint8_t> byte_of;
  for (int b = 0; b < 256; ++b) byte_of[cp[b]] = uint8_t(b);

  WAFER_CHECK(vocab.is_object() && !vocab.empty(), "[tokenizer] ", vocab_source,
              ": expected an object mapping tokens to ids");
  int32_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    WAFER_CHECK(it.value().is_number_integer() && it.value().get<int64_t>() >= 0 && it.value().get<int64_t>() < (1 << 24),
                "[tokenizer] ", vocab_source, ": token '", it.key(), "' has no valid id");
    max_id = std::max(max_id, it.value().get<int32_t>());
  }
  // Dense ids 0..V-1 (checked in full below) need the largest to be V - 1; checking that first
  // keeps a lone huge id from sizing the tables.
  WAFER_CHECK(size_t(max_id) + 1 == vocab.size(), "[tokenizer] ", vocab_source, ": expected ids 0..",
              vocab.size() - 1, " for ", vocab.size(), " tokens, found id ", max_id);
  tok->token_bytes_.assign(size_t(max_id) + 1, std::string());
  std::vector<bool> seen(size_t(max_id) + 1, false);
  std::string raw;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    int32_t id = it.value().get<int32_t>();
    if (!unmap_token(it.key(), byte_of, &raw)) raw = it.key();  // not byte-mapped: an added token's text
    tok->token_bytes_[size_t(id)] = raw;
    seen[size_t(id)] = true;
    tok->token_ids_[it.key()] = id;
  }
  for (const auto& a : added) {
    if (!a.is_object() || !a.contains("id") || !a.contains("content")) continue;
    // Added tokens reuse a vocabulary id or extend the ids past it, one each at most.
    const size_t limit = vocab.size() + added.size();
    WAFER_CHECK(a["id"].is_number_unsigned() && a["id"].get<uint64_t>() < limit && a["content"].is_string() &&
                    !a["content"].get<std::string>().empty() && (!a.contains("special") || a["special"].is_boolean()),
                "[tokenizer] ", vocab_source, ": expected each added token as {\"id\": 0..", limit - 1,
                ", \"content\": TEXT, \"special\": true|false}, found ", a.dump().substr(0, 120));
    int32_t id = a["id"].get<int32_t>();
    std::string content = a["content"].get<std::string>();
    WAFER_CHECK(size_t(id) >= vocab.size() || tok->token_bytes_[size_t(id)] == content, "[tokenizer] ", vocab_source,
                ": added token '", content, "' takes id ", id, ", which the vocabulary gives to '",
                tok->token_bytes_[size_t(id)], "'");
    if (id >= int32_t(tok->token_bytes_.size())) {
      tok->token_bytes_.resize(size_t(id) + 1);
      seen.resize(size_t(id) + 1, false);
    }
    tok->token_bytes_[size_t(id)] = content;
    seen[size_t(id)] = true;
    if (a.value("special", true)) tok->specials_.emplace_back(content, id);
  }
  auto eot = tok->token_ids_.find("<|endoftext|>");
  if (eot != tok->token_ids_.end()) {
    tok->eot_id_ = eot->second;
    if (std::none_of(tok->specials_.begin(), tok->specials_.end(), [&](auto& s) { return s.second == eot->second; }))
      tok->specials_.emplace_back("<|endoftext|>", eot->second);
  }
  // Longest special first, so one that is a prefix of another never wins.
  std::sort(tok->specials_.begin(), tok->specials_.end(),
            [](auto& a, auto& b) { return a.first.size() > b.first.size(); });
  for (size_t i = 0; i < seen.size(); ++i)
    WAFER_CHECK(seen[i], "[tokenizer] ", vocab_source, ": ids must be dense, id ", i, " is missing");

  for (int b = 0; b < 256; ++b) {
    std::string key;
    append_utf8(key, cp[b]);
    auto it = tok->token_ids_.find(key);
    WAFER_CHECK(it != tok->token_ids_.end(), "[tokenizer] ", vocab_source, ": expected a token for every byte, byte ",
                b, " has none");
    tok->byte_token_[b] = it->second;
  }
  tok->add_merges(merges, vocab_source);
  return tok;
}

void Tokenizer::add_merges(const std::vector<std::pair<std::string, std::string>>& merges, const std::string& source) {
  merges_.reserve(merges.size() * 2);
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto ia = token_ids_.find(a), ib = token_ids_.find(b), im = token_ids_.find(a + b);
    WAFER_CHECK(ia != token_ids_.end() && ib != token_ids_.end() && im != token_ids_.end(), "[tokenizer] ", source,
                ": merge ", rank, " '", a, " ", b, "' names a token missing from the vocabulary");
    uint64_t key = uint64_t(uint32_t(ia->second)) << 32 | uint32_t(ib->second);
    merges_.emplace(key, Merge{int32_t(rank), im->second});  // first (lowest rank) wins
  }
}

// Merges `ids` in place. Short pieces scan for the best pair each round (fast for words);
// long ones use a heap over a linked list so a megabyte of one letter stays O(n log n).
void Tokenizer::bpe(std::vector<int32_t>& ids) const {
  auto lookup = [&](int32_t a, int32_t b) -> const Merge* {
    auto it = merges_.find(uint64_t(uint32_t(a)) << 32 | uint32_t(b));
    return it == merges_.end() ? nullptr : &it->second;
  };
  const size_t n = ids.size();
  if (n < 2) return;
  if (n <= 64) {
    while (ids.size() >= 2) {
      int32_t best_rank = INT32_MAX, best_merged = -1;
      size_t best_i = 0;
      for (size_t i = 0; i + 1 < ids.size(); ++i) {
        const Merge* m = lookup(ids[i], ids[i + 1]);
        if (m && m->rank < best_rank) {
          best_rank = m->rank;
          best_merged = m->merged;
          best_i = i;
        }
      }
      if (best_merged < 0) break;
      ids[best_i] = best_merged;
      ids.erase(ids.begin() + long(best_i) + 1);
    }
    return;
  }
  // Heap entries: (rank, left position); an entry is stale when either side changed since.
  std::vector<int32_t> tok(ids), prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = int32_t(i) - 1;
    next[i] = i + 1 < n ? int32_t(i + 1) : -1;
  }
  struct Entry {
    int32_t rank, pos, left, right;
    bool operator>(const Entry& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  auto push = [&](int32_t i) {
    if (i < 0 || next[i] < 0) return;
    if (const Merge* m = lookup(tok[i], tok[next[i]])) heap.push({m->rank, i, tok[i], tok[next[i]]});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(int32_t(i));
  while (!heap.empty()) {
    Entry e = heap.top();
    heap.pop();
    int32_t i = e.pos, j = next[i] < 0 ? -1 : next[i];
    if (!alive[i] || j < 0 || tok[i] != e.left || tok[j] != e.right) continue;
    tok[i] = lookup(e.left, e.right)->merged;
    alive[j] = false;
    next[i] = next[j];
    if (next[j] >= 0) prev[next[j]] = i;
    push(prev[i]);
    push(i);
  }
  ids.clear();
  for (int32_t i = 0; i >= 0; i = next[i]) ids.push_back(tok[i]);
}

void Tokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out, BpeCache* cache) const {
  if (piece.size() == 1) {
    out.push_back(byte_token_[uint8_t(piece[0])]);
    return;
  }
  if (cache) {
    auto it = cache->pieces.find(std::string(piece));
    if (it != cache->pieces.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids(piece.size());
  for (size_t i = 0; i < piece.size(); ++i) ids[i] = byte_token_[uint8_t(piece[i])];
  bpe(ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cache && piece.size() < 256) {
    if (cache->pieces.size() >= cache->max_entries) cache->pieces.clear();
    cache->pieces.emplace(std::string(piece), std::move(ids));
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool allow_special, BpeCache* cache) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 1);
  auto encode_plain = [&](std::string_view part) {
    pretokenizer_.split(part, [&](std::string_view piece) { encode_piece(piece, out, cache); });
  };
  if (!allow_special || specials_.empty()) {
    encode_plain(text);
    return out;
  }
  size_t pos = 0;
  while (pos < text.size()) {
    size_t best = std::string_view::npos;
    const std::pair<std::string, int32_t>* which = nullptr;
    for (const auto& s : specials_) {
      size_t at = text.find(s.first, pos);
      if (at < best) {
        best = at;
        which = &s;
      }
    }
    if (!which) {
      encode_plain(text.substr(pos));
      break;
    }
    encode_plain(text.substr(pos, best - pos));
    out.push_back(which->second);
    pos = best + which->first.size();
  }
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  for (int32_t id : ids) {
    WAFER_CHECK(id >= 0 && id < vocab_size(), "[decode] token id ", id, " is out of the vocabulary [0, ",
                vocab_size(), ")");
    out += token_bytes_[size_t(id)];
  }
  return out;
}

}  // namespace wafer
