// core/json_file.h: reading a JSON file with an error that names the file on bad syntax.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

namespace wafer {

// Parses the file at `path`; throws "[what] PATH is not valid JSON: ..." on a syntax error.
nlohmann::json read_json_file(const std::string& path, const std::string& what);

}  // namespace wafer
