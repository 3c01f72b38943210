// core/json_file.h: reading a JSON file with an error that names the file on bad syntax.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace wafer {

// Parses the file at `path`; throws "[what] PATH is not valid JSON: ..." on a syntax error.
nlohmann::json read_json_file(const std::string& path, const std::string& what);
// The same for text already in memory; `source` names it in the message.
nlohmann::json parse_json(std::string_view text, const std::string& what, const std::string& source);

}  // namespace wafer
