// train/checkpoint.cpp
#include "train/checkpoint.h"

#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/error.h"
#include "core/file.h"
#include "core/json_file.h"
#include "io/safetensors.h"
#include "model/sharding.h"
#include "model/weight_files.h"

namespace wafer {

namespace fs = std::filesystem;

namespace {
// CRC-32 of a whole file, read in 4 MiB pieces: a checkpoint of many GB is checked without
// mapping it (mapped pages would count in every rank's resident memory).
uint32_t file_crc(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  WAFER_CHECK(in.good(), "[checkpoint] cannot read ", path);
  std::vector<char> buf(size_t(4) << 20);
  uLong crc = crc32_z(0L, nullptr, 0);
  while (in) {
    in.read(buf.data(), std::streamsize(buf.size()));
    crc = crc32_z(crc, reinterpret_cast<const Bytef*>(buf.data()), size_t(in.gcount()));
  }
  return uint32_t(crc);
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

void save_checkpoint(const std::string& run_dir, const Model& m, const ParallelState& par, const MomentPieces& mom,
                     const CheckpointState& st) {
  char name[32];
  std::snprintf(name, sizeof name, "ckpt-%08lld", (long long)st.step);
  const std::string dir = run_dir + "/" + name;
  const bool rank0 = par.world.rank() == 0;
  save_hf_shard(m, par, dir);  // creates the folder on rank 0 first
  write_whole_tensors(dir + "/optimizer.safetensors", m.config, m.shard, par,
                      {{"exp_avg.", mom.m, mom.partitioned}, {"exp_avg_sq.", mom.v, mom.partitioned}}, DType::F32);
  if (!rank0) return;
  nlohmann::ordered_json j;
  j["version"] = 1;
  j["step"] = st.step;
  j["adam_t"] = mom.t;
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

CheckpointInfo open_checkpoint(const std::string& run_dir) {
  CheckpointInfo ck;
  ck.dir = run_dir + "/" + read_latest(run_dir);
  const std::string& dir = ck.dir;
  WAFER_CHECK(file_exists(dir + "/state.json"), "[checkpoint] ", dir, ": missing state.json (incomplete checkpoint)");
  ck.state = parse_checkpoint_state(read_file(dir + "/state.json"), dir + "/state.json");
  for (const char* f : {"model.safetensors", "config.json", "optimizer.safetensors"}) {
    WAFER_CHECK(file_exists(dir + "/" + f), "[checkpoint] ", dir, ": missing ", f);
    uint32_t want = ck.state.crc32.at(f), got = file_crc(dir + "/" + f);
    WAFER_CHECK(want == got, "[checkpoint] ", dir, "/", f, ": checksum mismatch (expected ", want, ", found ", got,
                "); the checkpoint is corrupt");
  }
  ck.config = load_hf_config(dir);
  return ck;
}

std::unique_ptr<Model> load_checkpoint_shard(const CheckpointInfo& ck, const Shard& sh) {
  return load_hf_model(ck.dir, ck.config, sh);
}

void load_checkpoint_moments(const CheckpointInfo& ck, const Shard& sh, int64_t lo, int64_t hi, float* m, float* v) {
  const std::string path = ck.dir + "/optimizer.safetensors";
  const WeightFiles f = WeightFiles::open_safetensors(path);
  read_shard_range(f, path, "exp_avg.", ck.config, sh, lo, hi, m);
  read_shard_range(f, path, "exp_avg_sq.", ck.config, sh, lo, hi, v);
}

}  // namespace wafer
