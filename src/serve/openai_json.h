// serve/openai_json.h: the OpenAI wire shapes, apart from HTTP and from the scheduler: request
// parsing with its checks (each failure an ApiError naming the parameter), the chat template,
// the error body, and the pieces of completion responses. Strings in JSON are UTF-8; bytes that
// are not (a token may hold half a character) are replaced by U+FFFD only when dumped.
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/bpe.h"

namespace wafer::serve {

using json = nlohmann::ordered_json;

// An error answered as {"error": {"message", "type", "param", "code"}} with `status`.
struct ApiError : std::runtime_error {
  int status;
  std::string type, param;
  ApiError(int st, std::string msg, std::string p = "", std::string t = "invalid_request_error")
      : std::runtime_error(std::move(msg)), status(st), type(std::move(t)), param(std::move(p)) {}
};
json error_body(const std::string& message, const std::string& type, const std::string& param);
std::string dump(const json& j);  // compact, invalid UTF-8 replaced

struct CompletionRequest {
  bool chat = false;
  std::vector<std::vector<int32_t>> prompts;  // one or more prompts, as ids
  std::vector<std::string> prompt_texts;      // their text (echo)
  int64_t max_tokens = 16;
  float temperature = 1.0f, top_p = 1.0f;
  int64_t top_k = 0;
  std::vector<std::string> stop;  // matched across token boundaries; not part of the text
  std::optional<uint64_t> seed;
  int64_t n = 1;
  bool stream = false, include_usage = false, echo = false;
  int64_t logprobs = -1;  // top-k per token; -1 = none (chat: logprobs true -> top_logprobs, default 0)
};

// POST /v1/completions and /v1/chat/completions bodies. `ctx` is the server's context per
// sequence: prompt + max_tokens must fit. Throws ApiError (400).
CompletionRequest parse_completion(const json& body, const Tokenizer& tok, int64_t ctx, int64_t vocab);
CompletionRequest parse_chat(const json& body, const Tokenizer& tok, int64_t ctx, int64_t vocab);

// The chat template (these base models have none of their own):
//   "<system content>\n\n" for each system message, then for each turn
//   "User: <content>\n\n" or "Assistant: <content>\n\n", and finally "Assistant:".
// Generation stops at "\nUser:" (added to the request's own stop strings).
std::string chat_prompt(const json& messages);

// The generated text of one choice: token bytes in, stop strings matched across token
// boundaries, and the part safe to send now (whole UTF-8 characters, never a possible start of
// a stop string).
class ChoiceText {
 public:
  explicit ChoiceText(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  // Appends a token's bytes; true when a stop string now matches (the text ends before it).
  bool append(const std::string& bytes);
  // The text not yet taken that is safe to send (all of it when `final`).
  std::string take(bool final);
  const std::string& text() const { return text_; }
  size_t size() const { return text_.size(); }

 private:
  std::vector<std::string> stops_;
  std::string text_;
  size_t taken_ = 0, scanned_ = 0;
  bool stopped_ = false;
};

// The legacy completions `logprobs` object, built token by token.
struct LogprobsJson {
  json tokens = json::array(), token_logprobs = json::array(), top_logprobs = json::array(),
       text_offset = json::array();
  // A token with its log-probability and top list; `first` = the first prompt token (null values).
  void add(const Tokenizer& tok, int32_t id, size_t offset, const float* logprob,
           const std::vector<std::pair<int32_t, float>>* top);
  bool empty() const { return tokens.empty(); }
  json to_json() const;
  void clear() { *this = LogprobsJson{}; }
};

// The chat completions `logprobs` object: {"content": [{token, logprob, bytes, top_logprobs:
// [{token, logprob, bytes}, ...]}, ...]}, one entry per generated token.
struct ChatLogprobsJson {
  json content = json::array();
  void add(const Tokenizer& tok, int32_t id, float logprob, const std::vector<std::pair<int32_t, float>>& top);
  bool empty() const { return content.empty(); }
  json to_json() const { return {{"content", content}}; }
  void clear() { content = json::array(); }
};

std::string token_text(const Tokenizer& tok, int32_t id);  // its bytes ("" outside the vocabulary)

}  // namespace wafer::serve
