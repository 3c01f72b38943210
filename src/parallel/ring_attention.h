// parallel/ring_attention.h: causal self-attention over a sequence split across the cp ranks.
//
// Zigzag split: the sequence of T tokens is cut into 2·cp chunks of Tc = T / (2·cp); rank r holds
// chunks r and 2·cp-1-r, so every rank has the same share of the causal triangle. (cp = 1: one
// chunk, the whole sequence.) A rank's rows are chunk-major: [chunks][B][Tc].
//
// Ring: the K/V blocks travel around the cp ring (rank r sends to r+1, receives from r-1); each
// rank attends its queries to every block it sees, skipping chunk pairs that the causal mask hides
// completely, and merges the partial results by their log-sum-exp (attention_merge, fp32). The
// backward sends K/V around again with their gradients travelling alongside, and a last shift
// brings each rank's dK/dV home.
#pragma once
#include <cstdint>
#include <vector>

#include "parallel/comm.h"

namespace wafer {

// The global chunk indices rank `r` of `cp` holds, in its row order.
std::vector<int64_t> zigzag_chunks(int r, int cp);

struct RingShape {
  int64_t B = 1, Tc = 1;  // sequences, tokens per chunk
  int64_t H = 1, D = 1;   // this rank's heads (Ca = H·D)
  float scale = 1.0f;
};

// Scratch reused across calls (ring buffers, one partial result).
struct RingScratch {
  std::vector<float> kv[2], part_out, part_lse;
};

// qkv: [chunks, B, Tc, 3Ca] (Q|K|V per row) -> out: [chunks, B, Tc, Ca], lse: [chunks, B, H, Tc].
void ring_attention_forward(Group& cp, float* out, float* lse, const float* qkv, const RingShape& s,
                            RingScratch& scratch);
// dout, out, lse as above -> dqkv (+=, [chunks, B, Tc, 3Ca]).
void ring_attention_backward(Group& cp, float* dqkv, const float* dout, const float* out, const float* lse,
                             const float* qkv, const RingShape& s, RingScratch& scratch);

}  // namespace wafer
