// infer/kv_cache.cpp: one allocation each for K and V, views per layer.
#include "infer/kv_cache.h"

#include "core/error.h"

namespace wafer {

namespace {
int64_t element_bytes(DType dtype) {
  WAFER_CHECK(dtype == DType::F32 || dtype == DType::BF16, "[kv-cache] expected an F32 or BF16 cache, found ",
              dtype_name(dtype));
  return dtype == DType::F32 ? 4 : 2;
}
}  // namespace

int64_t KVCache::bytes(const Model& m, int64_t B, int64_t Tmax, DType dtype) {
  return 2 * m.shard.n_layers() * B * Tmax * m.shard.attn_width(m.config) * element_bytes(dtype);
}

KVCache::KVCache(const Model& m, int64_t B, int64_t Tmax, DType dtype) : Tmax_(Tmax) {
  const int64_t L = m.shard.n_layers();
  const size_t per_layer = size_t(B * Tmax * m.shard.attn_width(m.config));
  const size_t all = size_t(L) * per_layer;
  const bool f32 = element_bytes(dtype) == 4;  // throws unless F32 or BF16
  if (f32) {
    k32_.resize(all), v32_.resize(all);
  } else {
    k16_.resize(all), v16_.resize(all);
  }
  for (int64_t l = 0; l < L; ++l) {
    const size_t at = size_t(l) * per_layer;
    if (f32)
      views_.push_back({k32_.data() + at, v32_.data() + at, Tmax, dtype});
    else
      views_.push_back({k16_.data() + at, v16_.data() + at, Tmax, dtype});
  }
}

}  // namespace wafer
