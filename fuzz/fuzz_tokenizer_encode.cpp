// fuzz/fuzz_tokenizer_encode.cpp: bytes as text to encode with GPT-2's tokenizer (any bytes,
// also invalid UTF-8), with and without special tokens. Decoding must give the bytes back.
#include "fuzz.h"
#include "tokenizer/bpe.h"

namespace {
std::unique_ptr<wafer::Tokenizer> g_tok;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_tok = wafer::Tokenizer::load(WAFER_FUZZ_TOKENIZER_DIR);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wafer;
  const std::string_view text = fuzz::bytes(data, size);
  BpeCache cache;
  for (bool special : {false, true}) {
    std::vector<int32_t> ids = g_tok->encode(text, special, &cache);
    fuzz::require(g_tok->decode(ids) == text, "decode(encode(text)) == text");
    fuzz::require(g_tok->encode(text, special) == ids, "the cache does not change the ids");
  }
  return 0;
}
