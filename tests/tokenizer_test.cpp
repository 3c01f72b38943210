// tests/tokenizer_test.cpp: GPT-2 BPE against tiktoken on real text and an adversarial set,
// byte-exact round trips (also for invalid UTF-8), special tokens, tokenizer.json loading.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <cstring>
#include <random>
#include <sstream>

#include "core/error.h"
#include "core/file.h"
#include "test_util.h"
#include "tokenizer/bpe.h"

namespace wafer {
namespace {

namespace fs = std::filesystem;

const Tokenizer& gpt2() {
  static std::unique_ptr<Tokenizer> tok = Tokenizer::load(test::gpt2_tokenizer_dir());
  return *tok;
}

void append_utf8(std::string& s, uint32_t c) {
  if (c < 0x80) {
    s += char(c);
  } else if (c < 0x800) {
    s += char(0xC0 | (c >> 6));
    s += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    s += char(0xE0 | (c >> 12));
    s += char(0x80 | ((c >> 6) & 0x3F));
    s += char(0x80 | (c & 0x3F));
  } else {
    s += char(0xF0 | (c >> 18));
    s += char(0x80 | ((c >> 12) & 0x3F));
    s += char(0x80 | ((c >> 6) & 0x3F));
    s += char(0x80 | (c & 0x3F));
  }
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = s[i];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!len || i + len > s.size()) return false;
    for (int k = 1; k < len; ++k)
      if ((s[i + k] & 0xC0) != 0x80) return false;
    i += len;
  }
  return true;
}

// Hand-picked edge cases: every whitespace kind and run shape, contractions, letters and numbers
// of every general category, emoji sequences, and the characters where regex engines disagree.
std::vector<std::string> adversarial_cases() {
  std::vector<std::string> v = {
      "", " ", "  ", "\n", "\n\n\n", " \n ", "a  b", "a   \n  b", "hello   ", "   hello", "\t\t x",
      "don't I'll we've they're she's he'd I'm", "DON'T 'S 'T ''s 'll'll", "'", "''", "' s", "x's's",
      "12345 678,90 1.5e10 ²³ ½ Ⅻ ٣٤٥ ০১২", "ǅungla ʰ ª º 々 〆", "naïve café résumé", "e\u0301 a\u0308",
      "你好世界 こんにちは 안녕하세요 Привет مرحبا שלום", "🙂🙃 👨‍👩‍👧‍👦 🇫🇷 👍🏽 ❤️", "\u00A0x \u00A0 \u3000y\u3000",
      "\u180Ex\u180E \u180E", "\uFEFFbom \uFEFF", "\u2028line\u2029para\u0085nel", "\u200Bzw\u200Cnj\u200Dj",
      "\u2000\u2001\u2002\u200A\u202F\u205F", "tab\there\vvt\fff\rcr\r\n", "<|endoftext|>", "a<|endoftext|>b",
      "<|endoftext|> <|endoftext|>\n", "!!!???...,,, ;;; $$$ ###", " !x !!", "x\n\n\ny", "\n \n \n",
      "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛", "ﬁﬂ ＡＢＣ１２３", "\U0001F600\U0001F600\U0001F600", "a\u0000b\u0001c",
  };
  v.push_back(std::string(5000, 'a'));
  v.push_back(std::string(3000, ' ') + "x");
  v.push_back(std::string(2000, '\n'));
  std::string mixed;
  for (int i = 0; i < 500; ++i) mixed += "ab ";
  v.push_back(mixed);
  return v;
}

// Random strings from a pool of code points across categories, with whitespace mixed in.
std::vector<std::string> random_cases(int count, uint64_t seed) {
  const std::vector<std::pair<uint32_t, uint32_t>> ranges = {
      {0x20, 0x7E},     {0x09, 0x0D},     {0xA0, 0x24F},    {0x370, 0x3FF},   {0x400, 0x4FF},
      {0x590, 0x6FF},   {0x900, 0x97F},   {0x2000, 0x206F}, {0x2070, 0x218F}, {0x3000, 0x30FF},
      {0x4E00, 0x4E80}, {0xAC00, 0xAC80}, {0xFF00, 0xFFEF}, {0x1F300, 0x1F64F}, {0x1D400, 0x1D7FF},
  };
  std::mt19937_64 rng(seed);
  std::vector<std::string> out;
  for (int c = 0; c < count; ++c) {
    std::string s;
    int n = 1 + int(rng() % 60);
    for (int i = 0; i < n; ++i) {
      auto [lo, hi] = ranges[rng() % ranges.size()];
      uint32_t cp = lo + uint32_t(rng() % (hi - lo + 1));
      if (rng() % 4 == 0) cp = " \n'"[rng() % 3];
      append_utf8(s, cp);
    }
    out.push_back(s);
  }
  return out;
}

// Real text found on any Debian machine with the set-up script's packages: fortunes, licences,
// the X11 compose table (dense in symbols and scripts), package copyright notes.
std::vector<std::string> real_text_files(size_t max_bytes) {
  std::vector<std::string> roots = {"/usr/share/games/fortunes", "/usr/share/common-licenses",
                                    "/usr/share/X11/locale/en_US.UTF-8/Compose", "/usr/share/doc"};
  std::vector<std::string> files;
  size_t total = 0;
  for (const auto& root : roots) {
    if (!fs::exists(root)) continue;
    std::vector<fs::path> paths;
    if (fs::is_regular_file(root)) {
      paths.push_back(root);
    } else {
      for (auto& e : fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied)) {
        if (!e.is_regular_file() || e.is_symlink()) continue;
        std::string ext = e.path().extension().string();
        if (ext == ".dat" || ext == ".gz" || ext == ".u8" || ext == ".png" || ext == ".html") continue;
        paths.push_back(e.path());
      }
    }
    std::sort(paths.begin(), paths.end());
    for (const auto& p : paths) {
      if (total >= max_bytes) break;
      std::string text = read_file(p.string());
      if (!valid_utf8(text) || text.find('\0') != std::string::npos) continue;
      files.push_back(p.string());
      total += text.size();
    }
  }
  return files;
}

// Encodes every case with wafer and with tiktoken; returns the number of mismatching cases and
// prints the first few with their first differing position.
int compare_with_tiktoken(const std::vector<std::string>& paths, size_t* bytes_out) {
  std::string dir = test::temp_dir("tiktoken");
  std::string manifest = dir + "/manifest", out = dir + "/ids.bin";
  {
    std::ofstream m(manifest);
    for (const auto& p : paths) m << p << "\n";
  }
  auto r = test::run_command("node " + test::source_dir() + "/tests/tiktoken_encode.cjs " + test::source_dir() +
                             "/third_party/npm " + manifest + " " + out);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::string bin = read_file(out);
  size_t off = 0, bytes = 0;
  int mismatches = 0;
  BpeCache cache;
  for (const auto& p : paths) {
    std::string text = read_file(p);
    bytes += text.size();
    uint32_t n;
    std::memcpy(&n, bin.data() + off, 4);
    off += 4;
    std::vector<int32_t> want(n);
    if (n) std::memcpy(want.data(), bin.data() + off, 4 * size_t(n));
    off += 4 * size_t(n);
    std::vector<int32_t> got = gpt2().encode(text, false, &cache);
    if (got != want) {
      if (++mismatches <= 5) {
        size_t i = 0;
        while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
        ADD_FAILURE() << p << ": first difference at token " << i << " of " << want.size() << " (wafer "
                      << (i < got.size() ? got[i] : -1) << ", tiktoken " << (i < want.size() ? want[i] : -1)
                      << ") near '" << gpt2().decode(std::span(want).subspan(i > 3 ? i - 3 : 0, std::min<size_t>(6, want.size() - (i > 3 ? i - 3 : 0)))) << "'";
      }
    }
    EXPECT_EQ(gpt2().decode(got), text) << p << ": decode(encode(x)) != x";
  }
  *bytes_out = bytes;
  return mismatches;
}

std::vector<std::string> write_cases(const std::vector<std::string>& cases, const std::string& name) {
  std::string dir = test::temp_dir(name);
  std::vector<std::string> paths;
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string p = dir + "/" + std::to_string(i) + ".txt";
    std::ofstream(p, std::ios::binary) << cases[i];
    paths.push_back(p);
  }
  return paths;
}

TEST(Tokenizer, KnownIds) {
  EXPECT_EQ(gpt2().vocab_size(), 50257);
  EXPECT_EQ(gpt2().eot_id(), 50256);
  EXPECT_EQ(gpt2().encode("Hello world", false), (std::vector<int32_t>{15496, 995}));
  EXPECT_EQ(gpt2().encode("The quick brown fox", false), (std::vector<int32_t>{464, 2068, 7586, 21831}));
}

TEST(Tokenizer, MatchesTiktokenOnRealText) {
  std::vector<std::string> files = real_text_files(4u << 20);
  size_t bytes = 0;
  EXPECT_EQ(compare_with_tiktoken(files, &bytes), 0);
  EXPECT_GE(bytes, 3u << 20) << "expected several MB of real text (is the fortunes package installed?)";
  std::printf("compared %zu files, %.2f MB\n", files.size(), double(bytes) / 1e6);
}

TEST(Tokenizer, MatchesTiktokenOnAdversarialText) {
  size_t bytes = 0;
  EXPECT_EQ(compare_with_tiktoken(write_cases(adversarial_cases(), "adversarial"), &bytes), 0);
  EXPECT_EQ(compare_with_tiktoken(write_cases(random_cases(3000, 7), "random"), &bytes), 0);
}

TEST(Tokenizer, SpecialTokenOnlyWhenAllowed) {
  std::vector<int32_t> plain = gpt2().encode("a<|endoftext|>b", false);
  std::vector<int32_t> special = gpt2().encode("a<|endoftext|>b", true);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 50256), 0);
  EXPECT_EQ(special, (std::vector<int32_t>{64, 50256, 65}));
  EXPECT_EQ(gpt2().decode(special), "a<|endoftext|>b");
}

TEST(Tokenizer, InvalidUtf8RoundTripsByteExactly) {
  std::mt19937_64 rng(3);
  std::vector<std::string> cases = {"\xff", "\xc3", "a\xc3(b", "\xe2\x82", "\xed\xa0\x80 surrogate",
                                    "\xf4\x90\x80\x80 too big", "ok \x80\x80\x80 ok", "\xc0\xaf overlong"};
  for (int i = 0; i < 500; ++i) {
    std::string s;
    int n = int(rng() % 40);
    for (int k = 0; k < n; ++k) s += char(rng() % 256);
    cases.push_back(s);
  }
  for (const auto& s : cases) {
    std::vector<int32_t> ids = gpt2().encode(s, false);
    EXPECT_EQ(gpt2().decode(ids), s);
  }
}

TEST(Tokenizer, LoadsTokenizerJsonLikeVocabAndMerges) {
  // Build a tokenizer.json from the same vocabulary, merges in the newer [a, b] form.
  std::string vocab = read_file(test::gpt2_tokenizer_dir() + "/vocab.json");
  std::string merges = read_file(test::gpt2_tokenizer_dir() + "/merges.txt");
  std::string j = "{\"added_tokens\":[{\"id\":50256,\"content\":\"<|endoftext|>\",\"special\":true}],"
                  "\"model\":{\"type\":\"BPE\",\"vocab\":" + vocab + ",\"merges\":[";
  std::istringstream ms(merges);
  std::string line;
  bool first = true;
  auto esc = [](const std::string& s) {
    std::string o;
    for (char c : s) {
      if (c == '"' || c == '\\') o += '\\';
      o += c;
    }
    return o;
  };
  while (std::getline(ms, line)) {
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    size_t sp = line.find(' ');
    j += std::string(first ? "" : ",") + "[\"" + esc(line.substr(0, sp)) + "\",\"" + esc(line.substr(sp + 1)) + "\"]";
    first = false;
  }
  j += "]}}";
  std::string dir = test::temp_dir("tokjson");
  std::ofstream(dir + "/tokenizer.json") << j;
  auto tok = Tokenizer::load(dir);
  std::string text = "Tokenizers agree: 你好, don't they? <|endoftext|> 🙂";
  EXPECT_EQ(tok->encode(text, true), gpt2().encode(text, true));
  EXPECT_EQ(tok->encode(text, false), gpt2().encode(text, false));
}

TEST(Tokenizer, BadFilesGiveClearErrors) {
  std::string dir = test::temp_dir("badtok");
  EXPECT_THROW(Tokenizer::load(dir), Error);
  std::ofstream(dir + "/vocab.json") << "{\"a\": 0,";
  std::ofstream(dir + "/merges.txt") << "#version: 0.2\n";
  try {
    Tokenizer::load(dir);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos) << e.what();
  }
  EXPECT_THROW(gpt2().decode(std::vector<int32_t>{50257}), Error);
}

}  // namespace
}  // namespace wafer
