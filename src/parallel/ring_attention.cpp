// parallel/ring_attention.cpp
#include "parallel/ring_attention.h"

#include <algorithm>

#include "core/error.h"
#include "kernels/cpu/attention.h"

namespace wafer {

std::vector<int64_t> zigzag_chunks(int r, int cp) {
  if (cp == 1) return {0};
  return {int64_t(r), int64_t(2 * cp - 1 - r)};
}

namespace {

// Where K and V of a block of chunks live: in place in the packed QKV activation (row 3Ca, K at
// +Ca, V at +2Ca) or in a ring buffer (row 2Ca, K at 0, V at +Ca).
struct KVView {
  const float* base;
  int64_t row, k_off, v_off;
};

// Attention of local query chunk `qi` (global index gq) against key chunk `kj` (global gk) of a
// block: the whole chunk when it lies before, the causal triangle when it is the same chunk.
AttentionShape chunk_shape(const RingShape& s, int64_t kv_row, bool causal) {
  const int64_t Ca = s.H * s.D;
  AttentionShape a;
  a.B = s.B, a.Tq = s.Tc, a.Tk = s.Tc, a.H = s.H, a.D = s.D, a.scale = s.scale, a.causal = causal, a.q_pos0 = 0;
  a.q_row = 3 * Ca, a.q_batch = s.Tc * 3 * Ca;
  a.kv_row = kv_row, a.kv_batch = s.Tc * kv_row;
  a.out_row = Ca, a.out_batch = s.Tc * Ca;
  return a;
}

// Packs K|V of every local row into buf [rows, 2Ca].
void pack_kv(float* buf, const float* qkv, int64_t rows, int64_t Ca) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < rows; ++n)
    std::copy(qkv + n * 3 * Ca + Ca, qkv + n * 3 * Ca + 3 * Ca, buf + n * 2 * Ca);
}

}  // namespace

void ring_attention_forward(Group& cp, float* out, float* lse, const float* qkv, const RingShape& s,
                            RingScratch& scratch) {
  const int P = cp.size(), r = cp.rank();
  const std::vector<int64_t> mine = zigzag_chunks(r, P);
  const int64_t nc = int64_t(mine.size()), Ca = s.H * s.D, chunk_rows = s.B * s.Tc;
  const int64_t kv_floats = nc * chunk_rows * 2 * Ca;
  std::vector<bool> started(size_t(nc), false);
  if (P > 1) {
    scratch.kv[0].resize(size_t(kv_floats));
    scratch.kv[1].resize(size_t(kv_floats));
    pack_kv(scratch.kv[0].data(), qkv, nc * chunk_rows, Ca);
    scratch.part_out.resize(size_t(chunk_rows * Ca));
    scratch.part_lse.resize(size_t(s.B * s.H * s.Tc));
  }
  for (int step = 0; step < P; ++step) {
    const int src = (r - step + P) % P;  // whose K/V this rank holds now
    const std::vector<int64_t> theirs = zigzag_chunks(src, P);
    const KVView kv = step == 0 ? KVView{qkv, 3 * Ca, Ca, 2 * Ca} : KVView{scratch.kv[step % 2].data(), 2 * Ca, 0, Ca};
    // Start passing the block on while computing with it (the buffer is only read meanwhile).
    CommRequest send, recv;
    if (step < P - 1) {
      recv = cp.irecv(scratch.kv[(step + 1) % 2].data(), kv_floats, (r - 1 + P) % P, 100 + step);
      send = cp.isend(scratch.kv[step % 2].data(), kv_floats, (r + 1) % P, 100 + step);
    }
    for (int64_t qi = 0; qi < nc; ++qi)
      for (int64_t kj = 0; kj < int64_t(theirs.size()); ++kj) {
        if (theirs[size_t(kj)] > mine[size_t(qi)]) continue;  // entirely in the future: masked
        const AttentionShape a = chunk_shape(s, kv.row, theirs[size_t(kj)] == mine[size_t(qi)]);
        const float* q = qkv + qi * chunk_rows * 3 * Ca;
        const float* k = kv.base + kj * chunk_rows * kv.row + kv.k_off;
        const float* v = kv.base + kj * chunk_rows * kv.row + kv.v_off;
        float* o = out + qi * chunk_rows * Ca;
        float* l = lse + qi * s.B * s.H * s.Tc;
        if (!started[size_t(qi)]) {
          attention_forward(o, l, q, k, v, a);
          started[size_t(qi)] = true;
        } else {
          attention_forward(scratch.part_out.data(), scratch.part_lse.data(), q, k, v, a);
          attention_merge(o, l, scratch.part_out.data(), scratch.part_lse.data(), s.B, s.Tc, s.H, s.D);
        }
      }
    cp.wait(recv);
    cp.wait(send);
  }
  for (int64_t qi = 0; qi < nc; ++qi) WAFER_ASSERT(started[size_t(qi)]);
}

void ring_attention_backward(Group& cp, float* dqkv, const float* dout, const float* out, const float* lse,
                             const float* qkv, const RingShape& s, RingScratch& scratch) {
  const int P = cp.size(), r = cp.rank();
  const std::vector<int64_t> mine = zigzag_chunks(r, P);
  const int64_t nc = int64_t(mine.size()), Ca = s.H * s.D, chunk_rows = s.B * s.Tc;
  const int64_t kv_floats = nc * chunk_rows * 2 * Ca;
  // A travelling block: K|V of its owner, then the gradient of those K|V gathered on the way.
  if (P > 1) {
    for (auto& b : scratch.kv) b.assign(size_t(2 * kv_floats), 0.0f);
    pack_kv(scratch.kv[0].data(), qkv, nc * chunk_rows, Ca);
  }
  for (int step = 0; step < P; ++step) {
    const int src = (r - step + P) % P;
    const std::vector<int64_t> theirs = zigzag_chunks(src, P);
    float* block = P > 1 ? scratch.kv[step % 2].data() : nullptr;
    // Own block: K/V read and their gradients written in place in qkv / dqkv.
    const float* kv_base = step == 0 ? qkv : block;
    float* dkv_base = step == 0 ? dqkv : block + kv_floats;
    const int64_t row = step == 0 ? 3 * Ca : 2 * Ca, k_off = step == 0 ? Ca : 0, v_off = step == 0 ? 2 * Ca : Ca;
    for (int64_t qi = 0; qi < nc; ++qi)
      for (int64_t kj = 0; kj < int64_t(theirs.size()); ++kj) {
        if (theirs[size_t(kj)] > mine[size_t(qi)]) continue;
        const AttentionShape a = chunk_shape(s, row, theirs[size_t(kj)] == mine[size_t(qi)]);
        const int64_t qo = qi * chunk_rows, ko = kj * chunk_rows * row;
        attention_backward(dqkv + qo * 3 * Ca, dkv_base + ko + k_off, dkv_base + ko + v_off, dout + qo * Ca,
                           out + qo * Ca, lse + qi * s.B * s.H * s.Tc, qkv + qo * 3 * Ca, kv_base + ko + k_off,
                           kv_base + ko + v_off, a);
      }
    if (step < P - 1) {  // pass K|V and the gradient so far on; the next block arrives from r-1
      float* next = scratch.kv[(step + 1) % 2].data();
      cp.sendrecv(block, 2 * kv_floats, (r + 1) % P, next, 2 * kv_floats, (r - 1 + P) % P, 200 + step);
    }
  }
  if (P == 1) return;
  // The block now held belongs to rank r+1: one more shift brings every rank its own dK/dV.
  float* held = scratch.kv[(P - 1) % 2].data() + kv_floats;
  float* home = scratch.kv[P % 2].data();
  cp.sendrecv(held, kv_floats, (r + 1) % P, home, kv_floats, (r - 1 + P) % P, 300);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < nc * chunk_rows; ++n)
    for (int64_t i = 0; i < 2 * Ca; ++i) dqkv[n * 3 * Ca + Ca + i] += home[n * 2 * Ca + i];
}

}  // namespace wafer
