// tests/comm_test.cpp: the communicator's calls, run under mpirun with 3 ranks (ctest launches
// it): every collective's result on every rank, ring shifts, point to point with tags, groups
// split by color, and the traffic counters. Each rank runs the same tests; any rank's failure
// fails the job.
#include <gtest/gtest.h>

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
