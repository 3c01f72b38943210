// kernels/cpu/attention_rows.h: causal attention for a serving batch, one query token at a time:
// token n (its own KV slot and position) attends over keys [0, pos[n]] of its slot. Each
// (token, head) is computed alone in a fixed order (scores, max, Σ exp, weighted sum of values
// in ascending key order), so the result never depends on the other tokens of the batch or on
// how a prompt was cut into chunks. Inference only. The cache may hold bf16: each K or V element
// is widened to fp32 exactly and the arithmetic is the same.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace wafer {

struct RowsAttentionShape {
  int64_t N = 0, H = 1, D = 1;  // tokens, heads, head size
  int64_t q_row = 0;            // floats between query rows (3·H·D in a packed QKV activation)
  int64_t kv_row = 0;           // elements between cache positions of a head (H·D, or D)
  int64_t head_stride = 0;      // elements between heads at a position (D, or Tmax·D)
  int64_t slot_stride = 0;      // elements between slots (Tmax·H·D)
  float scale = 1.0f;
  DType kv_dtype = DType::F32;  // the caches' elements: F32 or BF16
};

// out[N, H·D] <- q (row n at q + n·q_row), k/v caches [slots, Tmax, H·D] of s.kv_dtype; slot[n],
// pos[n].
void attention_rows_forward(float* out, const float* q, const void* k, const void* v, const int32_t* slot,
                            const int32_t* pos, const RowsAttentionShape& s);

}  // namespace wafer
