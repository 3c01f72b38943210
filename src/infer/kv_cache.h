// infer/kv_cache.h: the per-layer K/V store for incremental decoding: [L][B, Tmax, Ca] each for
// K and V (this rank's blocks and heads), and how many positions are filled. The forward pass
// writes into it through LayerKV views. fp32, or bf16 for serving (half the bytes that each
// decode step's attention reads, and half the memory per slot).
#pragma once
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "model/forward.h"

namespace wafer {

class KVCache {
 public:
  // dtype: F32 or BF16.
  KVCache(const Model& m, int64_t B, int64_t Tmax, DType dtype = DType::F32);
  const std::vector<LayerKV>& views() const { return views_; }
  int64_t length() const { return length_; }     // positions filled
  int64_t capacity() const { return Tmax_; }
  void advance(int64_t n) { length_ += n; }
  // K and V of every layer, in bytes.
  static int64_t bytes(const Model& m, int64_t B, int64_t Tmax, DType dtype);

 private:
  int64_t Tmax_, length_ = 0;
  std::vector<float> k32_, v32_;     // [L, B, Tmax, Ca] under F32
  std::vector<uint16_t> k16_, v16_;  // [L, B, Tmax, Ca] under BF16
  std::vector<LayerKV> views_;
};

}  // namespace wafer
