// model/decode_step.cpp: one token of one sequence through the whole model inside a single
// OpenMP parallel region (one rank, quantized weights: generate's and bench's decode).
//
// Why a region of its own: a decode step is about a hundred small ops. The general path
// (forward.cpp) opens a parallel region for each, and on a 111M q8_0 model libgomp's fork/join
// took 12-18% of the step while the second thread waited through every serial part (perf, AMD
// EPYC Zen 5). Here the threads stay together: each product's rows are items shared out by
// ItemQueues, a barrier stands where the next op needs the whole of a product, and the ops on
// one row of C values (LayerNorm, quantizing the activation) run on every thread at once into
// its own buffer, which costs what the barrier that sharing them would need costs.
//
// Per block (x: the residual [C]), each thread:
//   ln_1(x), quantize                        every thread, into its own buffer
//   heads: Q, K, V rows of c_attn, K and V of pos0 into the cache, attention over [0, pos0]
//                                                                           barrier
//   quantize atty; res2 = x + atty·Wᵀ + b: chunks of rows                  barrier
//   ln_2(res2), quantize; fch = ln2·Wᵀ + b and its GELU: chunks            barrier
//   quantize fch_gelu; out = res2 + y + b: chunks                          barrier
// then ln_f and the head's chunks. Every value comes from the kernels the general path calls
// on the same inputs (layernorm_row, quant_matmul_rows, attention_row, the GELU spans), each
// row's arithmetic the same whichever thread runs it, so the logits are bit-identical to it.
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/quant_matmul.h"
#include "model/forward.h"

namespace wafer {

namespace {
// Items [0, n) of one product shared out among the region's threads. Thread t owns
// [n·t/nt, n·(t+1)/nt) and takes its items from the front, in order, so it streams one
// contiguous run of the matrix; a thread done with its own takes the other threads' items from
// their back. The threads' memory reads do not run at one pace (a fixed split left them waiting
// about 10% of each product at its barrier, AMD EPYC Zen 5), and handing every item out as
// threads come free (omp dynamic) cost a third of the speed: the threads no longer streamed in
// order. Each owner's (epoch, front, back) is one atomic word on its own cache line; the
// product's number within the step is its epoch, and a word of an older epoch reads as the
// owner's untouched range, so nothing resets the words between products.
class ItemQueues {
 public:
  explicit ItemQueues(int nt) : slots_(size_t(nt)) {}
  // Calls f(i) for every item i of product `epoch` (1, 2, ...: the same sequence on every
  // thread) exactly once over all threads. No barrier: the caller puts one after.
  template <typename F>
  void run(uint64_t epoch, int64_t n, int t, int nt, const F& f) {
    WAFER_ASSERT(n >= 0 && uint64_t(n) <= kMask && epoch > 0 && epoch < (uint64_t(1) << 16) &&
                 nt <= int(slots_.size()));
    for (Range r; (r = claim(t, epoch, n, nt, true)).begin < r.end;)
      for (int64_t i = r.begin; i < r.end; ++i) f(i);
    for (int k = 1; k < nt; ++k)
      for (Range r; (r = claim((t + k) % nt, epoch, n, nt, false)).begin < r.end;) f(r.begin);
  }

 private:
  static constexpr uint64_t kMask = (uint64_t(1) << 24) - 1;  // items per product < 2^24
  struct Range {
    int64_t begin = 0, end = 0;
  };
  // The owner takes a quarter of what is left of its range at a time (at least one item), a
  // thief one item from the back: each claim is a locked instruction, which waits for the
  // loads in flight, so the owner makes few of them.
  Range claim(int owner, uint64_t epoch, int64_t n, int nt, bool owner_claims) {
    std::atomic<uint64_t>& word = slots_[size_t(owner)].word;
    uint64_t s = word.load(std::memory_order_acquire);
    for (;;) {
      uint64_t front = (s >> 24) & kMask, back = s & kMask;
      if (s >> 48 != epoch) front = uint64_t(n * owner / nt), back = uint64_t(n * (owner + 1) / nt);
      if (front >= back) return {};
      const uint64_t take = owner_claims ? std::max<uint64_t>(1, (back - front) / 4) : 1;
      const uint64_t begin = owner_claims ? front : back - 1, end = begin + take;
      const uint64_t next = epoch << 48 | (owner_claims ? end : front) << 24 | (owner_claims ? back : begin);
      const Range r{int64_t(begin), int64_t(end)};
      if (word.compare_exchange_weak(s, next, std::memory_order_acq_rel)) return r;
    }
  }
  struct alignas(64) Slot {
    std::atomic<uint64_t> word{0};  // epoch 0: no product yet
  };
  std::vector<Slot> slots_;
};

// Rows of W in chunks of about 32 KiB of weights (a multiple of 16 rows): f(r0, r1) per chunk.
template <typename F>
void for_row_chunks(ItemQueues& q, uint64_t epoch, int t, int nt, const QuantMatrix& w, const F& f) {
  const int64_t chunk = std::max<int64_t>(16, 32768 / quant_row_bytes(w.type, w.cols) / 16 * 16);
  q.run(epoch, (w.rows + chunk - 1) / chunk, t, nt,
        [&](int64_t i) { f(i * chunk, std::min(w.rows, (i + 1) * chunk)); });
}
}  // namespace

bool ForwardPass::decode_in_one_region(const LocalBatch& b, const std::vector<LayerKV>& kv) const {
  if (!one_region_decode_ || kv.empty() || b.rows() != 1) return false;
  if (tp_.size() != 1 || cp_.size() != 1 || pp_.size() != 1 || m_.quant.empty()) return false;
  if (!m_.weight(m_.w.lm_head).quant) return false;
  for (const LayerWeights& w : m_.w.layers)
    for (const float* p : {w.qkv_w, w.attn_proj_w, w.fc_w, w.fc_proj_w})
      if (!m_.weight(p).quant) return false;
  return true;
}

// s: the slot sized for one row; the logits [V] land in logits_.
void ForwardPass::decode_step(StageActivations& s, const LocalBatch& b, const std::vector<LayerKV>& kv,
                              int64_t pos0) {
  const ModelConfig& c = m_.config;
  const int64_t C = c.n_embd, F = m_.shard.ffn(c), H = c.n_head, D = c.head_dim(), Vl = m_.shard.vocab_rows();
  const int64_t L = m_.shard.n_layers();
  const float eps = float(c.layer_norm_epsilon), attn_scale = c.attn_scale(), out_scale = float(c.mup_output_scale);
  ++one_region_steps_;
  embed(s.resid[0].data(), b);  // its own parallel loops, before the region
  BlockActivations& a = s.blocks[0];
  logits_.resize(size_t(Vl));
  decode_threads_.resize(size_t(omp_get_max_threads()));
  ItemQueues queues(omp_get_max_threads());
#pragma omp parallel
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    DecodeThread& my = decode_threads_[size_t(t)];
    my.ln.resize(size_t(C));
    my.scores.resize(size_t(kAttentionRowScratch));
    uint64_t product = 0;  // the epoch of each shared product, counted alike on every thread
    for (int64_t l = 0; l < L; ++l) {
      const LayerWeights& w = m_.w.layers[size_t(l)];
      const float* x = s.resid[size_t(l % 2)].data();  // [C]
      float* out = s.resid[size_t((l + 1) % 2)].data();
      const LayerKV& cache = kv[size_t(l)];
      const QuantMatrix& qkv_w = *m_.weight(w.qkv_w).quant;          // [3C, C]
      const QuantMatrix& proj_w = *m_.weight(w.attn_proj_w).quant;   // [C, C]
      const QuantMatrix& fc_w = *m_.weight(w.fc_w).quant;            // [F, C]
      const QuantMatrix& fc_proj_w = *m_.weight(w.fc_proj_w).quant;  // [C, F]

      layernorm_row(my.ln.data(), nullptr, x, w.ln1_w, w.ln1_b, C, eps);
      quantize_activation_row(my.act, qkv_w.type, my.ln.data(), C);
      // A head's Q, K, V rows need no other head's, so attention follows them without a barrier.
      queues.run(++product, H, t, nt, [&](int64_t h) {
        for (int64_t part = 0; part < 3; ++part)
          quant_matmul_rows(a.qkv.data(), my.act, qkv_w, w.qkv_b, part * C + h * D, part * C + (h + 1) * D, 1.0f);
        float* k = cache.k_f32() + h * D;  // [Tmax, C] rows, head h's D columns
        float* v = cache.v_f32() + h * D;
        std::memcpy(k + pos0 * C, a.qkv.data() + C + h * D, size_t(D) * sizeof(float));
        std::memcpy(v + pos0 * C, a.qkv.data() + 2 * C + h * D, size_t(D) * sizeof(float));
        attention_row(a.atty.data() + h * D, a.qkv.data() + h * D, k, v, pos0 + 1, C, D, attn_scale,
                      my.scores.data());
      });
#pragma omp barrier
      quantize_activation_row(my.act, proj_w.type, a.atty.data(), C);
      for_row_chunks(queues, ++product, t, nt, proj_w, [&](int64_t r0, int64_t r1) {
        quant_matmul_rows(a.res2.data(), my.act, proj_w, nullptr, r0, r1, 1.0f);
        for (int64_t i = r0; i < r1; ++i) a.res2[size_t(i)] = x[i] + a.res2[size_t(i)] + w.attn_proj_b[i];
      });
#pragma omp barrier
      layernorm_row(my.ln.data(), nullptr, a.res2.data(), w.ln2_w, w.ln2_b, C, eps);
      quantize_activation_row(my.act, fc_w.type, my.ln.data(), C);
      for_row_chunks(queues, ++product, t, nt, fc_w, [&](int64_t r0, int64_t r1) {
        quant_matmul_rows(a.fch.data(), my.act, fc_w, w.fc_b, r0, r1, 1.0f);
        gelu_span_(a.fch_gelu.data() + r0, a.fch.data() + r0, r1 - r0);
      });
#pragma omp barrier
      quantize_activation_row(my.act, fc_proj_w.type, a.fch_gelu.data(), F);
      for_row_chunks(queues, ++product, t, nt, fc_proj_w, [&](int64_t r0, int64_t r1) {
        quant_matmul_rows(out, my.act, fc_proj_w, nullptr, r0, r1, 1.0f);
        for (int64_t i = r0; i < r1; ++i) out[i] = a.res2[size_t(i)] + out[i] + w.fc_proj_b[i];
      });
#pragma omp barrier
    }
    const QuantMatrix& head = *m_.weight(m_.w.lm_head).quant;  // [Vl, C]
    layernorm_row(my.ln.data(), nullptr, s.resid[size_t(L % 2)].data(), m_.w.lnf_w, m_.w.lnf_b, C, eps);
    quantize_activation_row(my.act, head.type, my.ln.data(), C);
    for_row_chunks(queues, ++product, t, nt, head, [&](int64_t r0, int64_t r1) {
      quant_matmul_rows(logits_.data(), my.act, head, nullptr, r0, r1, out_scale);
    });
  }  // the region's end is the head's barrier
}

// WAFER_DECODE_REGION=0 turns the region off (the general path decodes), for A/B timings.
bool ForwardPass::default_one_region_decode() {
  const char* v = std::getenv("WAFER_DECODE_REGION");
  return !v || std::string(v) != "0";
}

}  // namespace wafer
