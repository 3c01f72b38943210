// kernels/cpu/matmul.cpp: sgemm calls. OpenBLAS (OpenMP build) runs on the same libgomp
// thread pool as our own kernels, so the two never spin against each other.
#include "kernels/cpu/matmul.h"

#include <cblas.h>

#include <cstring>

namespace wafer {

void matmul_forward(float* out, const float* inp, const float* w, const float* bias, int64_t N, int64_t C, int64_t OC) {
  float beta = 0.0f;
  if (bias) {
    for (int64_t n = 0; n < N; ++n) std::memcpy(out + n * OC, bias, size_t(OC) * sizeof(float));
    beta = 1.0f;
  }
  if (N == 1) {  // decode: a matrix-vector product, bound by reading w once; gemm would pack it first
    cblas_sgemv(CblasRowMajor, CblasTrans, int(C), int(OC), 1.0f, w, int(OC), inp, 1, beta, out, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(N), int(OC), int(C), 1.0f, inp, int(C), w, int(OC), beta,
              out, int(OC));
}

void matmul_forward_transposed(float* out, const float* inp, const float* w, int64_t N, int64_t C, int64_t V,
                               float scale) {
  if (N == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, int(V), int(C), scale, w, int(C), inp, 1, 0.0f, out, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(N), int(V), int(C), scale, inp, int(C), w, int(C), 0.0f,
              out, int(V));
}

void matmul_backward(float* dinp, float* dw, float* dbias, const float* dout, const float* inp, const float* w,
                     int64_t N, int64_t C, int64_t OC) {
  if (dinp)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(N), int(C), int(OC), 1.0f, dout, int(OC), w, int(OC), 1.0f,
                dinp, int(C));
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(C), int(OC), int(N), 1.0f, inp, int(C), dout, int(OC), 1.0f,
              dw, int(OC));
  if (dbias) bias_backward(dbias, dout, N, OC);
}

void bias_backward(float* dbias, const float* dout, int64_t N, int64_t OC) {
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < OC; ++o) {
    float s = 0.0f;
    for (int64_t n = 0; n < N; ++n) s += dout[n * OC + o];
    dbias[o] += s;
  }
}

void matmul_transposed_backward(float* dinp, float* dw, const float* dout, const float* inp, const float* w, int64_t N,
                                int64_t C, int64_t V, float scale) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(N), int(C), int(V), scale, dout, int(V), w, int(C), 1.0f,
              dinp, int(C));
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(V), int(C), int(N), scale, dout, int(V), inp, int(C), 1.0f,
              dw, int(C));
}

void matmul_forward_naive(float* out, const float* inp, const float* w, const float* bias, int64_t N, int64_t C,
                          int64_t OC) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < OC; ++o) {
      double acc = bias ? bias[o] : 0.0;
      for (int64_t c = 0; c < C; ++c) acc += double(inp[n * C + c]) * double(w[c * OC + o]);
      out[n * OC + o] = float(acc);
    }
}

}  // namespace wafer
