// tests/comm_test.cpp: the communicator's calls, run under mpirun with 3 ranks (ctest launches
// it): every collective's result on every rank, ring shifts, point to point with tags, groups
// split by color, and the traffic counters. Each rank runs the same tests; any rank's failure
// fails the job.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "parallel/comm.h"
#include "parallel/layout.h"

namespace wafer {
namespace {

Group world() { return Group::split_world("world", 0, world_rank()); }

TEST(Comm, AllReduceSumMaxAndDouble) {
  Group g = world();
  const int P = g.size(), r = g.rank();
  ASSERT_EQ(P, 3);
  std::vector<float> x = {float(r), float(10 * r), 1.0f};
  g.all_reduce_sum(x.data(), 3);
  EXPECT_EQ(x, (std::vector<float>{3, 30, 3}));
  std::vector<float> m = {float(r), float(-r)};
  g.all_reduce_max(m.data(), 2);
  EXPECT_EQ(m, (std::vector<float>{2, 0}));
  double d = 0.5 * r;
  g.all_reduce_sum(&d, 1);
  EXPECT_DOUBLE_EQ(d, 1.5);
  EXPECT_GT(g.bytes_sent(), 0u);
}

TEST(Comm, ReduceScatterAllGatherAllToAll) {
  Group g = world();
  const int P = g.size(), r = g.rank();
  std::vector<float> in(static_cast<size_t>(2 * P)), out(2);
  for (int i = 0; i < 2 * P; ++i) in[size_t(i)] = float(100 * r + i);  // rank r: 100r + i
  g.reduce_scatter_sum(out.data(), in.data(), 2);
  // piece r = elements [2r, 2r+2) summed over ranks: Σ_k (100k + 2r + j) = 300 + 3(2r + j)
  EXPECT_EQ(out, (std::vector<float>{float(300 + 3 * (2 * r)), float(300 + 3 * (2 * r + 1))}));
  std::vector<float> mine = {float(r), float(r + 10)}, all(static_cast<size_t>(2 * P));
  g.all_gather(all.data(), mine.data(), 2);
  EXPECT_EQ(all, (std::vector<float>{0, 10, 1, 11, 2, 12}));
  std::vector<float> send(static_cast<size_t>(P)), recv(static_cast<size_t>(P));
  for (int k = 0; k < P; ++k) send[size_t(k)] = float(10 * r + k);  // piece k goes to rank k
  g.all_to_all(recv.data(), send.data(), 1);
  for (int k = 0; k < P; ++k) EXPECT_EQ(recv[size_t(k)], float(10 * k + r));  // from rank k
}

TEST(Comm, BroadcastReduceBarrier) {
  Group g = world();
  int64_t v = g.rank() == 2 ? 42 : 0;
  g.broadcast(&v, sizeof v, 2);
  EXPECT_EQ(v, 42);
  float x = 1.0f + float(g.rank());
  g.reduce_sum(&x, 1, 0);
  if (g.rank() == 0) {
    EXPECT_EQ(x, 6.0f);
  }
  g.barrier();
}

TEST(Comm, PointToPointAndRingShift) {
  Group g = world();
  const int P = g.size(), r = g.rank();
  std::vector<float> a = {float(r), float(r)}, b(2);
  g.sendrecv(a.data(), 2, (r + 1) % P, b.data(), 2, (r - 1 + P) % P, 7);
  EXPECT_EQ(b[0], float((r - 1 + P) % P));
  // Two messages between the same pair told apart by tag, received in the other order.
  if (r == 0) {
    float x = 1, y = 2;
    CommRequest s1 = g.isend(&x, 1, 1, 11), s2 = g.isend(&y, 1, 1, 12);
    g.wait(s1), g.wait(s2);
  } else if (r == 1) {
    float x = 0, y = 0;
    g.recv(&y, 1, 0, 12);
    g.recv(&x, 1, 0, 11);
    EXPECT_EQ(x, 1.0f);
    EXPECT_EQ(y, 2.0f);
  }
}

// Every call at once on inputs of n elements per piece, each result checked against its closed
// form; returns all results in one vector so runs under different chunk limits can be compared.
std::vector<float> every_call(Group& g, int64_t n) {
  const int P = g.size(), r = g.rank();
  std::vector<float> all;
  auto keep = [&](const std::vector<float>& v) { all.insert(all.end(), v.begin(), v.end()); };
  std::vector<float> x(static_cast<size_t>(n)), m(static_cast<size_t>(n));
  std::vector<double> d(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    x[size_t(i)] = float(r + 3 * i);                 // Σ = P(P-1)/2 + 3Pi
    m[size_t(i)] = float(r * (i % 5) - i);           // max = (P-1)(i % 5) - i
    d[size_t(i)] = 0.5 * r + double(i);              // Σ = P(P-1)/4 + Pi
  }
  g.all_reduce_sum(x.data(), n);
  g.all_reduce_max(m.data(), n);
  g.all_reduce_sum(d.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(x[size_t(i)], float(P * (P - 1) / 2 + 3 * P * i)) << "all_reduce_sum, i " << i;
    EXPECT_EQ(m[size_t(i)], float((P - 1) * (i % 5) - i)) << "all_reduce_max, i " << i;
    EXPECT_EQ(d[size_t(i)], P * (P - 1) / 4.0 + double(P * i)) << "all_reduce_sum(double), i " << i;
  }
  keep(x), keep(m);
  for (double v : d) all.push_back(float(v));

  std::vector<float> red(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) red[size_t(i)] = float(1 + r + i);
  g.reduce_sum(red.data(), n, 1);
  if (r == 1) {
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(red[size_t(i)], float(P + P * (P - 1) / 2 + P * i)) << "reduce, i " << i;
  }

  // Piece k of every rank's in[P·n] goes to rank k, summed: out[j] = Σ_q (1000q + k·n + j).
  std::vector<float> in(static_cast<size_t>(P * n)), out(static_cast<size_t>(n));
  for (int64_t k = 0; k < P * n; ++k) in[size_t(k)] = float(1000 * r + k);
  g.reduce_scatter_sum(out.data(), in.data(), n);
  for (int64_t j = 0; j < n; ++j) EXPECT_EQ(out[size_t(j)], float(1000 * P * (P - 1) / 2 + P * (r * n + j))) << "reduce_scatter, j " << j;
  keep(out);

  std::vector<float> mine(static_cast<size_t>(n)), gathered(static_cast<size_t>(P * n));
  for (int64_t j = 0; j < n; ++j) mine[size_t(j)] = float(1000 * r + j);
  g.all_gather(gathered.data(), mine.data(), n);
  for (int q = 0; q < P; ++q)
    for (int64_t j = 0; j < n; ++j) EXPECT_EQ(gathered[size_t(q * n + j)], float(1000 * q + j)) << "all_gather, " << q << "/" << j;
  keep(gathered);

  std::vector<float> send(static_cast<size_t>(P * n)), recv(static_cast<size_t>(P * n));
  for (int k = 0; k < P; ++k)
    for (int64_t j = 0; j < n; ++j) send[size_t(k * n + j)] = float(10000 * r + 1000 * k + j);  // piece k to rank k
  g.all_to_all(recv.data(), send.data(), n);
  for (int k = 0; k < P; ++k)
    for (int64_t j = 0; j < n; ++j) EXPECT_EQ(recv[size_t(k * n + j)], float(10000 * k + 1000 * r + j)) << "all_to_all";
  keep(recv);

  // An odd number of bytes from rank 2.
  std::vector<unsigned char> bytes(static_cast<size_t>(4 * n + 3));
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = r == 2 ? (unsigned char)(i * 7 + 1) : 0;
  g.broadcast(bytes.data(), int64_t(bytes.size()), 2);
  for (size_t i = 0; i < bytes.size(); ++i) EXPECT_EQ(bytes[i], (unsigned char)(i * 7 + 1)) << "broadcast, byte " << i;
  for (unsigned char b : bytes) all.push_back(float(b));

  // Ring shift, then two transfers between ranks 0 and 1 received in the other order.
  std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) a[size_t(j)] = float(100 * r + j);
  g.sendrecv(a.data(), n, (r + 1) % P, b.data(), n, (r - 1 + P) % P, 7);
  for (int64_t j = 0; j < n; ++j) EXPECT_EQ(b[size_t(j)], float(100 * ((r - 1 + P) % P) + j)) << "sendrecv";
  keep(b);
  std::vector<float> u(static_cast<size_t>(n)), v(static_cast<size_t>(n));
  if (r == 0) {
    for (int64_t j = 0; j < n; ++j) u[size_t(j)] = float(j), v[size_t(j)] = float(-j);
    CommRequest s1 = g.isend(u.data(), n, 1, 11), s2 = g.isend(v.data(), n, 1, 12);
    g.wait(s1), g.wait(s2);
  } else if (r == 1) {
    CommRequest r2 = g.irecv(v.data(), n, 0, 12);
    g.recv(u.data(), n, 0, 11);
    g.wait(r2);
    for (int64_t j = 0; j < n; ++j) EXPECT_TRUE(u[size_t(j)] == float(j) && v[size_t(j)] == float(-j)) << "isend/irecv";
  }
  keep(u), keep(v);
  return all;
}

// Split into tiny chunks (a chunk of 64 or 20 bytes: 5 or 1 floats per rank in a gather of 3),
// every call gives exactly what the unsplit call gives.
TEST(Comm, ChunkedCallsMatchUnsplit) {
  Group g = world();
  const int64_t limit = comm_chunk_bytes();
  for (int64_t n : {1, 7, 37}) {
    std::vector<float> whole = every_call(g, n);
    for (int64_t bytes : {64, 20, 4}) {
      set_comm_chunk_bytes(bytes);
      std::vector<float> split = every_call(g, n);
      set_comm_chunk_bytes(limit);
      EXPECT_EQ(split, whole) << "n " << n << ", chunk " << bytes << " bytes";
    }
  }
}

// More than 2³¹ bytes in one call (the default 1 GiB limit makes it three chunks). Run alone
// with 2 ranks (ctest comm_large).
TEST(CommLarge, DISABLED_BroadcastOverTwoGiB) {
  Group g = world();
  const int64_t bytes = (int64_t(1) << 31) + 4096 + 8;
  std::vector<uint64_t> buf(static_cast<size_t>(bytes / 8));
  const uint64_t k = 0x9E3779B97F4A7C15ull;
  if (g.rank() == 0)
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = i * k;
  g.broadcast(buf.data(), bytes, 0);
  size_t bad = 0;
  for (size_t i = 0; i < buf.size(); ++i) bad += buf[i] != i * k;
  EXPECT_EQ(bad, 0u) << "words differ on rank " << g.rank();
  EXPECT_EQ(buf.back(), (buf.size() - 1) * k);
}

TEST(Comm, GroupsOfALayout) {
  Layout l;
  l.tp = 3;
  ParallelState s = ParallelState::create(l);
  EXPECT_EQ(s.tp.size(), 3);
  EXPECT_EQ(s.pp.size(), 1);
  EXPECT_EQ(s.at.tp, world_rank());
  float x = 1.0f;
  s.tp.all_reduce_sum(&x, 1);
  EXPECT_EQ(x, 3.0f);
  float y = 1.0f;
  s.dp.all_reduce_sum(&y, 1);  // a group of one: unchanged
  EXPECT_EQ(y, 1.0f);
  // tp fastest: world rank = tp + TP·(cp + CP·(dp + DP·pp))
  Layout big;
  big.tp = 2, big.cp = 2, big.dp = 2, big.pp = 2;
  Coords c = coords_of(big, 13);  // 13 = 1 + 2·(0 + 2·(1 + 2·1))
  EXPECT_EQ(c.tp, 1);
  EXPECT_EQ(c.cp, 0);
  EXPECT_EQ(c.dp, 1);
  EXPECT_EQ(c.pp, 1);
}

}  // namespace
}  // namespace wafer

int main(int argc, char** argv) {
  wafer::init_world(&argc, &argv);
  testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  wafer::finalize_world();
  return rc;
}
