// model/precision.cpp: the bf16 copy of the weights that bf16 GEMMs read, and releasing the fp32
// matrices when only inference will run.
#include <sys/mman.h>
#include <unistd.h>

#include "core/error.h"
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

}  // namespace wafer
