// core/json_file.cpp: nlohmann::json with file-named errors.
#include "core/json_file.h"

#include "core/error.h"
#include "core/file.h"

namespace wafer {

nlohmann::json read_json_file(const std::string& path, const std::string& what) {
  std::string text = read_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(str_cat("[", what, "] ", path, " is not valid JSON: ", e.what()));
  }
}

}  // namespace wafer
