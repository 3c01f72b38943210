// infer/kv_cache.h: the per-layer K/V store for incremental decoding: [L][B, Tmax, Ca] each for
// K and V (this rank's blocks and heads), and how many positions are filled. The forward pass
// writes into it through LayerKV views.
#pragma once
#include <vector>

#include "model/forward.h"

namespace wafer {

class KVCache {
 public:
  KVCache(const Model& m, int64_t B, int64_t Tmax);
  const std::vector<LayerKV>& views() const { return views_; }
  int64_t length() const { return length_; }     // positions filled
  int64_t capacity() const { return Tmax_; }
  void advance(int64_t n) { length_ += n; }

 private:
  int64_t Tmax_, length_ = 0;
  std::vector<float> k_, v_;  // [L, B, Tmax, Ca]
  std::vector<LayerKV> views_;
};

}  // namespace wafer
