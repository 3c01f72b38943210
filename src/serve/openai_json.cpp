// serve/openai_json.cpp: parsing with OpenAI's parameter names and messages; response pieces.
#include "serve/openai_json.h"

#include <algorithm>

namespace wafer::serve {

json error_body(const std::string& message, const std::string& type, const std::string& param) {
  return {{"error",
           {{"message", message}, {"type", type}, {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", nullptr}}}};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string token_text(const Tokenizer& tok, int32_t id) {
  return id >= 0 && id < tok.vocab_size() ? tok.token_bytes(id) : std::string();
}

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& msg) { throw ApiError(400, msg, param); }

bool present(const json& b, const char* k) { return b.contains(k) && !b[k].is_null(); }

int64_t get_int(const json& b, const char* k, int64_t def, int64_t lo, int64_t hi) {
  if (!present(b, k)) return def;
  const json& v = b[k];
  if (!v.is_number_integer()) bad(k, std::string("'") + k + "' must be an integer, found " + v.type_name());
  const int64_t x = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX) ? hi + 1 : v.get<int64_t>();
  if (x < lo || x > hi)
    bad(k, std::string("'") + k + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], found " +
               v.dump());
  return x;
}

float get_float(const json& b, const char* k, float def, float lo, float hi, bool lo_open = false) {
  if (!present(b, k)) return def;
  const json& v = b[k];
  if (!v.is_number()) bad(k, std::string("'") + k + "' must be a number, found " + v.type_name());
  const double x = v.get<double>();
  if (!(x <= hi) || (lo_open ? !(x > lo) : !(x >= lo)))
    bad(k, std::string("'") + k + "' must be in " + (lo_open ? "(" : "[") + std::to_string(lo) + ", " +
               std::to_string(hi) + "], found " + v.dump());
  return float(x);
}

bool get_bool(const json& b, const char* k, bool def) {
  if (!present(b, k)) return def;
  if (!b[k].is_boolean()) bad(k, std::string("'") + k + "' must be a boolean, found " + b[k].type_name());
  return b[k].get<bool>();
}

std::vector<int32_t> ids_of(const json& a, int64_t vocab) {
  std::vector<int32_t> ids;
  for (const json& v : a) {
    if (!v.is_number_integer()) bad("prompt", "token ids in 'prompt' must be integers, found " + std::string(v.type_name()));
    const int64_t id = v.get<int64_t>();
    if (id < 0 || id >= vocab)
      bad("prompt", "token id " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    ids.push_back(int32_t(id));
  }
  return ids;
}

// The fields both endpoints share (sampling, n, stream, stop, seed), then the length checks.
void parse_common(CompletionRequest& r, const json& b, const Tokenizer& tok, int64_t ctx, const char* max_key) {
  r.temperature = get_float(b, "temperature", 1.0f, 0.0f, 100.0f);
  r.top_p = get_float(b, "top_p", 1.0f, 0.0f, 1.0f, true);
  r.top_k = get_int(b, "top_k", 0, -1, INT32_MAX);
  if (r.top_k < 0) r.top_k = 0;
  r.n = get_int(b, "n", 1, 1, 64);
  r.stream = get_bool(b, "stream", false);
  if (present(b, "seed")) r.seed = uint64_t(get_int(b, "seed", 0, INT64_MIN, INT64_MAX));
  if (present(b, "stream_options")) {
    const json& so = b["stream_options"];
    if (!so.is_object()) bad("stream_options", "'stream_options' must be an object");
    r.include_usage = get_bool(so, "include_usage", false);
  }
  if (present(b, "stop")) {
    const json& s = b["stop"];
    if (s.is_string()) {
      r.stop.push_back(s.get<std::string>());
    } else if (s.is_array()) {
      if (s.size() > 16) bad("stop", "'stop' takes at most 16 strings");
      for (const json& e : s) {
        if (!e.is_string()) bad("stop", "'stop' must be a string or a list of strings");
        r.stop.push_back(e.get<std::string>());
      }
    } else {
      bad("stop", "'stop' must be a string or a list of strings, found " + std::string(s.type_name()));
    }
    r.stop.erase(std::remove(r.stop.begin(), r.stop.end(), std::string()), r.stop.end());
  }
  r.max_tokens = get_int(b, max_key, 16, 0, INT32_MAX);
  for (const auto& p : r.prompts) {
    const int64_t T0 = int64_t(p.size());
    if (T0 == 0) bad("prompt", "the prompt is empty (it must have at least one token)");
    if (T0 > ctx)
      bad("prompt", "this server's context is " + std::to_string(ctx) + " tokens, but the prompt has " +
                        std::to_string(T0) + " tokens; shorten it");
    if (T0 + r.max_tokens > ctx)
      bad(max_key, "this server's context is " + std::to_string(ctx) + " tokens, but you asked for " +
                       std::to_string(T0 + r.max_tokens) + " (" + std::to_string(T0) + " in the prompt + " +
                       std::to_string(r.max_tokens) + " in '" + max_key + "'); lower '" + max_key + "'");
  }
  (void)tok;
}

}  // namespace

CompletionRequest parse_completion(const json& b, const Tokenizer& tok, int64_t ctx, int64_t vocab) {
  if (!b.is_object()) bad("", "the request body must be a JSON object");
  CompletionRequest r;
  if (!present(b, "prompt")) bad("prompt", "'prompt' is required");
  const json& p = b["prompt"];
  auto add_text = [&](const std::string& s) {
    r.prompts.push_back(tok.encode(s, true));
    r.prompt_texts.push_back(s);
  };
  if (p.is_string()) {
    add_text(p.get<std::string>());
  } else if (p.is_array() && !p.empty() && p[0].is_string()) {
    for (const json& e : p) {
      if (!e.is_string()) bad("prompt", "'prompt' mixes strings and other values");
      add_text(e.get<std::string>());
    }
  } else if (p.is_array() && !p.empty() && p[0].is_array()) {
    for (const json& e : p) {
      if (!e.is_array()) bad("prompt", "'prompt' mixes lists of token ids and other values");
      r.prompts.push_back(ids_of(e, vocab));
      r.prompt_texts.push_back(tok.decode(r.prompts.back()));
    }
  } else if (p.is_array() && !p.empty()) {
    r.prompts.push_back(ids_of(p, vocab));
    r.prompt_texts.push_back(tok.decode(r.prompts.back()));
  } else {
    bad("prompt", "'prompt' must be a string, a list of strings, a list of token ids or a list of such lists");
  }
  if (r.prompts.size() > 64) bad("prompt", "at most 64 prompts per request");
  r.echo = get_bool(b, "echo", false);
  r.logprobs = get_int(b, "logprobs", -1, 0, 20);
  if (present(b, "max_tokens") || !present(b, "max_completion_tokens"))
    parse_common(r, b, tok, ctx, "max_tokens");
  else
    parse_common(r, b, tok, ctx, "max_completion_tokens");
  if (int64_t(r.prompts.size()) * r.n > 64) bad("n", "at most 64 sequences (prompts × n) per request");
  return r;
}

std::string chat_prompt(const json& messages) {
  std::string s;
  for (const json& m : messages) {
    const std::string role = m["role"].get<std::string>();
    std::string content;
    const json& c = m["content"];
    if (c.is_string()) {
      content = c.get<std::string>();
    } else {
      for (const json& part : c) content += part["text"].get<std::string>();
    }
    if (role == "system")
      s += content + "\n\n";
    else if (role == "user")
      s += "User: " + content + "\n\n";
    else
      s += "Assistant: " + content + "\n\n";
  }
  return s + "Assistant:";
}

CompletionRequest parse_chat(const json& b, const Tokenizer& tok, int64_t ctx, int64_t vocab) {
  if (!b.is_object()) bad("", "the request body must be a JSON object");
  if (!present(b, "messages") || !b["messages"].is_array() || b["messages"].empty())
    bad("messages", "'messages' must be a non-empty list of {role, content}");
  for (const json& m : b["messages"]) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      bad("messages", "each message must be an object with a string 'role'");
    const std::string role = m["role"].get<std::string>();
    if (role != "system" && role != "user" && role != "assistant")
      bad("messages", "message role must be system, user or assistant, found '" + role + "'");
    const json& c = m.contains("content") ? m["content"] : json();
    bool ok = c.is_string();
    if (c.is_array()) {
      ok = true;
      for (const json& part : c) ok = ok && part.is_object() && part.contains("text") && part["text"].is_string();
    }
    if (!ok) bad("messages", "message content must be a string or a list of {type: text, text}");
  }
  CompletionRequest r;
  r.chat = true;
  const std::string text = chat_prompt(b["messages"]);
  r.prompts.push_back(tok.encode(text, false));
  r.prompt_texts.push_back(text);
  if (present(b, "max_tokens") || !present(b, "max_completion_tokens"))
    parse_common(r, b, tok, ctx, "max_tokens");
  else
    parse_common(r, b, tok, ctx, "max_completion_tokens");
  r.stop.push_back("\nUser:");
  // Chat's log-probabilities: `logprobs` is a flag and `top_logprobs` the k (OpenAI's names).
  const bool lp = get_bool(b, "logprobs", false);
  if (present(b, "top_logprobs") && !lp) bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
  r.logprobs = lp ? get_int(b, "top_logprobs", 0, 0, 20) : -1;
  (void)vocab;
  return r;
}

bool ChoiceText::append(const std::string& bytes) {
  if (stopped_) return true;
  text_ += bytes;
  size_t longest = 0;
  for (const auto& s : stops_) longest = std::max(longest, s.size());
  const size_t from = scanned_ + 1 > longest ? scanned_ + 1 - longest : 0;
  size_t at = std::string::npos;
  for (const auto& s : stops_) at = std::min(at, text_.find(s, from));
  scanned_ = text_.size();
  if (at == std::string::npos) return false;
  text_.resize(std::max(at, taken_));
  stopped_ = true;
  return true;
}

std::string ChoiceText::take(bool final) {
  size_t end = text_.size();
  if (!final && !stopped_) {
    size_t hold = 0;  // the longest tail that could still grow into a stop string
    for (const auto& s : stops_)
      for (size_t k = std::min(s.size() - 1, end - taken_); k > hold; --k)
        if (text_.compare(end - k, k, s, 0, k) == 0) {
          hold = k;
          break;
        }
    end -= hold;
    // Never end inside a UTF-8 character: find the last lead byte and its length.
    size_t j = end;
    while (j > taken_ && end - j < 4 && (uint8_t(text_[j - 1]) & 0xC0) == 0x80) --j;
    if (j > taken_) {
      const uint8_t lead = uint8_t(text_[j - 1]);
      const size_t len = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
      if (len > 1 && j - 1 + len > end) end = j - 1;
    }
  }
  if (end <= taken_) return {};
  std::string out = text_.substr(taken_, end - taken_);
  taken_ = end;
  return out;
}

void LogprobsJson::add(const Tokenizer& tok, int32_t id, size_t offset, const float* logprob,
                       const std::vector<std::pair<int32_t, float>>* top) {
  tokens.push_back(token_text(tok, id));
  token_logprobs.push_back(logprob ? json(*logprob) : json(nullptr));
  if (top) {
    json t = json::object();
    for (const auto& [tid, lp] : *top) {
      const std::string key = token_text(tok, tid);
      if (!t.contains(key)) t[key] = lp;
    }
    top_logprobs.push_back(std::move(t));
  } else {
    top_logprobs.push_back(nullptr);
  }
  text_offset.push_back(offset);
}

void ChatLogprobsJson::add(const Tokenizer& tok, int32_t id, float logprob,
                           const std::vector<std::pair<int32_t, float>>& top) {
  auto entry = [&](int32_t t, float l) {
    const std::string text = token_text(tok, t);
    json bytes = json::array();
    for (unsigned char ch : text) bytes.push_back(int(ch));
    // A token may end inside a UTF-8 character: its `token` is then not valid UTF-8 on its own,
    // which is what `bytes` is for; the JSON writer replaces the broken bytes in `token`.
    return json{{"token", text}, {"logprob", l}, {"bytes", bytes}};
  };
  json e = entry(id, logprob);
  json tops = json::array();
  for (const auto& [t, l] : top) tops.push_back(entry(t, l));
  e["top_logprobs"] = std::move(tops);
  content.push_back(std::move(e));
}

json LogprobsJson::to_json() const {
  return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top_logprobs},
          {"text_offset", text_offset}};
}

}  // namespace wafer::serve
