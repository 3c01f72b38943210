// kernels/cpu/gemm.cpp: fp32 through OpenBLAS, bf16 through oneDNN's matmul primitive. A
// primitive is built once per shape (a few hundred microseconds) and kept: a training step
// calls the same dozen shapes every micro-batch.
#include "kernels/cpu/gemm.h"

#include <cblas.h>

#include <cstdio>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/cpu_isa.h"

namespace wafer {

Precision parse_precision(const std::string& s) {
  if (s == "fp32" || s == "f32") return Precision::F32;
  if (s == "bf16") return Precision::BF16;
  fail(str_cat("[precision] expected --precision fp32 or bf16, found '", s, "'"));
}

const char* precision_name(Precision p) { return p == Precision::BF16 ? "bf16" : "fp32"; }

bool bf16_gemm_supported() {
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
}

std::string gemm_isa_name() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}

Precision usable_precision(Precision wanted) {
  if (wanted != Precision::BF16 || bf16_gemm_supported()) return wanted;
  static bool warned = false;
  if (!warned)
    std::fprintf(stderr, "wafer: warning: --precision bf16 needs AVX512-BF16 or AMX, and this CPU offers %s; "
                 "running in fp32\n", gemm_isa_name().c_str());
  warned = true;
  return Precision::F32;
}

WAFER_KERNEL void convert_to_bf16(uint16_t* dst, const float* src, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

namespace {

struct Bf16Gemm {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool, float, float>;
  std::map<Key, dnnl::matmul> primitives;
  std::vector<uint16_t> scratch_a, scratch_b;
  std::mutex mu;

  // op(X) as the [rows, cols] matrix oneDNN reads: strides (ld, 1), or (1, ld) when transposed.
  static dnnl::memory::desc desc(int64_t rows, int64_t cols, int64_t ld, bool trans, dnnl::memory::data_type t) {
    return dnnl::memory::desc({rows, cols}, t, trans ? dnnl::memory::dims{1, ld} : dnnl::memory::dims{ld, 1});
  }

  dnnl::matmul& primitive(int64_t M, int64_t N, int64_t K, const GemmOperand& A, const GemmOperand& B, float alpha,
                          float beta, int64_t ldc) {
    const Key key{M, N, K, A.ld, B.ld, ldc, A.trans, B.trans, alpha, beta};
    auto it = primitives.find(key);
    if (it != primitives.end()) return it->second;
    using dt = dnnl::memory::data_type;
    dnnl::primitive_attr attr;
    if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
    if (beta != 0.0f) {
      dnnl::post_ops po;
      po.append_sum(beta);
      attr.set_post_ops(po);
    }
    dnnl::matmul::desc d(desc(M, K, A.ld, A.trans, dt::bf16), desc(K, N, B.ld, B.trans, dt::bf16),
                         dnnl::memory::desc({M, N}, dt::f32, dnnl::memory::dims{ldc, 1}));
    return primitives.emplace(key, dnnl::matmul(dnnl::matmul::primitive_desc(d, attr, engine))).first->second;
  }

  // The bf16 values of op(X) [rows, cols]: the caller's copy, or X rounded into `scratch` (then
  // packed, so its leading dimension becomes the stored row length).
  static const uint16_t* bf16_of(const GemmOperand& X, int64_t rows, int64_t cols, std::vector<uint16_t>& scratch,
                                 int64_t* ld) {
    *ld = X.ld;
    if (X.bf16) return X.bf16;
    WAFER_ASSERT(X.f32);
    const int64_t stored_rows = X.trans ? cols : rows, stored_cols = X.trans ? rows : cols;
    scratch.resize(size_t(stored_rows * stored_cols));
    if (X.ld == stored_cols) {
      convert_to_bf16(scratch.data(), X.f32, stored_rows * stored_cols);
    } else {
      for (int64_t r = 0; r < stored_rows; ++r)
        convert_to_bf16(scratch.data() + r * stored_cols, X.f32 + r * X.ld, stored_cols);
    }
    *ld = stored_cols;
    return scratch.data();
  }

  void run(int64_t M, int64_t N, int64_t K, float alpha, GemmOperand A, GemmOperand B, float beta, float* C,
           int64_t ldc) {
    std::lock_guard<std::mutex> lock(mu);
    const uint16_t* a = bf16_of(A, M, K, scratch_a, &A.ld);
    const uint16_t* b = bf16_of(B, K, N, scratch_b, &B.ld);
    dnnl::matmul& mm = primitive(M, N, K, A, B, alpha, beta, ldc);
    using dt = dnnl::memory::data_type;
    dnnl::memory am(desc(M, K, A.ld, A.trans, dt::bf16), engine, const_cast<uint16_t*>(a));
    dnnl::memory bm(desc(K, N, B.ld, B.trans, dt::bf16), engine, const_cast<uint16_t*>(b));
    dnnl::memory cm(dnnl::memory::desc({M, N}, dt::f32, dnnl::memory::dims{ldc, 1}), engine, C);
    mm.execute(stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
    stream.wait();
  }
};

Bf16Gemm& bf16_gemm() {
  static Bf16Gemm g;
  return g;
}

}  // namespace

void gemm(Precision p, int64_t M, int64_t N, int64_t K, float alpha, const GemmOperand& A, const GemmOperand& B,
          float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (p == Precision::BF16) {
    bf16_gemm().run(M, N, K, alpha, A, B, beta, C, ldc);
    return;
  }
  WAFER_ASSERT(A.f32 && B.f32);
  cblas_sgemm(CblasRowMajor, A.trans ? CblasTrans : CblasNoTrans, B.trans ? CblasTrans : CblasNoTrans, int(M), int(N),
              int(K), alpha, A.f32, int(A.ld), B.f32, int(B.ld), beta, C, int(ldc));
}

}  // namespace wafer
