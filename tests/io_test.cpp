// tests/io_test.cpp: every malformed input the readers can meet gets a wafer::Error whose
// message names the problem: truncated files, bad header offsets, overlaps, unknown dtypes,
// missing or mis-shaped tensors, malformed JSON, corrupt zip and pickle.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "core/file.h"
#include "io/safetensors.h"
#include "io/torch_bin.h"
#include "model/model.h"
#include "test_util.h"

namespace wafer {
namespace {

namespace fs = std::filesystem;

std::string ref_model(const std::string& name) { return test::reference_dir() + "/" + name; }

// A copy of a reference model folder to damage.
std::string copy_model(const std::string& name, const std::string& as) {
  std::string dir = test::temp_dir(as);
  fs::copy(ref_model(name), dir, fs::copy_options::overwrite_existing | fs::copy_options::recursive);
  return dir;
}

void write_bytes(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

std::string safetensors_bytes(const std::string& header, const std::string& data) {
  uint64_t n = header.size();
  return std::string(reinterpret_cast<const char*>(&n), 8) + header + data;
}

// Expects `f` to throw wafer::Error whose message contains `needle`.
template <typename F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

TEST(Safetensors, TruncatedFile) {
  std::string dir = copy_model("f32_gelu", "trunc");
  std::string bytes = read_file(dir + "/model.safetensors");
  write_bytes(dir + "/model.safetensors", bytes.substr(0, bytes.size() / 2));
  expect_error([&] { load_hf_model(dir); }, "out of range");
  write_bytes(dir + "/model.safetensors", bytes.substr(0, 5));
  expect_error([&] { load_hf_model(dir); }, "expected at least 8 bytes");
  write_bytes(dir + "/model.safetensors", bytes.substr(0, 100));
  expect_error([&] { load_hf_model(dir); }, "header length");
}

TEST(Safetensors, HeaderProblems) {
  std::string p = test::temp_dir("st") + "/x.safetensors";
  write_bytes(p, safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", std::string(8, '\0')));
  expect_error([&] { SafetensorsFile f(p); }, "out of range");
  write_bytes(p, safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                   R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                   std::string(12, '\0')));
  expect_error([&] { SafetensorsFile f(p); }, "overlap");
  write_bytes(p, safetensors_bytes(R"({"a":{"dtype":"F8_E9","shape":[2],"data_offsets":[0,2]}})", std::string(2, '\0')));
  expect_error([&] { SafetensorsFile f(p); }, "unknown dtype 'F8_E9'");
  write_bytes(p, safetensors_bytes(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0')));
  expect_error([&] { SafetensorsFile f(p); }, "needs 12 bytes");
  write_bytes(p, safetensors_bytes(R"({"a":{"dtype":"F32",)", std::string(8, '\0')));
  expect_error([&] { SafetensorsFile f(p); }, "not valid JSON");
  write_bytes(p, safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2]}})", ""));
  expect_error([&] { SafetensorsFile f(p); }, "data_offsets");
}

TEST(Safetensors, WriteReadRoundTripAndAtomicity) {
  std::string dir = test::temp_dir("stw");
  std::vector<float> a = {1, 2, 3, 4, 5, 6};
  std::vector<uint16_t> b = {f32_to_bf16(1.5f), f32_to_bf16(-2.0f)};
  write_safetensors(dir + "/t.safetensors", {{"a", DType::F32, {2, 3}, a.data()}, {"b", DType::BF16, {2}, b.data()}});
  SafetensorsFile f(dir + "/t.safetensors");
  EXPECT_EQ(f.tensors().at("a").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(f.tensors().at("a").data, a.data(), 24), 0);
  EXPECT_EQ(f.tensors().at("b").dtype, DType::BF16);
  // A failing writer leaves the old file untouched and no temporary behind.
  EXPECT_THROW(write_file_atomic(dir + "/t.safetensors", [](const auto&) { fail("simulated crash"); }), Error);
  SafetensorsFile again(dir + "/t.safetensors");
  EXPECT_EQ(again.tensors().size(), 2u);
  for (auto& e : fs::directory_iterator(dir)) EXPECT_EQ(e.path().filename(), "t.safetensors");
}

// Rewrites a copy of the f32 reference model with each tensor passed through `edit`, which may
// replace it (return true with `out` set) or drop it (return false).
std::string rewrite_model(const std::string& as,
                          const std::function<bool(const TensorRef&, TensorToWrite& out)>& edit) {
  std::string dir = copy_model("f32_gelu", as);
  {
    SafetensorsFile f(dir + "/model.safetensors");
    std::vector<TensorToWrite> ts;
    for (const auto& [name, t] : f.tensors()) {
      TensorToWrite w{name, t.dtype, t.shape, t.data};
      if (edit(t, w)) ts.push_back(w);
    }
    write_safetensors(dir + "/model2.safetensors", ts);
  }
  fs::rename(dir + "/model2.safetensors", dir + "/model.safetensors");
  return dir;
}

TEST(Load, MissingTensorWrongShapeWrongDtype) {
  std::string missing = rewrite_model("missing", [](const TensorRef& t, TensorToWrite&) {
    return t.name != "transformer.h.1.mlp.c_fc.bias";
  });
  expect_error([&] { load_hf_model(missing); }, "missing tensor 'transformer.h.1.mlp.c_fc.bias'");

  std::vector<float> wrong(10, 0.0f);
  std::string shape = rewrite_model("shape", [&](const TensorRef& t, TensorToWrite& w) {
    if (t.name == "transformer.ln_f.bias") w = {t.name, DType::F32, {10}, wrong.data()};
    return true;
  });
  expect_error([&] { load_hf_model(shape); }, "'transformer.ln_f.bias' expected shape [24], found [10]");

  std::vector<int32_t> ints(24, 0);
  std::string dtype = rewrite_model("dtype", [&](const TensorRef& t, TensorToWrite& w) {
    if (t.name == "transformer.ln_f.bias") w = {t.name, DType::I32, {24}, ints.data()};
    return true;
  });
  expect_error([&] { load_hf_model(dtype); }, "expected a float dtype (F32, BF16, F16), found I32");
}

TEST(Load, ConfigProblems) {
  std::string dir = copy_model("f32_gelu", "cfg");
  write_bytes(dir + "/config.json", "{\"n_embd\": 24, ");
  expect_error([&] { load_hf_model(dir); }, "not valid JSON");
  write_bytes(dir + "/config.json", R"({"vocab_size":50257,"n_positions":64,"n_embd":24,"n_layer":2,"n_head":5})");
  expect_error([&] { load_hf_model(dir); }, "n_embd (24) must be divisible by n_head (5)");
  write_bytes(dir + "/config.json", R"({"vocab_size":50257,"n_positions":64,"n_embd":24,"n_layer":2})");
  expect_error([&] { load_hf_model(dir); }, "missing required field 'n_head'");
  write_bytes(dir + "/config.json",
              R"({"vocab_size":50257,"n_positions":64,"n_embd":24,"n_layer":2,"n_head":3,"activation_function":"relu"})");
  expect_error([&] { load_hf_model(dir); }, "activation_function \"relu\" is not supported");
  fs::remove(dir + "/config.json");
  expect_error([&] { load_hf_model(dir); }, "missing config.json");
  expect_error([&] { load_hf_model(dir + "/nope"); }, "found no folder");
}

TEST(TorchBin, LoadsLegacyCheckpointAndRefusesCorruptOnes) {
  TorchBinFile ok(ref_model("bin_legacy_untied") + "/pytorch_model.bin");
  EXPECT_EQ(ok.tensors().at("h.0.attn.bias").dtype, DType::U8);
  EXPECT_EQ(ok.tensors().at("h.0.mlp.c_fc.weight").shape, (std::vector<int64_t>{24, 96}));

  std::string dir = copy_model("bin_legacy_untied", "badzip");
  std::string bytes = read_file(dir + "/pytorch_model.bin");
  write_bytes(dir + "/pytorch_model.bin", bytes.substr(0, bytes.size() - 300));
  expect_error([&] { load_hf_model(dir); }, "[zip]");
  std::string flipped = bytes;
  size_t mid = flipped.size() / 2;
  for (size_t i = mid; i < mid + 64; ++i) flipped[i] = char(~flipped[i]);
  write_bytes(dir + "/pytorch_model.bin", flipped);
  expect_error([&] { load_hf_model(dir); }, "corrupt");
  write_bytes(dir + "/pytorch_model.bin", "not a zip at all");
  expect_error([&] { load_hf_model(dir); }, "expected a ZIP archive");

  expect_error([&] { load_hf_model(ref_model("bad_pickle_truncated")); }, "unexpected end of data");
  expect_error([&] { load_hf_model(ref_model("bad_pickle_opcode")); }, "opcode 0xff");
  expect_error([&] { load_hf_model(ref_model("bad_pickle_not_dict")); }, "expected a state dict");
}

TEST(DType, HalfAndBfloatConversions) {
  for (float f : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 1e-3f, 3.14159f}) {
    EXPECT_EQ(f16_to_f32(f32_to_f16(f)), f16_to_f32(f32_to_f16(f16_to_f32(f32_to_f16(f)))));
    EXPECT_NEAR(f16_to_f32(f32_to_f16(f)), f, std::fabs(f) * 1e-3 + 6e-8) << f;
    EXPECT_NEAR(bf16_to_f32(f32_to_bf16(f)), f, std::fabs(f) * 8e-3) << f;
  }
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
}

}  // namespace
}  // namespace wafer
