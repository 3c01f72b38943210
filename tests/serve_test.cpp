// tests/serve_test.cpp: `wafer serve` end to end on loopback, plus its pieces: the
// batch-invariant GEMMs, the batched forward (alone vs among others, bit for bit), stop strings
// and UTF-8 holding. The server runs a tiny random model from `wafer init` on a free port; each
// test's waits are bounded and the server is killed at the end, also on failure.
#include <gtest/gtest.h>
#include <omp.h>
#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/dtype.h"
#include "core/error.h"
#include "infer/kv_cache.h"
#include "kernels/cpu/attention_rows.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/rows_matmul.h"
#include "model/batch_forward.h"
#include "model/forward.h"
#include "serve/openai_json.h"
#include "serve_client.h"
#include "test_util.h"

namespace wafer {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// ---- pieces ----

TEST(RowsMatmul, RowsAreIndependentOfTheBatchAndMatchTheNaiveProduct) {
  for (int64_t OC : {48, 200, 1000}) {
    const int64_t C = 37, N = 16;
    auto x = test::randn(size_t(N * C), 1), w = test::randn(size_t(C * OC), 2), b = test::randn(size_t(OC), 3);
    std::vector<float> all(static_cast<size_t>(N * OC)), one(static_cast<size_t>(OC)), ref(static_cast<size_t>(N * OC));
    rows_matmul(all.data(), x.data(), w.data(), b.data(), N, C, OC);
    matmul_forward_naive(ref.data(), x.data(), w.data(), b.data(), N, C, OC);
    for (int64_t n = 0; n < N; ++n) {  // one row (the decode loop) vs a row of the batch (the tiles)
      rows_matmul(one.data(), x.data() + n * C, w.data(), b.data(), 1, C, OC);
      EXPECT_EQ(0, std::memcmp(one.data(), all.data() + n * OC, size_t(OC) * 4)) << "row " << n << " OC " << OC;
    }
    for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(all[i], ref[i], 1e-4f) << i;
    std::vector<float> three(static_cast<size_t>(3 * OC));
    rows_matmul(three.data(), x.data() + 5 * C, w.data(), nullptr, 3, C, OC);
    rows_matmul(all.data(), x.data(), w.data(), nullptr, N, C, OC);
    EXPECT_EQ(0, std::memcmp(three.data(), all.data() + 5 * OC, three.size() * 4)) << "no bias, OC " << OC;
    // The head form: out[n, v] = scale · x[n] · w[v].
    std::vector<float> h(static_cast<size_t>(N * OC)), h1(static_cast<size_t>(OC));
    auto wt = test::randn(size_t(OC * C), 4);
    rows_matmul_transposed(h.data(), x.data(), wt.data(), N, C, OC, 0.5f);
    for (int64_t n = 0; n < N; ++n) {
      rows_matmul_transposed(h1.data(), x.data() + n * C, wt.data(), 1, C, OC, 0.5f);
      EXPECT_EQ(0, std::memcmp(h1.data(), h.data() + n * OC, size_t(OC) * 4)) << "head row " << n;
      for (int64_t v = 0; v < OC; ++v) {
        double s = 0;
        for (int64_t c = 0; c < C; ++c) s += double(x[size_t(n * C + c)]) * wt[size_t(v * C + c)];
        ASSERT_NEAR(h[size_t(n * OC + v)], 0.5 * s, 1e-4) << n << "," << v;
      }
    }
  }
}

TEST(RowsMatmul, Bf16WeightsRowsAreIndependentOfTheBatch) {
  for (auto [C, OC] : {std::pair<int64_t, int64_t>{37, 48}, {37, 200}, {64, 100}}) {  // odd C: a row paired with 0
    const int64_t N = 16;
    auto x = test::randn(size_t(N * C), 5), w = test::randn(size_t(C * OC), 6), bias = test::randn(size_t(OC), 7);
    std::vector<uint16_t> w16(w.size());
    convert_to_bf16(w16.data(), w.data(), int64_t(w.size()));
    std::vector<float> all(static_cast<size_t>(N * OC)), one(static_cast<size_t>(OC));
    rows_matmul(all.data(), x.data(), WeightView(w.data(), w16.data()), bias.data(), N, C, OC);
    for (int64_t n = 0; n < N; ++n) {
      rows_matmul(one.data(), x.data() + n * C, WeightView(w.data(), w16.data()), bias.data(), 1, C, OC);
      EXPECT_EQ(0, std::memcmp(one.data(), all.data() + n * OC, size_t(OC) * 4)) << "row " << n << " OC " << OC;
      for (int64_t o = 0; o < OC; ++o) {  // within bf16's rounding of the activations
        double ref = bias[size_t(o)];
        for (int64_t c = 0; c < C; ++c) ref += double(x[size_t(n * C + c)]) * bf16_to_f32(w16[size_t(c * OC + o)]);
        ASSERT_NEAR(all[size_t(n * OC + o)], ref, 0.1) << n << "," << o << " C " << C;
      }
    }
    rows_matmul_transposed(all.data(), x.data(), WeightView(w.data(), w16.data()), N, C, OC, 1.0f);  // w as [OC, C]
    for (int64_t n = 0; n < N; ++n) {
      rows_matmul_transposed(one.data(), x.data() + n * C, WeightView(w.data(), w16.data()), 1, C, OC, 1.0f);
      EXPECT_EQ(0, std::memcmp(one.data(), all.data() + n * OC, size_t(OC) * 4)) << "head row " << n;
      for (int64_t v = 0; v < OC; ++v) {  // within bf16's rounding of the activations (AVX512-BF16 products)
        double ref = 0;
        for (int64_t c = 0; c < C; ++c) ref += double(x[size_t(n * C + c)]) * bf16_to_f32(w16[size_t(v * C + c)]);
        ASSERT_NEAR(all[size_t(n * OC + v)], ref, 0.1) << n << "," << v;
      }
    }
  }
}

// Inputs longer than a chunk of 128 rows: the decode streams (up to 8 rows, threads splitting
// the chunks) and the tiles (threads splitting the columns) add the same partials in the same
// order, at any thread count; an odd C pairs bf16's last row with zeros in the last chunk.
TEST(RowsMatmul, ManyChunksGiveTheSameBitsForAnyRowsAndThreads) {
  const Isa saved = kernel_isa();
  for (const auto& [isa, C, OC] : {std::tuple{Isa::Avx512, int64_t(300), int64_t(200)},
                                   {Isa::Avx512, int64_t(301), int64_t(96)},
                                   {Isa::Avx512, int64_t(769), int64_t(130)},
                                   {Isa::Avx2, int64_t(301), int64_t(200)},
                                   {Isa::Generic, int64_t(300), int64_t(130)}}) {
    if (set_kernel_isa(isa) != isa) continue;  // this CPU lacks it
    const int64_t N = 9;
    auto x = test::randn(size_t(N * C), 21), w = test::randn(size_t(C * OC), 22), bias = test::randn(size_t(OC), 23);
    std::vector<uint16_t> w16(w.size());
    convert_to_bf16(w16.data(), w.data(), int64_t(w.size()));
    for (bool bf16 : {false, true}) {
      const WeightView wv = bf16 ? WeightView(w.data(), w16.data()) : WeightView(w.data());
      std::vector<float> all(static_cast<size_t>(N * OC));
      rows_matmul(all.data(), x.data(), wv, bias.data(), N, C, OC);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t o = 0; o < OC; ++o) {
          double r = bias[size_t(o)];
          for (int64_t c = 0; c < C; ++c)
            r += double(x[size_t(n * C + c)]) * (bf16 ? bf16_to_f32(w16[size_t(c * OC + o)]) : w[size_t(c * OC + o)]);
          ASSERT_NEAR(all[size_t(n * OC + o)], r, bf16 ? 0.3 : 1e-3) << n << "," << o << " C " << C;
        }
      const int threads = omp_get_max_threads();
      for (int t : {1, 2, 3}) {
        omp_set_num_threads(t);
        for (int64_t rows = 1; rows <= 8; ++rows) {  // streams (rows 1-8 of 9) against the tiles
          std::vector<float> some(static_cast<size_t>(rows * OC));
          rows_matmul(some.data(), x.data() + C, wv, bias.data(), rows, C, OC);
          EXPECT_EQ(0, std::memcmp(some.data(), all.data() + OC, some.size() * 4))
              << rows << " rows, " << t << " threads, C " << C << (bf16 ? " bf16" : " fp32") << " " << isa_name(isa);
        }
      }
      omp_set_num_threads(threads);
    }
  }
  set_kernel_isa(saved);
}

// The serving panels hold the same fp32 or bf16 values in the order the tiles read them, so
// every row count and thread count gives the plain layout's bits (column and row tails
// included), and the layers that cannot read panels refuse them.
TEST(RowsMatmul, PanelsGiveThePlainLayoutsBits) {
  for (const Precision p : {Precision::F32, Precision::BF16}) {
    if (!rows_panels_supported(p)) continue;  // this CPU lacks AVX-512 (or AVX512-BF16)
    for (const auto& [C, OC] : {std::pair{int64_t(300), int64_t(200)}, {int64_t(301), int64_t(96)},
                                {int64_t(769), int64_t(130)}, {int64_t(64), int64_t(192)}}) {
      const bool bf16 = p == Precision::BF16;
      const int64_t N = 17;
      auto x = test::randn(size_t(N * C), 31), w = test::randn(size_t(C * OC), 32), bias = test::randn(size_t(OC), 33);
      std::vector<uint16_t> w16(w.size());
      convert_to_bf16(w16.data(), w.data(), int64_t(w.size()));
      const int64_t elems = rows_panel_elems(p, C, OC);
      EXPECT_EQ(elems, (bf16 ? C + C % 2 : C) * ((OC + 63) / 64 * 64));
      std::vector<float> panels32(bf16 ? 0 : size_t(elems), NAN);
      std::vector<uint16_t> panels16(bf16 ? size_t(elems) : 0, 0xffff);
      if (bf16)
        pack_rows_panels(panels16.data(), w16.data(), C, OC);
      else
        pack_rows_panels(panels32.data(), w.data(), C, OC);
      const WeightView plain_view = bf16 ? WeightView(w.data(), w16.data()) : WeightView(w.data());
      const WeightView panel_view = bf16 ? WeightView::panels(panels16.data()) : WeightView::panels(panels32.data());
      std::vector<float> plain(static_cast<size_t>(N * OC));
      rows_matmul(plain.data(), x.data(), plain_view, bias.data(), N, C, OC);
      const int threads = omp_get_max_threads();
      for (int t : {1, 2, 3}) {
        omp_set_num_threads(t);
        for (int64_t rows : {int64_t(1), int64_t(2), int64_t(5), int64_t(8), int64_t(9), int64_t(16)}) {
          std::vector<float> got(static_cast<size_t>(rows * OC));
          rows_matmul(got.data(), x.data() + C, panel_view, bias.data(), rows, C, OC);
          EXPECT_EQ(0, std::memcmp(got.data(), plain.data() + OC, got.size() * 4))
              << rows << " rows, " << t << " threads, C " << C << " OC " << OC << (bf16 ? " bf16" : " fp32");
        }
      }
      omp_set_num_threads(threads);
      std::vector<float> out(static_cast<size_t>(N * OC));
      EXPECT_THROW(matmul_forward(out.data(), x.data(), panel_view, nullptr, 1, C, OC), Error);
      EXPECT_THROW(matmul_forward(out.data(), x.data(), panel_view, nullptr, 4, C, OC), Error);
      EXPECT_THROW(rows_matmul_transposed(out.data(), x.data(), panel_view, 1, C, OC, 1.0f), Error);
    }
  }
}

// Where the CPU has AMX tiles, bf16 weights take them for every row count: panels and the plain
// layout (packed strip by strip) give the same bits, whatever the rows, their position in a tile
// or the thread count, and the sums match a float64 product of the bf16 values. The tiles' bits
// are not the dot products' (which is why one path serves every N).
TEST(RowsMatmul, AmxTilesGiveEveryRowCountTheSameBits) {
  const Isa saved = kernel_isa();
  if (set_kernel_isa(Isa::Amx) != Isa::Amx) {
    set_kernel_isa(saved);
    GTEST_SKIP() << "this CPU has no AMX bf16 tiles";
  }
  const int64_t N = 35;  // three tiles of rows, the last one partial
  for (const auto& [C, OC] :
       {std::pair{int64_t(32), int64_t(100)}, {int64_t(96), int64_t(64)}, {int64_t(768), int64_t(200)}}) {
    auto x = test::randn(size_t(N * C), 41), w = test::randn(size_t(C * OC), 42), bias = test::randn(size_t(OC), 43);
    std::vector<uint16_t> x16(x.size()), w16(w.size());
    convert_to_bf16(x16.data(), x.data(), int64_t(x.size()));
    convert_to_bf16(w16.data(), w.data(), int64_t(w.size()));
    std::vector<uint16_t> panels(size_t(rows_panel_elems(Precision::BF16, C, OC)));
    pack_rows_panels(panels.data(), w16.data(), C, OC);
    const WeightView plain_view(w.data(), w16.data()), panel_view = WeightView::panels(panels.data());
    std::vector<float> plain(size_t(N * OC)), packed(size_t(N * OC));
    rows_matmul(plain.data(), x.data(), plain_view, bias.data(), N, C, OC);
    rows_matmul(packed.data(), x.data(), panel_view, bias.data(), N, C, OC);
    EXPECT_EQ(0, std::memcmp(plain.data(), packed.data(), plain.size() * 4)) << "C " << C;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < OC; ++o) {
        double ref = bias[size_t(o)], mag = std::fabs(ref);
        for (int64_t c = 0; c < C; ++c) {
          const double t = double(bf16_to_f32(x16[size_t(n * C + c)])) * bf16_to_f32(w16[size_t(c * OC + o)]);
          ref += t, mag += std::fabs(t);
        }
        ASSERT_NEAR(plain[size_t(n * OC + o)], ref, 1e-6 * mag + 1e-6) << n << "," << o << " C " << C;
      }
    const int threads = omp_get_max_threads();
    for (int t : {1, 2, 3}) {
      omp_set_num_threads(t);
      for (int64_t rows : {int64_t(1), int64_t(2), int64_t(15), int64_t(16), int64_t(17), int64_t(32)}) {
        std::vector<float> got(size_t(rows * OC));  // rows 3 .. 3 + rows: each at another place in its tile
        for (const WeightView& view : {plain_view, panel_view}) {
          rows_matmul(got.data(), x.data() + 3 * C, view, bias.data(), rows, C, OC);
          EXPECT_EQ(0, std::memcmp(got.data(), plain.data() + 3 * OC, got.size() * 4))
              << rows << " rows, " << t << " threads, C " << C << (view.bf16_panels ? " panels" : " plain");
        }
      }
    }
    omp_set_num_threads(threads);
    // The head: 149 vocabulary rows are two blocks of four tiles, one of one tile, and 5 rows
    // (past the last tile) by the dot products.
    const int64_t V = 149;
    auto h = test::randn(size_t(V * C), 44);
    std::vector<uint16_t> h16(h.size());
    convert_to_bf16(h16.data(), h.data(), int64_t(h.size()));
    std::vector<float> logits(static_cast<size_t>(N * V)), one(static_cast<size_t>(V));
    rows_matmul_transposed(logits.data(), x.data(), WeightView(h.data(), h16.data()), N, C, V, 0.5f);
    for (int64_t n = 0; n < N; ++n) {
      rows_matmul_transposed(one.data(), x.data() + n * C, WeightView(h.data(), h16.data()), 1, C, V, 0.5f);
      EXPECT_EQ(0, std::memcmp(one.data(), logits.data() + n * V, one.size() * 4)) << "head row " << n << " C " << C;
      for (int64_t v = 0; v < V; ++v) {
        double ref = 0, mag = 0;
        for (int64_t c = 0; c < C; ++c) {
          const double t = double(bf16_to_f32(x16[size_t(n * C + c)])) * bf16_to_f32(h16[size_t(v * C + c)]);
          ref += t, mag += std::fabs(t);
        }
        ASSERT_NEAR(logits[size_t(n * V + v)], 0.5 * ref, 1e-6 * mag + 1e-6) << n << "," << v << " C " << C;
      }
    }
    set_kernel_isa(Isa::Avx512);  // the dot products' bits differ: the tiles were in use
    std::vector<float> dots(size_t(N * OC));
    rows_matmul(dots.data(), x.data(), plain_view, bias.data(), N, C, OC);
    if (C > 32) {
      EXPECT_NE(0, std::memcmp(dots.data(), plain.data(), dots.size() * 4)) << "C " << C;
    }
    set_kernel_isa(Isa::Amx);
  }
  set_kernel_isa(saved);
}

// Per-token attention over KV slots: a row's result does not depend on the rows beside it, the
// AVX-512 path gives the portable path's bits, and both match a float64 softmax.
TEST(AttentionRows, RowsAreIndependentOfTheBatchAndEveryIsaGivesTheSameBits) {
  const int64_t H = 2, D = 40, slots = 3, Tmax = 24, N = 6;  // D = 40: a 16-lane tail
  RowsAttentionShape s;
  s.N = N, s.H = H, s.D = D, s.q_row = 3 * H * D, s.kv_row = H * D, s.head_stride = D, s.slot_stride = Tmax * H * D;
  s.scale = 1.0f / std::sqrt(float(D));
  auto q = test::randn(size_t(N * s.q_row), 11), k = test::randn(size_t(slots * s.slot_stride), 12),
       v = test::randn(size_t(slots * s.slot_stride), 13);
  const std::vector<int32_t> slot = {0, 2, 1, 0, 2, 1}, pos = {0, 5, 23, 17, 1, 9};
  auto run = [&](int64_t first, int64_t n) {
    RowsAttentionShape t = s;
    t.N = n;
    std::vector<float> out(static_cast<size_t>(n * H * D));
    attention_rows_forward(out.data(), q.data() + first * s.q_row, k.data(), v.data(), slot.data() + first,
                           pos.data() + first, t);
    return out;
  };
  const std::vector<float> all = run(0, N);
  for (int64_t n = 0; n < N; ++n) {
    const std::vector<float> one = run(n, 1);
    EXPECT_EQ(0, std::memcmp(one.data(), all.data() + n * H * D, one.size() * 4)) << "row " << n;
    for (int64_t h = 0; h < H; ++h) {  // float64 reference
      const int64_t T = pos[size_t(n)] + 1;
      std::vector<double> p(static_cast<size_t>(T));
      double mx = -1e300, sum = 0;
      for (int64_t j = 0; j < T; ++j) {
        double d = 0;
        for (int64_t e = 0; e < D; ++e)
          d += double(q[size_t(n * s.q_row + h * D + e)]) * k[size_t(slot[size_t(n)] * s.slot_stride + j * s.kv_row + h * D + e)];
        p[size_t(j)] = d * s.scale, mx = std::max(mx, p[size_t(j)]);
      }
      for (auto& x : p) sum += x = std::exp(x - mx);
      for (int64_t e = 0; e < D; ++e) {
        double o = 0;
        for (int64_t j = 0; j < T; ++j)
          o += p[size_t(j)] * v[size_t(slot[size_t(n)] * s.slot_stride + j * s.kv_row + h * D + e)];
        ASSERT_NEAR(all[size_t(n * H * D + h * D + e)], o / sum, 1e-5) << n << "," << h << "," << e;
      }
    }
  }
  const Isa saved = kernel_isa();
  set_kernel_isa(Isa::Generic);
  const std::vector<float> generic = run(0, N);
  set_kernel_isa(saved);
  EXPECT_EQ(0, std::memcmp(generic.data(), all.data(), all.size() * 4));
}

// A bf16 cache: each element widened exactly, so the result is the fp32 cache's over the same
// rounded values, bit for bit, on every ISA and alone or in a batch.
TEST(AttentionRows, ABf16CacheGivesTheBitsOfAnFp32CacheOfTheRoundedValues) {
  const int64_t H = 3, D = 24, slots = 2, Tmax = 40, N = 5;  // D = 24: a masked tail in every row
  RowsAttentionShape s;
  // The serving cache's head-major layout: a head's positions D apart, heads Tmax·D apart.
  s.N = N, s.H = H, s.D = D, s.q_row = 3 * H * D, s.kv_row = D, s.head_stride = Tmax * D, s.slot_stride = Tmax * H * D;
  s.scale = 1.0f / std::sqrt(float(D));
  auto q = test::randn(size_t(N * s.q_row), 21), k = test::randn(size_t(slots * s.slot_stride), 22),
       v = test::randn(size_t(slots * s.slot_stride), 23);
  std::vector<uint16_t> k16(k.size()), v16(v.size());
  convert_to_bf16(k16.data(), k.data(), int64_t(k.size()));
  convert_to_bf16(v16.data(), v.data(), int64_t(v.size()));
  std::vector<float> kr(k.size()), vr(v.size());
  for (size_t i = 0; i < k.size(); ++i) kr[i] = bf16_to_f32(k16[i]), vr[i] = bf16_to_f32(v16[i]);
  const std::vector<int32_t> slot = {1, 0, 1, 0, 1}, pos = {39, 0, 7, 31, 16};
  auto run = [&](bool bf16, int64_t first, int64_t n) {
    RowsAttentionShape t = s;
    t.N = n, t.kv_dtype = bf16 ? DType::BF16 : DType::F32;
    std::vector<float> out(static_cast<size_t>(n * H * D));
    attention_rows_forward(out.data(), q.data() + first * s.q_row, bf16 ? (const void*)k16.data() : kr.data(),
                           bf16 ? (const void*)v16.data() : vr.data(), slot.data() + first, pos.data() + first, t);
    return out;
  };
  const Isa saved = kernel_isa();
  for (Isa isa : {saved, Isa::Generic}) {
    set_kernel_isa(isa);
    const std::vector<float> want = run(false, 0, N), got = run(true, 0, N);
    EXPECT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * 4)) << isa_name(isa);
    for (int64_t n = 0; n < N; ++n) {
      const std::vector<float> one = run(true, n, 1);
      EXPECT_EQ(0, std::memcmp(one.data(), got.data() + n * H * D, one.size() * 4)) << "row " << n << " " << isa_name(isa);
    }
  }
  set_kernel_isa(saved);
}

ModelConfig tiny_config() {
  ModelConfig c;
  c.n_layer = 2, c.n_embd = 32, c.n_head = 4, c.n_positions = 64, c.vocab_size = 97;
  return c;
}

TEST(BatchForward, ASequenceAloneOrAmongOthersIsBitIdenticalAndMatchesForwardPass) {
  Model m(tiny_config());
  init_weights(m, {.seed = 7});
  const std::vector<int32_t> seq = {5, 17, 3, 88, 42, 1, 9, 60, 33, 12};
  const int64_t V = m.config.vocab_size, T = int64_t(seq.size());
  // Reference: the training/inference ForwardPass over the whole sequence.
  ForwardPass fp(m);
  const float* ref = fp.forward(seq.data(), 1, T, 0, {}, LogitsRows::All);
  std::vector<float> want(ref, ref + T * V);

  // Alone: prompt in chunks of 3, one slot.
  auto run = [&](int64_t slots, int32_t my_slot, bool crowd, DType kv_dtype) {
    KVCache cache(m, slots, 32, kv_dtype);
    BatchForward bf(m);
    std::vector<float> got;
    for (int64_t t0 = 0; t0 < T; t0 += 3) {
      TokenBatch b;
      if (crowd)  // other sequences' tokens before and after ours
        for (int32_t s = 0; s < slots; ++s)
          if (s != my_slot) b.add(int32_t((s * 7 + t0) % V), s, int32_t(t0 / 3), true);
      const int64_t n = std::min<int64_t>(3, T - t0);
      const int64_t mine_at = b.size();
      for (int64_t i = 0; i < n; ++i) b.add(seq[size_t(t0 + i)], my_slot, int32_t(t0 + i), true);
      if (crowd) b.add(7, (my_slot + 1) % int32_t(slots), int32_t(t0 / 3) + 20, false);
      const float* lg = bf.forward(b, cache.views(), slots);
      got.insert(got.end(), lg + mine_at * V, lg + (mine_at + n) * V);
    }
    return got;
  };
  const std::vector<float> alone = run(1, 0, false, DType::F32), among = run(16, 9, true, DType::F32);
  ASSERT_EQ(alone.size(), want.size());
  EXPECT_EQ(0, std::memcmp(alone.data(), among.data(), alone.size() * 4)) << "batch-dependent logits";
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(alone[i], want[i], 2e-4f) << i;
  // A bf16 cache: as batch-invariant, and within its rounding (2^-9 of each K and V) of fp32.
  const std::vector<float> alone16 = run(1, 0, false, DType::BF16), among16 = run(16, 9, true, DType::BF16);
  EXPECT_EQ(0, std::memcmp(alone16.data(), among16.data(), alone16.size() * 4)) << "batch-dependent bf16-cache logits";
  EXPECT_NE(0, std::memcmp(alone16.data(), alone.data(), alone.size() * 4)) << "the bf16 cache was not used";
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(alone16[i], want[i], 2e-2f) << i;
}

// A served model holds its block matrices as panels: its logits are the plain layout's, bit for
// bit, alone and among others, in fp32 and in bf16.
class ServingPanels : public ::testing::TestWithParam<Precision> {};

TEST_P(ServingPanels, GiveThePlainLayoutsBits) {
  const Precision p = GetParam();
  if (!rows_panels_supported(p)) GTEST_SKIP() << "panels need AVX-512 (bf16: AVX512-BF16)";
  ModelConfig c = tiny_config();
  c.n_embd = 64;  // every block matrix's columns a multiple of 64, so all four are packed
  auto load = [&](bool panels) {
    auto m = std::make_unique<Model>(c);
    init_weights(*m, {.seed = 8});
    if (p == Precision::BF16) {
      EXPECT_EQ(set_precision(*m, Precision::BF16), Precision::BF16);
      release_fp32_matrices(*m);
    }
    if (panels) pack_serving_panels(*m);
    return m;
  };
  const auto plain = load(false), packed = load(true);
  EXPECT_EQ(packed->serving_panels.size(), size_t(4 * c.n_layer));
  auto run = [&](const Model& m, bool crowd) {
    const int64_t slots = 16, V = c.vocab_size;
    KVCache cache(m, slots, 32, DType::BF16);
    BatchForward bf(m);
    std::vector<float> got;
    for (int32_t t = 0; t < 12; t += 4) {
      TokenBatch b;
      if (crowd)
        for (int32_t s = 1; s < slots; ++s) b.add((s * 5 + t) % 97, s, t / 4, true);
      const int64_t mine = b.size();
      for (int32_t i = 0; i < 4; ++i) b.add((t + i) * 11 % 97, 0, t + i, true);
      const float* lg = bf.forward(b, cache.views(), slots);
      got.insert(got.end(), lg + mine * V, lg + (mine + 4) * V);
    }
    return got;
  };
  const std::vector<float> want = run(*plain, false);
  for (bool crowd : {false, true}) {
    const std::vector<float> got = run(*packed, crowd);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * 4)) << (crowd ? "among 15 others" : "alone");
  }
  ForwardPass fp(*packed);  // the prefill GEMMs cannot read the panels: a clear refusal
  const int32_t tok = 3;
  try {
    fp.forward(&tok, 1, 1, 0, {}, LogitsRows::All);
    ADD_FAILURE() << "ForwardPass read the panels";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("panels"), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(BatchForward, ServingPanels, ::testing::Values(Precision::F32, Precision::BF16),
                         [](const auto& info) { return std::string(info.param == Precision::F32 ? "fp32" : "bf16"); });

TEST(ChoiceText, StopStringsAcrossTokensAndWholeUtf8Characters) {
  serve::ChoiceText t({"END", "\nUser:"});
  EXPECT_FALSE(t.append("Hello E"));
  EXPECT_EQ(t.take(false), "Hello ");  // "E" may start "END"
  EXPECT_FALSE(t.append("N"));
  EXPECT_EQ(t.take(false), "");
  EXPECT_TRUE(t.append("Dless"));
  EXPECT_EQ(t.take(true), "");
  EXPECT_EQ(t.text(), "Hello ");

  serve::ChoiceText u({});
  EXPECT_FALSE(u.append("a\xc3"));  // first byte of "é"
  EXPECT_EQ(u.take(false), "a");
  EXPECT_FALSE(u.append("\xa9\xe2\x82"));  // rest of "é", two bytes of "€"
  EXPECT_EQ(u.take(false), "\xc3\xa9");
  EXPECT_FALSE(u.append("\xac"));
  EXPECT_EQ(u.take(false), "\xe2\x82\xac");
  EXPECT_FALSE(u.append("\xe2"));
  EXPECT_EQ(u.take(true), "\xe2");  // the end flushes what is left
}

TEST(ChatTemplate, PlainTurns) {
  const serve::json m = serve::json::parse(
      R"([{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello."},{"role":"user","content":"Bye"}])");
  EXPECT_EQ(serve::chat_prompt(m), "Be brief.\n\nUser: Hi\n\nAssistant: Hello.\n\nUser: Bye\n\nAssistant:");
}

// ---- the server ----

int connect_loopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET, a.sin_port = htons(uint16_t(port));
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
  return fd;
}

class Serve : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess(tiny_model(), {"--parallel", "16", "--max-queue", "48"});
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_GT(server_->port(), 0) << "server did not start:\n" << server_->log(); }
  int port() const { return server_->port(); }
  static ServerProcess* server_;
};
ServerProcess* Serve::server_ = nullptr;

TEST_F(Serve, HealthModelsMetricsTokenize) {
  EXPECT_EQ(get(port(), "/health").status, 200);
  Reply m = get(port(), "/v1/models");
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.body["data"][0]["object"], "model");
  Reply t = post(port(), "/tokenize", R"({"content":"Hello world"})");
  ASSERT_EQ(t.status, 200);
  EXPECT_EQ(t.body["tokens"], json::parse("[15496, 995]"));
  Reply d = post(port(), "/detokenize", R"({"tokens":[15496, 995]})");
  EXPECT_EQ(d.body["content"], "Hello world");
  post(port(), "/v1/completions", R"({"prompt":"a","max_tokens":2})");
  Reply mt = get(port(), "/metrics");
  for (const char* name : {"wafer_requests_total", "wafer_prompt_tokens_total", "wafer_generated_tokens_total",
                           "wafer_queue_length", "wafer_busy_slots", "wafer_time_to_first_token_seconds_bucket",
                           "wafer_inter_token_latency_seconds_count"})
    EXPECT_NE(mt.raw.find(name), std::string::npos) << name;
}

TEST_F(Serve, GreedyEqualsWaferGenerate) {
  auto g = test::run_command(test::wafer_binary() + " generate --model " + tiny_model() +
                             " --ids 15496,995,11 --max-new-tokens 12 --temperature 0 --print-ids");
  ASSERT_EQ(g.exit_code, 0) << g.err;
  const std::string ids = g.out.substr(g.out.rfind('\n', g.out.size() - 2) + 1);
  Reply d = post(port(), "/detokenize", "{\"tokens\":[" + ids.substr(0, ids.size() - 1) + "]}");
  Reply r = post(port(), "/v1/completions", R"({"prompt":[15496,995,11],"max_tokens":12,"temperature":0})");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["choices"][0]["text"], d.body["content"]);
  EXPECT_EQ(r.body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(r.body["usage"]["completion_tokens"], 12);
  EXPECT_EQ(r.body["usage"]["prompt_tokens"], 3);
}

TEST_F(Serve, StopStringsAcrossTokenBoundaries) {
  Reply full = post(port(), "/v1/completions", R"({"prompt":"The cat","max_tokens":12,"temperature":0,"logprobs":0})");
  ASSERT_EQ(full.status, 200);
  const auto& toks = full.body["choices"][0]["logprobs"]["tokens"];
  const std::string t0 = toks[0], t1 = toks[1], t2 = toks[2];
  // A stop string made of the end of token 1 and the start of token 2.
  const std::string stop = t1.substr(t1.size() - 1) + t2.substr(0, 1);
  json req = {{"prompt", "The cat"}, {"max_tokens", 12}, {"temperature", 0}, {"stop", {stop}}};
  Reply r = post(port(), "/v1/completions", req.dump());
  const std::string text = full.body["choices"][0]["text"];
  EXPECT_EQ(r.body["choices"][0]["text"], text.substr(0, text.find(stop)));
  EXPECT_EQ(r.body["choices"][0]["finish_reason"], "stop");
}

TEST_F(Serve, EchoLogprobsScoreThePrompt) {
  Reply r = post(port(), "/v1/completions",
                 R"({"prompt":"Hello world, this is","max_tokens":0,"echo":true,"logprobs":1})");
  ASSERT_EQ(r.status, 200) << r.raw;
  const auto& c = r.body["choices"][0];
  EXPECT_EQ(c["text"], "Hello world, this is");
  const auto& lp = c["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 5u);
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  for (size_t i = 1; i < 5; ++i) EXPECT_LT(lp["token_logprobs"][i].get<double>(), 0.0);
  EXPECT_EQ(r.body["usage"]["completion_tokens"], 0);
  // The same prompt scored as a continuation: token 4's logprob equals its generation logprob.
  Reply g = post(port(), "/v1/completions", R"({"prompt":"Hello world, this","max_tokens":1,"logprobs":1,"temperature":0})");
  const double top = g.body["choices"][0]["logprobs"]["token_logprobs"][0];
  const auto& top4 = lp["top_logprobs"][4];
  EXPECT_EQ(top4.begin().value().get<double>(), top);
}

std::vector<std::string> sse_events(const std::string& raw);  // the data: payloads, below

// Chat's logprobs (OpenAI's shape: content[] of {token, logprob, bytes, top_logprobs}) are the
// completions endpoint's for the same prompt text, bit for bit; top_logprobs needs logprobs.
TEST_F(Serve, ChatLogprobsMatchTheCompletionOfItsPrompt) {
  Reply chat = post(port(), "/v1/chat/completions",
                    R"({"messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"temperature":0,)"
                    R"("logprobs":true,"top_logprobs":2})");
  ASSERT_EQ(chat.status, 200) << chat.raw;
  const json& content = chat.body["choices"][0]["logprobs"]["content"];
  const json req = {{"prompt", "User: Hi\n\nAssistant:"}, {"max_tokens", 4}, {"temperature", 0}, {"logprobs", 2}};
  Reply comp = post(port(), "/v1/completions", req.dump());
  ASSERT_EQ(comp.status, 200) << comp.raw;
  const json& lp = comp.body["choices"][0]["logprobs"];
  ASSERT_EQ(content.size(), lp["tokens"].size()) << chat.raw;
  for (size_t i = 0; i < content.size(); ++i) {
    EXPECT_EQ(content[i]["token"], lp["tokens"][i]);
    EXPECT_EQ(content[i]["logprob"].get<double>(), lp["token_logprobs"][i].get<double>());
    ASSERT_EQ(content[i]["top_logprobs"].size(), 2u);
    EXPECT_GE(content[i]["top_logprobs"][0]["logprob"].get<double>(), content[i]["top_logprobs"][1]["logprob"].get<double>());
    std::string bytes;
    for (const auto& b : content[i]["bytes"]) bytes += char(b.get<int>());
    EXPECT_EQ(bytes, content[i]["token"].get<std::string>());
  }
  Reply none = post(port(), "/v1/chat/completions", R"({"messages":[{"role":"user","content":"Hi"}],"max_tokens":2})");
  EXPECT_TRUE(none.body["choices"][0]["logprobs"].is_null()) << none.raw;
  Reply bad = post(port(), "/v1/chat/completions", R"({"messages":[{"role":"user","content":"Hi"}],"top_logprobs":2})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.body["error"]["param"], "top_logprobs") << bad.raw;
  Reply stream = post(port(), "/v1/chat/completions",
                      R"({"messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"temperature":0,"stream":true,)"
                      R"("logprobs":true})");
  size_t streamed = 0;
  for (const std::string& e : sse_events(stream.raw)) {
    if (e == "[DONE]") continue;
    const json c = json::parse(e)["choices"][0];
    if (c["logprobs"].is_object()) streamed += c["logprobs"]["content"].size();
  }
  EXPECT_EQ(streamed, content.size()) << stream.raw;
}

TEST_F(Serve, ListPromptsAndN) {
  Reply r = post(port(), "/v1/completions", R"({"prompt":["a b","c d"],"n":2,"max_tokens":3,"seed":5})");
  ASSERT_EQ(r.status, 200) << r.raw;
  ASSERT_EQ(r.body["choices"].size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(r.body["choices"][i]["index"], i);
  EXPECT_EQ(r.body["usage"]["completion_tokens"], 12);
  Reply chat = post(port(), "/v1/chat/completions", R"({"messages":[{"role":"user","content":"Hi"}],"max_tokens":3})");
  ASSERT_EQ(chat.status, 200) << chat.raw;
  EXPECT_EQ(chat.body["object"], "chat.completion");
  EXPECT_EQ(chat.body["choices"][0]["message"]["role"], "assistant");
}

TEST_F(Serve, BadRequestsGet400WithOpenAiErrors) {
  struct Case {
    std::string body, param;
  };
  const std::vector<Case> cases = {
      {"{not json", ""},
      {R"({"prompt":"x","max_tokens":"many"})", "max_tokens"},
      {R"({"prompt":"x","temperature":"hot"})", "temperature"},
      {R"({"prompt":[1, 2, 99999999]})", "prompt"},
      {R"({"prompt":[-1]})", "prompt"},
      {R"({"prompt":"x","max_tokens":500})", "max_tokens"},
      {"{\"prompt\":\"" + std::string(600, 'x') + " " + std::string(600, 'y') + "\"}", "prompt"},
      {R"({"prompt":"x","stop":[1]})", "stop"},
      {R"({"prompt":"x","n":0})", "n"},
      {R"({"max_tokens":3})", "prompt"},
      {R"([1,2])", ""},
  };
  for (const auto& c : cases) {
    Reply r = post(port(), "/v1/completions", c.body);
    EXPECT_EQ(r.status, 400) << c.body.substr(0, 80) << " -> " << r.raw;
    ASSERT_TRUE(r.body.is_object()) << r.raw;
    EXPECT_TRUE(r.body["error"]["message"].is_string());
    EXPECT_EQ(r.body["error"]["type"], "invalid_request_error");
    if (c.param.empty())
      EXPECT_TRUE(r.body["error"]["param"].is_null());
    else
      EXPECT_EQ(r.body["error"]["param"], c.param) << c.body.substr(0, 80);
  }
  Reply chat = post(port(), "/v1/chat/completions", R"({"messages":[{"role":"robot","content":"x"}]})");
  EXPECT_EQ(chat.status, 400);
  EXPECT_EQ(chat.body["error"]["param"], "messages");
  // More sequences than the queue holds (n = 64 > --max-queue 48): 503 with Retry-After.
  Reply full = post(port(), "/v1/completions", R"({"prompt":"x","n":64,"max_tokens":1})");
  EXPECT_EQ(full.status, 503);
  EXPECT_EQ(full.retry_after, "1");
  EXPECT_EQ(get(port(), "/health").status, 200);
}

TEST_F(Serve, HalfARequestThenGoneDoesNotHurt) {
  for (int k = 0; k < 3; ++k) {
    const int fd = connect_loopback(port());
    ASSERT_GE(fd, 0);
    const std::string half = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 400\r\n\r\n{\"prompt\": \"Hel";
    ASSERT_GT(send(fd, half.data(), half.size(), 0), 0);
    close(fd);
  }
  Reply r = post(port(), "/v1/completions", R"({"prompt":"a","max_tokens":2})");
  EXPECT_EQ(r.status, 200);
}

// Reads an SSE response; returns the data payloads in order.
std::vector<std::string> sse_events(const std::string& raw) {
  std::vector<std::string> ev;
  size_t at = 0;
  while (at < raw.size()) {
    const size_t end = raw.find("\n\n", at);
    if (end == std::string::npos) {
      ev.push_back("<unterminated>" + raw.substr(at));
      break;
    }
    const std::string e = raw.substr(at, end - at);
    ev.push_back(e.rfind("data: ", 0) == 0 ? e.substr(6) : "<bad>" + e);
    at = end + 2;
  }
  return ev;
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const uint8_t c = uint8_t(s[i]);
    const size_t n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((uint8_t(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

TEST_F(Serve, StreamingWithCurlFramesEventsAndEndsWithDone) {
  const std::string body = R"({"prompt":"Once upon","max_tokens":10,"temperature":0,"stream":true,"stream_options":{"include_usage":true}})";
  auto r = test::run_command("curl -sN --max-time 60 -H 'Content-Type: application/json' -d '" + body +
                             "' http://127.0.0.1:" + std::to_string(port()) + "/v1/completions");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto ev = sse_events(r.out);
  ASSERT_GE(ev.size(), 3u) << r.out;
  EXPECT_EQ(ev.back(), "[DONE]");
  std::string text;
  for (size_t i = 0; i + 1 < ev.size(); ++i) {
    json j = json::parse(ev[i], nullptr, false);
    ASSERT_TRUE(j.is_object()) << ev[i];
    EXPECT_EQ(j["object"], "text_completion");
    if (i + 2 == ev.size()) {  // the usage chunk
      EXPECT_TRUE(j["choices"].empty());
      EXPECT_EQ(j["usage"]["completion_tokens"], 10);
      continue;
    }
    const std::string piece = j["choices"][0]["text"];
    EXPECT_TRUE(valid_utf8(piece));
    text += piece;
  }
  Reply whole = post(port(), "/v1/completions", R"({"prompt":"Once upon","max_tokens":10,"temperature":0})");
  EXPECT_EQ(text, whole.body["choices"][0]["text"]);
}

// The batch-invariance contract through the server: a seeded, sampled request with logprobs
// gives the same bytes alone and among 15 others, whatever the arrival order.
TEST_F(Serve, ConcurrentRequestsAreBatchInvariantAndNoneLost) {
  auto req = [](int i, bool stream) {
    json j = {{"prompt", "Request number " + std::to_string(i) + " says"}, {"max_tokens", 8 + i % 5},
              {"temperature", 0.9}, {"top_k", 40}, {"seed", 1000 + i}, {"logprobs", 2}};
    if (stream) j["stream"] = true;
    return j.dump();
  };
  auto content = [](const Reply& r) { return r.body["choices"][0].dump(); };
  const Reply alone = post(port(), "/v1/completions", req(0, false));
  ASSERT_EQ(alone.status, 200) << alone.raw;
  for (int order = 0; order < 2; ++order) {
    std::vector<Reply> out(16);
    std::vector<std::thread> th;
    for (int k = 0; k < 16; ++k) {
      const int i = order == 0 ? k : 15 - k;  // request 0 first, then last
      th.emplace_back([&, i] {
        if (i % 4 == 3) {  // some streams too: each must end with [DONE]
          httplib::Client cli("127.0.0.1", port());
          cli.set_read_timeout(60, 0);
          auto r = cli.Post("/v1/completions", req(i, true), "application/json");
          if (r) out[size_t(i)].status = r->status, out[size_t(i)].raw = r->body;
        } else {
          out[size_t(i)] = post(port(), "/v1/completions", req(i, false));
        }
      });
      std::this_thread::sleep_for(5ms);
    }
    for (auto& t : th) t.join();
    EXPECT_EQ(content(out[0]), content(alone)) << "order " << order;
    for (int i = 0; i < 16; ++i) {
      ASSERT_EQ(out[size_t(i)].status, 200) << i;
      if (i % 4 == 3) {
        auto ev = sse_events(out[size_t(i)].raw);
        EXPECT_EQ(ev.back(), "[DONE]") << i;
      } else {
        EXPECT_EQ(out[size_t(i)].body["usage"]["completion_tokens"], 8 + i % 5) << i;
      }
    }
  }
}

TEST_F(Serve, OfficialOpenAiNodeClient) {
  const std::string npm = test::source_dir() + "/third_party/npm";
  ASSERT_TRUE(std::ifstream(npm + "/node_modules/openai/package.json").good())
      << "the openai npm package is missing: run scripts/setup.sh";
  auto r = test::run_command("timeout 120 node " + test::source_dir() + "/tests/serve/openai_client.cjs " + npm +
                             " http://127.0.0.1:" + std::to_string(port()) + "/v1");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

TEST_F(Serve, ADisconnectedStreamFreesItsSlot) {
  {
    const int fd = connect_loopback(port());
    const std::string body = R"({"prompt":"go","max_tokens":120,"temperature":0,"stream":true})";
    const std::string req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    ASSERT_GT(send(fd, req.data(), req.size(), 0), 0);
    char buf[256];
    ASSERT_GT(recv(fd, buf, sizeof buf, 0), 0);  // the stream has started
    close(fd);
  }
  bool freed = false;
  for (int i = 0; i < 300 && !freed; ++i) {  // bounded wait (30 s)
    std::this_thread::sleep_for(100ms);
    freed = get(port(), "/metrics").raw.find("wafer_busy_slots 0") != std::string::npos;
  }
  EXPECT_TRUE(freed);
}

// A client that sends a non-streaming request and leaves before the answer: its sequence is
// cancelled (counted in /metrics) and its slot freed long before max_tokens, streaming or not.
// A model with a 1024-token context, so the request would run for seconds if not cancelled.
TEST(ServeProcess, ADisconnectedClientCancelsItsRequest) {
  const std::string model = test::temp_dir("serve-long") ;
  auto init = test::run_command(test::wafer_binary() + " init --preset 111M --n-layer 4 --n-embd 128 --n-head 4 "
                                "--n-positions 1024 --tokenizer " + test::gpt2_tokenizer_dir() + " --out " + model);
  ASSERT_EQ(init.exit_code, 0) << init.err;
  ServerProcess s(model, {"--parallel", "2"});
  ASSERT_GT(s.port(), 0) << s.log();
  for (const bool stream : {false, true}) {
    const int fd = connect_loopback(s.port());
    const std::string body = std::string(R"({"prompt":"go","max_tokens":1000,"temperature":0,"stream":)") +
                             (stream ? "true}" : "false}");
    const std::string req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    ASSERT_GT(send(fd, req.data(), req.size(), 0), 0);
    char buf[256];
    ASSERT_GT(recv(fd, buf, sizeof buf, 0), 0);  // the headers: the request is running
    close(fd);
    std::string m;
    for (int i = 0; i < 300; ++i) {  // bounded wait (30 s)
      std::this_thread::sleep_for(100ms);
      m = get(s.port(), "/metrics").raw;
      if (m.find("wafer_busy_slots 0") != std::string::npos) break;
    }
    EXPECT_NE(m.find("wafer_busy_slots 0"), std::string::npos) << m;
    EXPECT_NE(m.find("wafer_sequences_cancelled_total " + std::to_string(stream ? 2 : 1) + "\n"), std::string::npos)
        << (stream ? "streaming" : "non-streaming") << "\n" << m;
  }
  const std::string m = get(s.port(), "/metrics").raw;
  const auto at = m.find("wafer_generated_tokens_total ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_LT(std::atof(m.c_str() + at + 29), 1500.0) << "the two requests ran on after their clients left";
}

TEST(ServeProcess, SigtermEndsInFlightStreamsAndExitsCleanly) {
  ServerProcess s(tiny_model(), {"--parallel", "2", "--ctx", "128"});
  ASSERT_GT(s.port(), 0) << s.log();
  std::string raw;
  std::thread client([&] {
    httplib::Client cli("127.0.0.1", s.port());
    cli.set_read_timeout(60, 0);
    auto r = cli.Post("/v1/completions", R"({"prompt":"x","max_tokens":120,"stream":true})", "application/json");
    if (r) raw = r->body;
  });
  for (int i = 0; i < 300 && get(s.port(), "/metrics").raw.find("wafer_generated_tokens_total 0") != std::string::npos;
       ++i)
    std::this_thread::sleep_for(50ms);
  EXPECT_EQ(s.terminate(), 0) << s.log();
  client.join();
  auto ev = sse_events(raw);
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back(), "[DONE]");
}

// --precision bf16 keeps its KV cache in bf16 (--kv-cache auto), and a seeded request still
// gives the same bytes alone and among seven others.
TEST(ServeProcess, Bf16WeightsAndCacheAreBatchInvariant) {
  ServerProcess server(tiny_model(), {"--parallel", "8", "--precision", "bf16"});
  ASSERT_GT(server.port(), 0) << server.log();
  EXPECT_NE(server.log().find("bf16 KV cache"), std::string::npos) << server.log();
  auto req = [](int i) {
    return json{{"prompt", "Row " + std::to_string(i) + " of the batch"}, {"max_tokens", 10}, {"temperature", 0.8},
                {"seed", 77 + i}, {"logprobs", 1}}
        .dump();
  };
  const Reply alone = post(server.port(), "/v1/completions", req(0));
  ASSERT_EQ(alone.status, 200) << alone.raw;
  std::vector<Reply> out(8);
  std::vector<std::thread> th;
  for (int i = 7; i >= 0; --i) th.emplace_back([&, i] { out[size_t(i)] = post(server.port(), "/v1/completions", req(i)); });
  for (auto& t : th) t.join();
  for (int i = 0; i < 8; ++i) ASSERT_EQ(out[size_t(i)].status, 200) << i;
  EXPECT_EQ(out[0].body["choices"][0].dump(), alone.body["choices"][0].dump());
}

TEST(ServeProcess, BadFlagsFailCleanly) {
  auto r = test::run_command(test::wafer_binary() + " serve --model /nonexistent/model --port 0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("wafer: error:"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace wafer
