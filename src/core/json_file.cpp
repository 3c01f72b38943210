// core/json_file.cpp: nlohmann::json with file-named errors.
#include "core/json_file.h"

#include "core/error.h"
#include "core/file.h"

namespace wafer {

nlohmann::json read_json_file(const std::string& path, const std::string& what) {
  return parse_json(read_file(path), what, path);
}

nlohmann::json parse_json(std::string_view text, const std::string& what, const std::string& source) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(str_cat("[", what, "] ", source, " is not valid JSON: ", e.what()));
  }
}

}  // namespace wafer
