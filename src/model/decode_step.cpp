// model/decode_step.cpp: one token of one sequence through the whole model inside a single
// OpenMP parallel region (one rank, quantized weights: generate's and bench's decode).
//
// Why a region of its own: a decode step is about a hundred small ops. The general path
// (forward.cpp) opens a parallel region for each, and on a 111M q8_0 model libgomp's fork/join
// took 12-18% of the step while the second thread waited through every serial part (perf, AMD
// EPYC Zen 5). Here the threads stay together: each product's rows are split between them, a
// barrier stands where the next op needs the whole of a product, and the ops on one row of C
// values (LayerNorm, quantizing the activation) run on every thread at once into its own buffer,
// which costs what the barrier that sharing them would need costs.
//
// Per block (x: the residual [C]), each thread:
//   ln_1(x), quantize                        every thread, into its own buffer
//   qkv[3C]: its chunks of rows              barrier
//   its heads: K, V of pos0 into the cache, attention over [0, pos0]      barrier
//   quantize atty; res2 = x + atty·Wᵀ + b: its chunks                     barrier
//   ln_2(res2), quantize; fch = ln2·Wᵀ + b and its GELU: its chunks       barrier
//   quantize fch_gelu; out = res2 + y + b: its chunks                     barrier
// then ln_f and its chunks of the head. Every value comes from the kernels the general path
// calls on the same inputs (layernorm_row, quant_matmul_rows, attention_row, the GELU spans),
// each row's arithmetic the same, so the logits are bit-identical to it.
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/quant_matmul.h"
#include "model/forward.h"

namespace wafer {

namespace {
// Work-shares the rows of W among the region's threads in chunks of about 32 KiB of weights (a
// multiple of 16 rows), each thread one contiguous run of chunks (static: handing chunks out
// dynamically cost a third of the speed, the threads no longer streaming in order). Calls
// f(r0, r1) per chunk; the barrier at the end is the loop's own.
template <typename F>
void for_row_chunks(const QuantMatrix& w, const F& f) {
  const int64_t chunk = std::max<int64_t>(16, 32768 / quant_row_bytes(w.type, w.cols) / 16 * 16);
  const int64_t n = (w.rows + chunk - 1) / chunk;
#pragma omp for schedule(static)
  for (int64_t i = 0; i < n; ++i) f(i * chunk, std::min(w.rows, (i + 1) * chunk));
}

// WAFER_DECODE_REGION=0 turns the region off (the general path decodes), for A/B timings.
bool region_enabled() {
  const char* v = std::getenv("WAFER_DECODE_REGION");
  return !v || std::string(v) != "0";
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
#pragma omp parallel
  {
    DecodeThread& my = decode_threads_[size_t(omp_get_thread_num())];
    my.ln.resize(size_t(C));
    my.scores.resize(size_t(kAttentionRowScratch));
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
      for_row_chunks(qkv_w, [&](int64_t r0, int64_t r1) {
        quant_matmul_rows(a.qkv.data(), my.act, qkv_w, w.qkv_b, r0, r1, 1.0f);
      });
#pragma omp for schedule(dynamic)
      for (int64_t h = 0; h < H; ++h) {
        float* k = cache.k_f32() + h * D;  // [Tmax, C] rows, head h's D columns
        float* v = cache.v_f32() + h * D;
        std::memcpy(k + pos0 * C, a.qkv.data() + C + h * D, size_t(D) * sizeof(float));
        std::memcpy(v + pos0 * C, a.qkv.data() + 2 * C + h * D, size_t(D) * sizeof(float));
        attention_row(a.atty.data() + h * D, a.qkv.data() + h * D, k, v, pos0 + 1, C, D, attn_scale,
                      my.scores.data());
      }
      quantize_activation_row(my.act, proj_w.type, a.atty.data(), C);
      for_row_chunks(proj_w, [&](int64_t r0, int64_t r1) {
        quant_matmul_rows(a.res2.data(), my.act, proj_w, nullptr, r0, r1, 1.0f);
        for (int64_t i = r0; i < r1; ++i) a.res2[size_t(i)] = x[i] + a.res2[size_t(i)] + w.attn_proj_b[i];
      });
      layernorm_row(my.ln.data(), nullptr, a.res2.data(), w.ln2_w, w.ln2_b, C, eps);
      quantize_activation_row(my.act, fc_w.type, my.ln.data(), C);
      for_row_chunks(fc_w, [&](int64_t r0, int64_t r1) {
        quant_matmul_rows(a.fch.data(), my.act, fc_w, w.fc_b, r0, r1, 1.0f);
        gelu_span_(a.fch_gelu.data() + r0, a.fch.data() + r0, r1 - r0);
      });
      quantize_activation_row(my.act, fc_proj_w.type, a.fch_gelu.data(), F);
      for_row_chunks(fc_proj_w, [&](int64_t r0, int64_t r1) {
        quant_matmul_rows(out, my.act, fc_proj_w, nullptr, r0, r1, 1.0f);
        for (int64_t i = r0; i < r1; ++i) out[i] = a.res2[size_t(i)] + out[i] + w.fc_proj_b[i];
      });
    }
    const QuantMatrix& head = *m_.weight(m_.w.lm_head).quant;  // [Vl, C]
    layernorm_row(my.ln.data(), nullptr, s.resid[size_t(L % 2)].data(), m_.w.lnf_w, m_.w.lnf_b, C, eps);
    quantize_activation_row(my.act, head.type, my.ln.data(), C);
    for_row_chunks(head, [&](int64_t r0, int64_t r1) {
      quant_matmul_rows(logits_.data(), my.act, head, nullptr, r0, r1, out_scale);
    });
  }
}

bool ForwardPass::default_one_region_decode() { return region_enabled(); }

}  // namespace wafer
