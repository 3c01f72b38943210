// kernels/cpu/attention.h: blockwise scaled-dot-product attention with an online softmax.
// Never stores the T×T score matrix: keys are visited in blocks, each query row keeps a running
// max m, sum l and weighted accumulator, and the result comes with each row's log-sum-exp so
// partial results over different key sets merge exactly (attention_merge). The same kernel serves
// full-sequence prefill, KV-cache decode and (later) ring attention.
#pragma once
#include <cstdint>

namespace wafer {

// Element strides let Q, K, V be read in place from the packed QKV activation [B, T, 3C] or from a
// KV cache [B, Tmax, C]. Head h of query row i in batch b is at q + b·q_batch + i·q_row + h·D.
struct AttentionShape {
  int64_t B = 1, Tq = 1, Tk = 1, H = 1, D = 1;
  int64_t q_row = 0, q_batch = 0;
  int64_t kv_row = 0, kv_batch = 0;
  int64_t out_row = 0, out_batch = 0;
  int64_t q_pos0 = 0;   // causal: query i sees keys j <= q_pos0 + i
  bool causal = true;
  float scale = 1.0f;   // softmax(Q·Kᵀ·scale)
};

// out: head h of row i at out + b·out_batch + i·out_row + h·D ([B, Tq, H, D] when packed);
// lse: [B, H, Tq], natural log; -inf (and out 0) for a row that sees no key.
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, const AttentionShape& s);
// One query row of one head against keys [0, nk): out[D] = softmax(scale·q·Kᵀ)·V, with the
// arithmetic attention_forward gives a tile of one row (bit for bit); returns the row's lse.
// q: [D]; key j at k + j·stride, value j at v + j·stride; scratch: kAttentionRowScratch floats.
// Serial, for a caller's own parallel region (model/decode_step.cpp).
constexpr int64_t kAttentionRowScratch = 256;
float attention_row(float* out, const float* q, const float* k, const float* v, int64_t nk, int64_t stride, int64_t D,
                    float scale, float* scratch);
// The textbook version (scores of a row materialised, softmax, weighted sum), for tests.
void attention_forward_naive(float* out, float* lse, const float* q, const float* k, const float* v,
                             const AttentionShape& s);

// Backward (+=) from the forward's out and lse, recomputing each probability as
// p_ij = exp(s_ij - lse_i) instead of storing them:
//   dv_j += Σ_i p_ij·dout_i;  ds_ij = p_ij·(dout_i·v_j - dout_i·out_i);
//   dq_i += scale·Σ_j ds_ij·k_j;  dk_j += scale·Σ_i ds_ij·q_i.
// dq has q's strides, dk/dv the kv strides, dout out's strides. (b, h) pairs run in parallel;
// each owns its slices, so nothing is shared between threads.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse,
                        const float* q, const float* k, const float* v, const AttentionShape& s);

// Merges a second partial result into the first, both over the same queries and disjoint keys:
// lse = log(e^lse1 + e^lse2), out = e^(lse1-lse)·out1 + e^(lse2-lse)·out2, fp32, -inf safe.
// out1/out2: [B, T, H, D] packed; lse1/lse2: [B, H, T].
void attention_merge(float* out1, float* lse1, const float* out2, const float* lse2, int64_t B, int64_t T, int64_t H,
                     int64_t D);

}  // namespace wafer
