// model/precision.cpp: the bf16 copy of the weights that bf16 GEMMs read, and releasing the fp32
// matrices when only inference will run.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <type_traits>

#include "core/error.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/rows_matmul.h"
#include "model/memory.h"
#include "model/model.h"

namespace wafer {

Precision set_precision(Model& m, Precision p) {
  m.precision = usable_precision(p);
  if (m.precision == Precision::BF16) {
    m.params_bf16.resize(size_t(bf16_copy_elems(m.config, m.shard, m.precision)));  // model/memory.h
    refresh_bf16_copy(m);
  } else {
    WAFER_CHECK(!m.fp32_matrices_released, "[precision] this model holds only bf16 matrices; it cannot return to fp32");
    std::vector<uint16_t>().swap(m.params_bf16);
  }
  return m.precision;
}

void refresh_bf16_copy(Model& m) {
  if (m.precision != Precision::BF16) return;
  WAFER_ASSERT(!m.fp32_matrices_released && m.params_bf16.size() == m.params.size());
  convert_to_bf16(m.params_bf16.data(), m.params.data(), int64_t(m.params.size()));
}

namespace {
// Gives the whole pages inside [p, p + n) floats back to the system (they read as zeros after).
void release_pages(float* p, int64_t n) {
  if (!p || n <= 0) return;
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const uintptr_t end = reinterpret_cast<uintptr_t>(p + n) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}
}  // namespace

void release_fp32_matrices(Model& m) {
  WAFER_CHECK(m.precision == Precision::BF16, "[precision] releasing the fp32 matrices needs --precision bf16");
  const ModelConfig& c = m.config;
  const Shard& sh = m.shard;
  const int64_t C = c.n_embd, Ca = sh.attn_width(c), Fl = sh.ffn(c), Vl = sh.vocab_rows();
  for (LayerWeights& l : m.w.layers) {
    release_pages(l.qkv_w, C * 3 * Ca);
    release_pages(l.attn_proj_w, Ca * C);
    release_pages(l.fc_w, C * Fl);
    release_pages(l.fc_proj_w, Fl * C);
  }
  release_pages(m.w.wte, Vl * C);
  if (m.w.lm_head != m.w.wte) release_pages(m.w.lm_head, Vl * C);
  m.fp32_matrices_released = true;
}

void pack_serving_panels(Model& m) {
  const bool bf16 = m.precision == Precision::BF16;
  if (!m.quant.empty() || (bf16 && !m.fp32_matrices_released) || !rows_panels_supported(m.precision)) return;
  const ModelConfig& c = m.config;
  const Shard& sh = m.shard;
  const int64_t C = c.n_embd, Ca = sh.attn_width(c), Fl = sh.ffn(c);
  auto pack_in_place = [](auto* w, int64_t in, int64_t out) {
    std::vector<std::remove_cv_t<std::remove_pointer_t<decltype(w)>>> panels(size_t(in * out));
    pack_rows_panels(panels.data(), w, in, out);
    std::copy(panels.begin(), panels.end(), w);
  };
  auto pack = [&](const float* w, int64_t in, int64_t out) {
    if (rows_panel_elems(m.precision, in, out) != in * out || m.serving_panels.count(w)) return;
    const int64_t at = w - m.params.data();
    if (bf16)
      pack_in_place(m.params_bf16.data() + at, in, out);
    else
      pack_in_place(m.params.data() + at, in, out);
    m.serving_panels.insert(w);
  };
  for (const LayerWeights& l : m.w.layers) {
    pack(l.qkv_w, C, 3 * Ca);
    pack(l.attn_proj_w, Ca, C);
    pack(l.fc_w, C, Fl);
    pack(l.fc_proj_w, Fl, C);
  }
}

std::optional<QuantType> matrix_quant_type(QuantType t, int64_t cols, bool is_head) {
  if (cols % quant_block_values(QuantType::Q8_0) != 0) return std::nullopt;
  const QuantType want = is_head && t != QuantType::Q8_0 ? QuantType::Q6_K : t;
  return cols % quant_block_values(want) == 0 ? want : QuantType::Q8_0;
}

namespace {

// Calls fn(w, rows, cols, is_head, conv1d) for every matrix quantize_matrices quantizes, as the
// rows it gets: the blocks' four (HF Conv1D [in, out] → rows [out, in], conv1d true) and the
// head (wte when tied, and an untied lm_head: [Vl, C], already rows along C).
// (The views are float* in a const Model too: the loop hands them out, quantize_matrices writes.)
template <class Fn>
void for_each_quantized_matrix(const Model& m, Fn&& fn) {
  const ModelConfig& c = m.config;
  const Shard& sh = m.shard;
  const int64_t C = c.n_embd, Ca = sh.attn_width(c), Fl = sh.ffn(c), Vl = sh.vocab_rows();
  for (const LayerWeights& l : m.w.layers) {
    fn(l.qkv_w, 3 * Ca, C, false, true);
    fn(l.attn_proj_w, C, Ca, false, true);
    fn(l.fc_w, Fl, C, false, true);
    fn(l.fc_proj_w, C, Fl, false, true);
  }
  if (m.w.wte) fn(m.w.wte, Vl, C, m.w.lm_head == m.w.wte, false);
  if (m.w.lm_head && m.w.lm_head != m.w.wte) fn(m.w.lm_head, Vl, C, true, false);
}

// Whether `given` holds w's blocks in the type and shape the policy gives it.
bool takes_given_blocks(const std::map<const float*, QuantMatrix>* given, const float* w, QuantType t, int64_t rows,
                        int64_t cols, bool is_head) {
  if (!given) return false;
  const auto it = given->find(w);
  const auto ty = matrix_quant_type(t, cols, is_head);
  return it != given->end() && ty && it->second.type == *ty && it->second.rows == rows && it->second.cols == cols;
}

}  // namespace

std::set<const float*> quantized_matrices(const Model& m, QuantType t) {
  std::set<const float*> out;
  for_each_quantized_matrix(m, [&](float* w, int64_t, int64_t cols, bool is_head, bool) {
    if (matrix_quant_type(t, cols, is_head)) out.insert(w);
  });
  return out;
}

void quantize_matrices(Model& m, QuantType t, const std::map<const float*, QuantMatrix>* given,
                       const MatrixFill& fill) {
  WAFER_CHECK(m.precision == Precision::F32 && !m.fp32_matrices_released && m.quant.empty(),
              "[precision] quantizing needs the model's fp32 matrices (precision fp32, nothing released)");
  // Each matrix: the given blocks in place where they are what the policy gives it, else its
  // fp32 values (filled now where the loader left them) quantized into quant_storage; then its
  // fp32 pages go back to the system.
  for_each_quantized_matrix(m, [&](float* w, int64_t rows, int64_t cols, bool is_head, bool conv1d) {
    const auto ty = matrix_quant_type(t, cols, is_head);
    if (!ty) return;
    if (takes_given_blocks(given, w, t, rows, cols, is_head)) {
      m.quant[w] = given->at(w);
    } else {
      if (fill) fill(w);
      m.quant_storage.push_back(conv1d ? quantize_matrix_conv1d(*ty, w, cols, rows)
                                       : quantize_matrix_rows(*ty, w, rows, cols));
      m.quant[w] = {*ty, rows, cols, m.quant_storage.back().data()};  // moving a vector keeps its buffer
    }
    release_pages(w, rows * cols);
  });
  // Matrices left in fp32 (rows not a multiple of 32) are still read from params.
  m.fp32_matrices_released = true;
}

void embed_token_rows(const Model& m, float* out, const int32_t* tokens, int64_t N, float scale) {
  const Shard& sh = m.shard;
  const int64_t v0 = sh.vocab_begin(), Vl = sh.vocab_rows(), C = m.config.n_embd;
  const WeightView wte = m.weight(m.w.wte);
  if (wte.quant)  // quantized inference: dequantize each row
    embedding_forward(out, tokens, *wte.quant, v0, Vl, N, C, scale);
  else if (m.fp32_matrices_released && wte.bf16)  // bf16 weights only: the bf16 table
    embedding_forward(out, tokens, wte.bf16, v0, Vl, N, C, scale);
  else
    embedding_forward(out, tokens, m.w.wte, v0, Vl, N, C, scale);
}

}  // namespace wafer
