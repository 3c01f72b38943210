// train/checkpoint_state.cpp: state.json's parser. A file a user can edit or a crash can cut,
// so every field is checked for presence and type before use (nlohmann's own accessors would
// throw a type_error naming neither the file nor the field).
#include "core/error.h"
#include "core/json_file.h"
#include "train/checkpoint.h"

namespace wafer {

CheckpointStateFile parse_checkpoint_state(std::string_view text, const std::string& source) {
  const nlohmann::json j = parse_json(text, "checkpoint", source);
  WAFER_CHECK(j.is_object(), "[checkpoint] ", source, ": expected a JSON object, found ", j.type_name());
  auto count = [&](const char* key, bool required) -> int64_t {
    if (!j.contains(key)) {
      WAFER_CHECK(!required, "[checkpoint] ", source, ": missing '", key, "'");
      return 0;
    }
    const auto& v = j[key];
    WAFER_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0, "[checkpoint] ", source, ": expected '", key,
                "' to be a non-negative integer, found ", v.dump());
    return v.get<int64_t>();
  };
  const int64_t version = count("version", true);
  WAFER_CHECK(version == 1, "[checkpoint] ", source, ": expected version 1, found ", version);
  CheckpointStateFile st;
  st.step = count("step", false);
  st.adam_t = count("adam_t", false);
  WAFER_CHECK(j.contains("crc32") && j["crc32"].is_object(), "[checkpoint] ", source,
              ": expected a 'crc32' object of file name -> checksum");
  for (const char* f : {"model.safetensors", "config.json", "optimizer.safetensors"}) {
    const auto& c = j["crc32"];
    WAFER_CHECK(c.contains(f) && c[f].is_number_unsigned() && c[f].get<uint64_t>() <= UINT32_MAX, "[checkpoint] ",
                source, ": expected crc32['", f, "'] to be a 32-bit checksum, found ",
                c.contains(f) ? c[f].dump() : "none");
    st.crc32[f] = c[f].get<uint32_t>();
  }
  if (j.contains("trainer")) {
    WAFER_CHECK(j["trainer"].is_object(), "[checkpoint] ", source, ": expected 'trainer' to be an object, found ",
                j["trainer"].type_name());
    st.trainer = j["trainer"];
    // The fields a resume compares with its options (cli/cmd_train.cpp) must be integers.
    for (const char* k : {"seed", "batch", "seq", "micro_batches", "data_cursor"})
      WAFER_CHECK(!st.trainer.contains(k) || st.trainer[k].is_number_integer(), "[checkpoint] ", source,
                  ": expected trainer['", k, "'] to be an integer, found ", st.trainer[k].dump());
  }
  return st;
}

}  // namespace wafer
