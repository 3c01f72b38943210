// fuzz/fuzz_tokenizer_load.cpp: bytes as a tokenizer's files. The first byte picks the layout:
// even, vocab.json and merges.txt (split at the first NUL byte); odd, one tokenizer.json. An
// accepted tokenizer must encode a fixed text and decode it back to the same bytes.
#include <cstring>

#include "fuzz.h"
#include "tokenizer/bpe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wafer;
  if (size == 0) return 0;
  const std::string_view in = fuzz::bytes(data + 1, size - 1);
  fuzz::expect_wafer_errors([&] {
    std::unique_ptr<Tokenizer> tok;
    if (data[0] % 2 == 0) {
      size_t nul = in.find('\0');
      tok = Tokenizer::from_vocab_merges(in.substr(0, nul), nul == in.npos ? "" : in.substr(nul + 1), "tok");
    } else {
      tok = Tokenizer::from_tokenizer_json(in, "tok/tokenizer.json");
    }
    const std::string text = "Hello, world! <|endoftext|> 12 caf\xc3\xa9 \xff\xfe  x";
    for (bool special : {false, true}) {
      std::vector<int32_t> ids = tok->encode(text, special);
      const std::string back = tok->decode(ids);
      // Special tokens may spell anything; without them the bytes must come back exactly.
      if (!special) fuzz::require(back == text, "decode(encode(text)) == text");
    }
  });
  return 0;
}
