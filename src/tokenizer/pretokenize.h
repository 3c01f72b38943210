// tokenizer/pretokenize.h: GPT-2's pre-tokenizer, the regex that cuts text into the pieces BPE
// merges within. Byte-exact for any input: invalid UTF-8 comes out as pieces of its own.
#pragma once
#include <functional>
#include <string_view>

namespace wafer {

class Pretokenizer {
 public:
  Pretokenizer();
  ~Pretokenizer();
  Pretokenizer(const Pretokenizer&) = delete;
  Pretokenizer& operator=(const Pretokenizer&) = delete;

  // Calls emit(piece) for each piece of `text` in order; the pieces concatenate to `text`.
  void split(std::string_view text, const std::function<void(std::string_view)>& emit) const;

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace wafer
