// fuzz/fuzz_openai_request.cpp: bytes as the body of a request to `wafer serve`'s
// /v1/completions (first byte even) or /v1/chat/completions (odd), parsed as the handler parses
// it: JSON, then serve/openai_json's checks against GPT-2's tokenizer, a 128-token context and
// the 50,257-word vocabulary. An ApiError (HTTP 400) is the right answer to a bad body; any other
// exception would be a 500, and escapes as a crash. An accepted request must fit the context.
#include <nlohmann/json.hpp>

#include "fuzz.h"
#include "serve/openai_json.h"

namespace {
std::unique_ptr<wafer::Tokenizer> g_request_tokenizer;
constexpr int64_t kRequestCtx = 128, kRequestVocab = 50257;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_request_tokenizer = wafer::Tokenizer::load(WAFER_FUZZ_TOKENIZER_DIR);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wafer;
  if (size == 0) return 0;
  const bool chat = data[0] & 1;
  const serve::json body = serve::json::parse(fuzz::bytes(data + 1, size - 1), nullptr, false);
  if (body.is_discarded()) return 0;  // the handler answers 400 "not valid JSON" before parsing
  try {
    const Tokenizer& tok = *g_request_tokenizer;
    const serve::CompletionRequest r = chat ? serve::parse_chat(body, tok, kRequestCtx, kRequestVocab)
                                            : serve::parse_completion(body, tok, kRequestCtx, kRequestVocab);
    fuzz::require(!r.prompts.empty() && r.n >= 1, "an accepted request has a prompt and n >= 1");
    for (const auto& p : r.prompts) {
      fuzz::require(!p.empty() && int64_t(p.size()) + r.max_tokens <= kRequestCtx + 1, "prompt + max_tokens fit the context");
      for (int32_t id : p) fuzz::require(id >= 0 && id < kRequestVocab, "prompt ids are in the vocabulary");
    }
    if (chat) fuzz::require(!serve::chat_prompt(body["messages"]).empty(), "the chat template gives a prompt");
  } catch (const serve::ApiError& e) {
    fuzz::require(e.status >= 400 && e.status < 500, "a bad request is a 4xx");
    serve::dump(serve::error_body(e.what(), e.type, e.param));
  }
  return 0;
}
