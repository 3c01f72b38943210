// tests/gguf_test.cpp: the GGUF container: a tiny file checked byte for byte against the layout
// worked out by hand, a round trip of every value and tensor type, and corrupt files (every
// truncation, every single-byte change, and named defects) that must throw wafer::Error.
#include "io/gguf.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/quant.h"
#include "test_util.h"

namespace wafer {
namespace {

std::string to_bytes(const GgufMetadata& kv, const std::vector<GgufTensorToWrite>& tensors) {
  std::string out;
  write_gguf_to([&](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); }, kv, tensors);
  return out;
}

std::span<const uint8_t> span_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

template <typename T>
void put(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof v);
}

TEST(Gguf, TinyFileByteForByte) {
  const float data[2] = {1.5f, -2.0f};
  const std::string got = to_bytes({{"a", GgufValue::u32(7)}}, {{"t", GgufType::F32, {2}, data}});
  std::string want = "GGUF";
  put<uint32_t>(want, 3);                          // version
  put<uint64_t>(want, 1), put<uint64_t>(want, 1);  // tensors, key-values
  put<uint64_t>(want, 1), want += "a";             // key
  put<uint32_t>(want, 4), put<uint32_t>(want, 7);  // UINT32 = 4, value
  put<uint64_t>(want, 1), want += "t";             // tensor name
  put<uint32_t>(want, 1), put<uint64_t>(want, 2);  // n_dims, ne[0]
  put<uint32_t>(want, 0), put<uint64_t>(want, 0);  // F32 = 0, offset
  ASSERT_EQ(want.size(), 74u);
  want.append(96 - 74, '\0');  // align to 32
  put<float>(want, 1.5f), put<float>(want, -2.0f);
  want.append(24, '\0');  // the last tensor padded too
  EXPECT_EQ(got, want);
}

TEST(Gguf, RoundTripEveryValueAndTensorType) {
  GgufMetadata kv = {
      {"general.architecture", GgufValue::str("gpt2")},
      {"u32", GgufValue::u32(4000000000u)},
      {"i32", GgufValue::i32(-5)},
      {"u64", GgufValue::u64(uint64_t(1) << 40)},
      {"f32", GgufValue::f32(1e-5f)},
      {"bool", GgufValue::boolean(true)},
      {"strs", GgufValue::str_array({"a", "", "héllo"})},
      {"ints", GgufValue::i32_array({1, -2, 3})},
  };
  const std::vector<float> x = test::randn(256 * 2, 3);
  std::vector<uint16_t> f16(x.size()), bf16(x.size());
  for (size_t i = 0; i < x.size(); ++i) f16[i] = f32_to_f16(x[i]), bf16[i] = f32_to_bf16(x[i]);
  std::vector<BlockQ8_0> q8(x.size() / 32);
  std::vector<BlockQ4_0> q4(x.size() / 32);
  std::vector<BlockQ4_K> qk(x.size() / 256);
  std::vector<BlockQ6_K> q6(x.size() / 256);
  quantize_q8_0(q8.data(), x.data(), int64_t(x.size()));
  quantize_q4_0(q4.data(), x.data(), int64_t(x.size()));
  quantize_q4_k(qk.data(), x.data(), int64_t(x.size()));
  quantize_q6_k(q6.data(), x.data(), int64_t(x.size()));
  std::vector<GgufTensorToWrite> tensors = {
      {"f32", GgufType::F32, {3}, x.data()},  // 12 bytes: the next tensor starts padded
      {"f16", GgufType::F16, {256, 2}, f16.data()},
      {"bf16", GgufType::BF16, {64, 4, 2}, bf16.data()},
      {"q8", GgufType::Q8_0, {256, 2}, q8.data()},
      {"q4", GgufType::Q4_0, {512}, q4.data()},
      {"qk", GgufType::Q4_K, {256, 1, 1, 2}, qk.data()},
      {"q6", GgufType::Q6_K, {256, 2}, q6.data()},
  };
  const std::string bytes = to_bytes(kv, tensors);
  GgufFile f(span_of(bytes), "memory");
  EXPECT_EQ(f.version(), 3u);
  ASSERT_EQ(f.metadata().size(), kv.size());
  EXPECT_EQ(f.get_string("general.architecture"), "gpt2");
  EXPECT_EQ(f.get_int("u32"), 4000000000LL);
  EXPECT_EQ(f.get_int("i32"), -5);
  EXPECT_EQ(f.get_int("u64"), int64_t(1) << 40);
  EXPECT_EQ(f.get_float("f32"), double(1e-5f));
  EXPECT_EQ(f.get_int("bool"), 1);
  EXPECT_EQ(f.get_strings("strs"), (std::vector<std::string>{"a", "", "héllo"}));
  EXPECT_EQ(f.get_ints("ints"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_THROW(f.get_int("strs"), Error);
  EXPECT_THROW(f.get_string("missing"), Error);
  ASSERT_EQ(f.tensors().size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const GgufTensor& t = f.tensors()[i];
    EXPECT_EQ(t.name, tensors[i].name);
    EXPECT_EQ(t.type, tensors[i].type);
    EXPECT_EQ(t.ne, tensors[i].ne);
    EXPECT_EQ(t.offset % 32, 0u);
    ASSERT_EQ(t.nbytes, gguf_nbytes(t.type, t.ne));
    EXPECT_EQ(std::memcmp(t.data, tensors[i].data, t.nbytes), 0) << t.name;
    std::vector<float> y(t.nbytes / gguf_type_size(t.type) * size_t(gguf_block_size(t.type)));
    gguf_tensor_to_f32(y.data(), t);
    const float tol = t.type == GgufType::F32                                ? 0.0f
                      : t.type == GgufType::Q4_K || t.type == GgufType::Q4_0 ? 0.7f
                      : t.type == GgufType::Q6_K                             ? 0.15f
                                                                             : 0.05f;
    for (size_t j = 0; j < y.size(); ++j) ASSERT_NEAR(y[j], x[j], tol) << t.name << " " << j;
  }
  EXPECT_EQ(f.find_tensor("q8")->ne, (std::vector<int64_t>{256, 2}));
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
}

TEST(Gguf, UnalignedDataDequantizesTheSame) {
  // general.alignment = 1 puts a Q8_0 tensor at an odd address; it must read (by copying) the same.
  const std::vector<float> x = test::randn(64, 5);
  std::vector<BlockQ8_0> q8(2);
  quantize_q8_0(q8.data(), x.data(), 64);
  const std::string bytes = to_bytes({{"general.alignment", GgufValue::u32(1)}, {"k", GgufValue::str("ab")}},
                                     {{"q", GgufType::Q8_0, {64}, q8.data()}});
  GgufFile f(span_of(bytes), "memory");
  EXPECT_EQ(f.alignment(), 1u);
  std::vector<float> got(64), want(64);
  gguf_tensor_to_f32(got.data(), f.tensors()[0]);
  dequantize_q8_0(want.data(), q8.data(), 64);
  EXPECT_EQ(got, want);
}

// A small valid file for the corruption tests.
std::string sample_file() {
  static const std::vector<float> x = test::randn(64, 9);
  static std::vector<BlockQ4_0> q4(2);
  quantize_q4_0(q4.data(), x.data(), 64);
  return to_bytes({{"general.architecture", GgufValue::str("gpt2")},
                   {"toks", GgufValue::str_array({"x", "yy"})},
                   {"n", GgufValue::u32(3)}},
                  {{"a", GgufType::F32, {4, 2}, x.data()}, {"b", GgufType::Q4_0, {64}, q4.data()}});
}

// Parses; a failure must be a wafer::Error (anything else, or a crash under ASan, fails the test).
bool parses(const std::string& bytes) {
  try {
    GgufFile f(span_of(bytes), "corrupt");
    for (const GgufTensor& t : f.tensors()) {
      std::vector<float> y(size_t(t.nbytes / gguf_type_size(t.type)) * size_t(gguf_block_size(t.type)));
      gguf_tensor_to_f32(y.data(), t);
    }
    return true;
  } catch (const Error&) {
    return false;
  }
}

TEST(Gguf, EveryTruncationAndByteChangeIsSafe) {
  const std::string good = sample_file();
  ASSERT_TRUE(parses(good));
  for (size_t n = 0; n < good.size(); ++n) {
    // Cutting into the data section fails; cutting only trailing padding of the last tensor may not.
    const bool ok = parses(good.substr(0, n));
    if (ok) {
      EXPECT_GE(n, good.size() - 32) << "a file cut to " << n << " bytes parsed";
    }
  }
  for (size_t i = 0; i < good.size(); ++i)
    for (uint8_t v : {uint8_t(0x00), uint8_t(0xff), uint8_t(0x80), uint8_t(good[i] ^ 1)}) {
      std::string bad = good;
      bad[i] = char(v);
      parses(bad);  // either outcome; never a crash, never another exception
    }
}

TEST(Gguf, NamedDefectsGiveClearErrors) {
  auto message = [](const std::string& bytes) -> std::string {
    try {
      GgufFile f(span_of(bytes), "bad.gguf");
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  const std::string good = sample_file();
  std::string s = good;
  s[0] = 'X';
  EXPECT_NE(message(s).find("magic"), std::string::npos);
  s = good;
  s[4] = 1;
  EXPECT_NE(message(s).find("version"), std::string::npos);
  // A string array claiming 2^40 elements.
  std::string huge = "GGUF";
  put<uint32_t>(huge, 3), put<uint64_t>(huge, 0), put<uint64_t>(huge, 1);
  put<uint64_t>(huge, 1), huge += "k", put<uint32_t>(huge, 9), put<uint32_t>(huge, 8), put<uint64_t>(huge, 1ull << 40);
  EXPECT_NE(message(huge).find("claims"), std::string::npos);
  // Unknown tensor type, ne[0] not a block multiple, misaligned offset, data past the end.
  auto one_tensor = [](uint32_t type, uint64_t ne0, uint64_t offset, size_t data_bytes) {
    std::string f = "GGUF";
    put<uint32_t>(f, 3), put<uint64_t>(f, 1), put<uint64_t>(f, 0);
    put<uint64_t>(f, 1), f += "w", put<uint32_t>(f, 1), put<uint64_t>(f, ne0), put<uint32_t>(f, type),
        put<uint64_t>(f, offset);
    f.append(32 - f.size() % 32, '\0');
    f.append(data_bytes, '\0');
    return f;
  };
  EXPECT_EQ(message(one_tensor(0, 8, 0, 32)), "");  // the builder makes a valid file
  EXPECT_NE(message(one_tensor(3, 32, 0, 64)).find("does not read"), std::string::npos);  // Q4_1
  EXPECT_NE(message(one_tensor(8, 33, 0, 64)).find("multiple"), std::string::npos);
  EXPECT_NE(message(one_tensor(0, 8, 4, 64)).find("alignment"), std::string::npos);
  EXPECT_NE(message(one_tensor(0, 8, 0, 16)).find("runs past"), std::string::npos);
  EXPECT_NE(message(one_tensor(0, 8, 1ull << 63, 16)).find("runs past"), std::string::npos);
}

}  // namespace
}  // namespace wafer
