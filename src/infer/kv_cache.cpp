// infer/kv_cache.cpp: one allocation each for K and V, views per layer.
#include "infer/kv_cache.h"

namespace wafer {

KVCache::KVCache(const ModelConfig& c, int64_t B, int64_t Tmax)
    : Tmax_(Tmax),
      k_(size_t(c.n_layer * B * Tmax * c.n_embd)),
      v_(size_t(c.n_layer * B * Tmax * c.n_embd)) {
  const size_t per_layer = size_t(B * Tmax * c.n_embd);
  for (int64_t l = 0; l < c.n_layer; ++l)
    views_.push_back({k_.data() + size_t(l) * per_layer, v_.data() + size_t(l) * per_layer, Tmax});
}

}  // namespace wafer
