// infer/kv_cache.cpp: one allocation each for K and V, views per layer.
#include "infer/kv_cache.h"

namespace wafer {

KVCache::KVCache(const Model& m, int64_t B, int64_t Tmax) : Tmax_(Tmax) {
  const int64_t L = m.shard.n_layers();
  const size_t per_layer = size_t(B * Tmax * m.shard.attn_width(m.config));
  k_.resize(size_t(L) * per_layer);
  v_.resize(size_t(L) * per_layer);
  for (int64_t l = 0; l < L; ++l)
    views_.push_back({k_.data() + size_t(l) * per_layer, v_.data() + size_t(l) * per_layer, Tmax});
}

}  // namespace wafer
