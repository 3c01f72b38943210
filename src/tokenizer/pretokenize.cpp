// tokenizer/pretokenize.cpp: the GPT-2 pattern on PCRE2 (JIT, Unicode properties).
//
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// \s is spelled out as Unicode's White_Space property, the set Python's `regex`, Rust's regex
// (tiktoken) and Oniguruma (HF tokenizers) use. PCRE2's own \s under UCP also takes U+180E, and
// some JavaScript engines take U+FEFF; neither is GPT-2's. Bytes that are not valid UTF-8 match no
// alternative (PCRE2_MATCH_INVALID_UTF); each run of them becomes a piece of its own, so byte-level
// BPE still covers every input byte.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pretokenize.h"

#include <pcre2.h>

#include <string>

#include "core/error.h"

namespace wafer {

namespace {
constexpr const char* kWhiteSpace =
    "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}"
    "\\x{3000}";

std::string gpt2_pattern() {
  const std::string ws = kWhiteSpace;
  return "'(?:[sdmt]|ll|ve|re)| ?\\p{L}+| ?\\p{N}+| ?[^" + ws + "\\p{L}\\p{N}]+|[" + ws + "]+(?![^" +
         ws + "])|[" + ws + "]+";
}
}  // namespace

struct Pretokenizer::Impl {
  pcre2_code* code = nullptr;
};

Pretokenizer::Pretokenizer() : impl_(new Impl) {
  std::string pattern = gpt2_pattern();
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_offset, nullptr);
  WAFER_ASSERT(impl_->code != nullptr);
  pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is absent
}

Pretokenizer::~Pretokenizer() {
  pcre2_code_free(impl_->code);
  delete impl_;
}

void Pretokenizer::split(std::string_view text, const std::function<void(std::string_view)>& emit) const {
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos < text.size()) {
    int rc = pcre2_match(impl_->code, subject, text.size(), pos, 0, md, nullptr);
    size_t start = text.size(), end = text.size();
    if (rc >= 0) {
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      start = ov[0];
      end = ov[1];
    } else if (rc != PCRE2_ERROR_NOMATCH) {
      pcre2_match_data_free(md);
      fail(str_cat("[pretokenize] regex match failed with PCRE2 error ", rc, " at byte ", pos));
    }
    if (start > pos) emit(text.substr(pos, start - pos));  // invalid UTF-8 between matches
    if (end > start) emit(text.substr(start, end - start));
    pos = end;
  }
  pcre2_match_data_free(md);
}

}  // namespace wafer
