// kernels/cpu/attention_rows.h: causal attention for a serving batch, one query token at a time:
// token n (its own KV slot and position) attends over keys [0, pos[n]] of its slot. Each
// (token, head) is computed alone in a fixed order (scores, max, Σ exp, weighted sum of values
// in ascending key order), so the result never depends on the other tokens of the batch or on
// how a prompt was cut into chunks. Inference only.
#pragma once
#include <cstdint>

namespace wafer {

struct RowsAttentionShape {
  int64_t N = 0, H = 1, D = 1;  // tokens, heads, head size
  int64_t q_row = 0;            // floats between query rows (3·H·D in a packed QKV activation)
  int64_t kv_row = 0;           // floats between cache positions (H·D)
  int64_t slot_stride = 0;      // floats between slots (Tmax·H·D)
  float scale = 1.0f;
};

// out[N, H·D] <- q (row n at q + n·q_row), k/v caches [slots, Tmax, H·D]; slot[n], pos[n].
void attention_rows_forward(float* out, const float* q, const float* k, const float* v, const int32_t* slot,
                            const int32_t* pos, const RowsAttentionShape& s);

}  // namespace wafer
