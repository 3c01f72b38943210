// train/checkpoint.cpp
#include "train/checkpoint.h"

#include <zlib.h>

#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/file.h"
#include "core/json_file.h"
#include "io/safetensors.h"

namespace wafer {

namespace fs = std::filesystem;

namespace {
uint32_t file_crc(const std::string& path) {
  MappedFile f(path);
  return uint32_t(crc32_z(0L, f.data(), f.size()));
}
std::string read_latest(const std::string& run_dir) {
  std::string name = read_file(run_dir + "/latest");
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  WAFER_CHECK(name.rfind("ckpt-", 0) == 0 && name.find('/') == std::string::npos, "[checkpoint] ", run_dir,
              "/latest: expected the name of a ckpt-NNNNNNNN folder, found '", name.substr(0, 60), "'");
  return name;
}
}  // namespace

bool has_checkpoint(const std::string& run_dir) { return file_exists(run_dir + "/latest"); }

void save_checkpoint(const std::string& run_dir, const Model& m, const AdamW& opt, const CheckpointState& st) {
  char name[32];
  std::snprintf(name, sizeof name, "ckpt-%08lld", (long long)st.step);
  const std::string dir = run_dir + "/" + name;
  fs::create_directories(dir);
  save_hf_model(m, dir);
  std::vector<TensorToWrite> moments;
  size_t offset = 0;
  for (const auto& s : parameter_specs(m.config)) {
    moments.push_back({"exp_avg." + s.name, DType::F32, s.shape, opt.m().data() + offset});
    offset += size_t(s.numel());
  }
  offset = 0;
  for (const auto& s : parameter_specs(m.config)) {
    moments.push_back({"exp_avg_sq." + s.name, DType::F32, s.shape, opt.v().data() + offset});
    offset += size_t(s.numel());
  }
  write_safetensors(dir + "/optimizer.safetensors", moments);
  nlohmann::ordered_json j;
  j["version"] = 1;
  j["step"] = st.step;
  j["adam_t"] = opt.t();
  j["trainer"] = st.extra;
  for (const char* f : {"model.safetensors", "config.json", "optimizer.safetensors"})
    j["crc32"][f] = file_crc(dir + "/" + f);
  write_file_atomic(dir + "/state.json", j.dump(2) + "\n");
  write_file_atomic(run_dir + "/latest", std::string(name) + "\n");
  for (const auto& e : fs::directory_iterator(run_dir)) {  // older checkpoints are superseded
    const std::string n = e.path().filename().string();
    if (e.is_directory() && n.rfind("ckpt-", 0) == 0 && n != name) fs::remove_all(e.path());
  }
}

std::unique_ptr<Model> load_checkpoint(const std::string& run_dir, AdamWOptions opt_options,
                                       std::unique_ptr<AdamW>* opt, CheckpointState* st) {
  const std::string dir = run_dir + "/" + read_latest(run_dir);
  WAFER_CHECK(file_exists(dir + "/state.json"), "[checkpoint] ", dir, ": missing state.json (incomplete checkpoint)");
  nlohmann::json j = read_json_file(dir + "/state.json", "checkpoint");
  WAFER_CHECK(j.value("version", 0) == 1, "[checkpoint] ", dir, "/state.json: expected version 1, found ",
              j.value("version", 0));
  for (const char* f : {"model.safetensors", "config.json", "optimizer.safetensors"}) {
    WAFER_CHECK(file_exists(dir + "/" + f), "[checkpoint] ", dir, ": missing ", f);
    uint32_t want = j["crc32"].value(f, 0u), got = file_crc(dir + "/" + f);
    WAFER_CHECK(want == got, "[checkpoint] ", dir, "/", f, ": checksum mismatch (expected ", want, ", found ", got,
                "); the checkpoint is corrupt");
  }
  auto m = load_hf_model(dir);
  *opt = std::make_unique<AdamW>(m->params.size(), param_groups(m->config), opt_options);
  SafetensorsFile f(dir + "/optimizer.safetensors");
  size_t offset = 0;
  for (const auto& s : parameter_specs(m->config)) {
    for (const char* kind : {"exp_avg.", "exp_avg_sq."}) {
      auto it = f.tensors().find(kind + s.name);
      WAFER_CHECK(it != f.tensors().end() && it->second.dtype == DType::F32 && it->second.shape == s.shape,
                  "[checkpoint] ", dir, "/optimizer.safetensors: missing or mis-shaped ", kind, s.name);
      std::vector<float>& dst = std::string(kind) == "exp_avg." ? (*opt)->m() : (*opt)->v();
      std::memcpy(dst.data() + offset, it->second.data, it->second.nbytes);
    }
    offset += size_t(s.numel());
  }
  (*opt)->set_t(j.value("adam_t", int64_t(0)));
  st->step = j.value("step", int64_t(0));
  st->extra = j.value("trainer", nlohmann::json::object());
  return m;
}

}  // namespace wafer
