// tests/multihost_test.cpp: the parallel engine across hosts. tests/multihost/hosts.sh makes 2-4
// hosts on this machine (network namespaces with their own host names, veth links to a bridge);
// wafer runs across them under the same mpirun a cluster uses, its remote launcher (enter.sh, in
// place of ssh) entering each host, ranks talking over OpenMPI's TCP transport only. Checked
// against the single-rank results of the parallel tests' fixture: exact gradients with every
// kind of group split over hosts, exact losses on slow lossy links, and a host lost mid-step (its
// link pulled, or its processes killed) ending every rank and mpirun with a message naming the
// operation, group and peer, no process left on any host, then a resume with the same losses.
// Needs root: skips, saying why, where namespaces cannot be made.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "core/file.h"
#include "test_util.h"

namespace wafer {
namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

const std::string& dir() {
  static const std::string d = WAFER_PARALLEL_DIR;
  return d;
}
std::string harness() { return test::source_dir() + "/tests/multihost"; }
std::string model_a() { return dir() + "/model-4L4H"; }

// The parallel tests' ten training steps (their reference is dir()/ref-train).
std::string train_args(const std::string& out) {
  return " train --init " + model_a() + " --data " + dir() + "/data --out " + out +
         " --steps 10 --batch 4 --seq 32 --micro-batches 2 --lr 2e-3 --warmup 2 --eval-every 0 --checkpoint-every 5 --quiet";
}

// run_command's files are shared by the process, and a fault test runs the job in one thread while
// the other pulls the link: each command here gets a folder of its own.
test::CommandResult run_command(const std::string& cmd) {
  static std::atomic<int> count{0};
  const std::string d = test::temp_dir("mh-cmd-" + std::to_string(count++));
  const int status = std::system(("(" + cmd + ") </dev/null >" + d + "/out 2>" + d + "/err").c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), read_file(d + "/out"), read_file(d + "/err")};
}

// OpenMPI's out-of-band links to the daemons send TCP keepalives after 2 s idle, every 1 s, and
// give up after 3 missed: mpirun notices a vanished host in about 5 s, well inside the ranks'
// communication timeout, and ends the job instead of waiting on it forever.
const char* kMpiNetwork =
    " --mca plm_rsh_no_tree_spawn 1 --mca btl self,tcp --mca btl_tcp_if_include 10.77.0.0/24"
    " --mca oob_tcp_if_include 10.77.0.0/24 --mca oob_tcp_keepalive_time 2 --mca oob_tcp_keepalive_intvl 1"
    " --mca oob_tcp_keepalive_probes 3";

// N hosts for one test, removed when it ends (pass or fail); names unique to this process.
class Hosts {
 public:
  explicit Hosts(int n) : n_(n) {
    static std::atomic<int> count{0};
    prefix_ = "wfmh" + std::to_string(::getpid()) + "x" + std::to_string(count++);
    run_command(sh("sweep"));  // leftovers of runs that died without cleaning up
    auto r = run_command(sh("up " + prefix_ + " " + std::to_string(n)));
    ok_ = r.exit_code == 0;
    why_ = r.err;
    hostfile_ = test::temp_dir(prefix_) + "/hosts";
    std::ofstream f(hostfile_);
    for (int i = 0; i < n; ++i) f << address(i) << " slots=1\n";
  }
  ~Hosts() { run_command(sh("down " + prefix_)); }
  Hosts(const Hosts&) = delete;
  Hosts& operator=(const Hosts&) = delete;

  bool ok() const { return ok_; }
  const std::string& why() const { return why_; }
  static std::string address(int i) { return "10.77.0." + std::to_string(i + 1); }
  // `env` then mpirun started on host 0, one rank per host, running `command` (ended after 150 s:
  // a hang fails the test rather than stalling the suite).
  std::string mpirun(const std::string& command, const std::string& env = "") const {
    const std::string enter = harness() + "/enter.sh";
    return "WFMH_PREFIX=" + prefix_ + " OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 " +
           env + " timeout -k 5 150 " + enter + " " + address(0) + " mpirun -np " + std::to_string(n_) + " --hostfile " + hostfile_ +
           " --mca plm_rsh_agent " + enter + kMpiNetwork + " -x OMP_NUM_THREADS" +
           (env.empty() ? "" : " -x " + env.substr(0, env.find('='))) + " " + command;
  }
  std::string sh(const std::string& args) const { return harness() + "/hosts.sh " + args; }
  const std::string& prefix() const { return prefix_; }
  // The processes still running on any host.
  std::string pids() const { return run_command(sh("pids " + prefix_)).out; }
  // Waits up to `seconds` for every host to be empty; returns what is left.
  std::string wait_empty(double seconds) const {
    const auto t0 = clock_type::now();
    std::string left = pids();
    while (!left.empty() && std::chrono::duration<double>(clock_type::now() - t0).count() < seconds) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      left = pids();
    }
    return left;
  }

 private:
  int n_;
  std::string prefix_, hostfile_, why_;
  bool ok_ = false;
};

#define SKIP_WITHOUT_HOSTS(h)                                                                       \
  if (!(h).ok())                                                                                   \
  GTEST_SKIP() << "network namespaces cannot be made here (needs root and iproute2): " << (h).why()

void expect_training_matches_reference(const std::string& run, const std::string& what) {
  std::vector<double> got = test::train_losses(run), want = test::train_losses(dir() + "/ref-train");
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i] / want[i], 1.0, 1e-5) << "step " << i + 1 << " " << what;
}

TEST(Multihost, RanksRunOnTheirOwnHosts) {
  Hosts h(4);
  SKIP_WITHOUT_HOSTS(h);
  auto r = run_command(h.mpirun("hostname"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::set<std::string> names;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) names.insert(line);
  EXPECT_EQ(names, (std::set<std::string>{h.prefix() + "-h0", h.prefix() + "-h1", h.prefix() + "-h2", h.prefix() + "-h3"}))
      << r.out;
}

// One rank per host, so every tp, pp and dp group spans two hosts.
TEST(Multihost, GradsMatchOneRankWithGroupsAcrossHosts) {
  Hosts h(4);
  SKIP_WITHOUT_HOSTS(h);
  for (const std::string flags : {"--tp 2 --pp 2 --micro-batches 2", "--pp 2 --dp 2 --micro-batches 2"}) {
    const std::string out = test::temp_dir("mh-grads");
    auto r = run_command(h.mpirun(test::wafer_binary() + " grads --model " + model_a() + " --batch " + dir() +
                                  "/batch.json --out " + out + "/g.json --grads-out " + out + "/g.safetensors " + flags));
    ASSERT_EQ(r.exit_code, 0) << flags << ": " << r.err;
    test::expect_same_grads(out + "/g.json", out + "/g.safetensors", dir() + "/ref-a.json", dir() + "/ref-a.safetensors",
                            flags + " on 4 hosts");
  }
}

// 400 Mbit/s links dropping 1% of packets (and 2 ms latency where the kernel has netem): TCP
// retransmits, the arithmetic is unchanged, and the run reports its communication share.
TEST(Multihost, ShapedLinksKeepLossesExact) {
  Hosts h(2);
  SKIP_WITHOUT_HOSTS(h);
  auto shape = run_command(h.sh("shape " + h.prefix()));
  ASSERT_EQ(shape.exit_code, 0) << shape.err;
  std::printf("%s", shape.out.c_str());  // says whether latency is emulated on this kernel
  const std::string run = test::temp_dir("mh-shaped") + "/run";
  auto r = run_command(h.mpirun(test::wafer_binary() + train_args(run) + " --dp 2"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_training_matches_reference(run, "--dp 2 over shaped links");
  std::istringstream in(read_file(run + "/metrics.jsonl"));
  std::string line;
  double share = 0;
  while (std::getline(in, line)) share = std::max(share, nlohmann::json::parse(line).value("comm_share", 0.0));
  EXPECT_GT(share, 0.0) << "no comm_share in " << run << "/metrics.jsonl";
  EXPECT_LE(share, 1.0);
}

// Rank 1 pauses 2 s in step 7 (WAFER_FAULT=pause), after the checkpoint at step 5; when step 6
// is logged, `lose_host` takes host 1 away. mpirun must return, every process on every host must
// end, and a resume from the checkpoint must give the reference losses.
void lose_host_mid_step(const std::string& how) {
  Hosts h(2);
  SKIP_WITHOUT_HOSTS(h);
  const double timeout = 10;
  const std::string run = test::temp_dir("mh-" + how) + "/run";
  test::CommandResult r;
  std::atomic<bool> ended{false};
  const auto t0 = clock_type::now();
  std::thread job([&] {
    r = run_command(h.mpirun(test::wafer_binary() + train_args(run) + " --dp 2 --comm-timeout 10", "WAFER_FAULT=pause:1:7"));
    ended = true;
  });
  bool lost = false;
  while (!ended) {
    std::ifstream m(run + "/metrics.jsonl");
    if (std::string s((std::istreambuf_iterator<char>(m)), {}); s.find("\"step\":6,") != std::string::npos) {
      run_command(how == "link" ? h.sh("link " + h.prefix() + " 1 down") : h.sh("kill " + h.prefix() + " 1"));
      lost = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const auto t_lost = clock_type::now();
  job.join();
  const double after = std::chrono::duration<double>(clock_type::now() - t_lost).count();
  ASSERT_TRUE(lost) << "the run ended before step 6 was logged: " << r.err;
  EXPECT_NE(r.exit_code, 0) << r.err;
  // A bound far above the ~5-12 s it takes, to catch a hang, not to time it.
  EXPECT_LT(after, timeout + 45) << r.err;
  // The rank left on host 0 names what it waited in, the group and the peer on the lost host.
  EXPECT_NE(r.err.find("wafer: error: rank 0"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("all_reduce over the dp group"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("rank 1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("at step 7"), std::string::npos) << r.err;
  EXPECT_EQ(h.wait_empty(30), "") << "processes left on the hosts after the job ended";
  std::printf("[multihost] host lost by %s: mpirun returned %.1f s later (%.1f s after the start)\n", how.c_str(), after,
              std::chrono::duration<double>(clock_type::now() - t0).count());

  if (how == "link") {
    // Returns once the two hosts reach each other again (see hosts.sh's wait_reachable).
    auto up = run_command(h.sh("link " + h.prefix() + " 1 up"));
    ASSERT_EQ(up.exit_code, 0) << up.err;
  }
  auto again = run_command(h.mpirun(test::wafer_binary() + train_args(run) + " --dp 2 --resume"));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  expect_training_matches_reference(run, "resumed after losing a host by " + how);
  EXPECT_EQ(h.wait_empty(10), "");
}

TEST(Multihost, LinkDownMidStepEndsTheJobThenResumes) { lose_host_mid_step("link"); }
TEST(Multihost, KilledHostEndsTheJobThenResumes) { lose_host_mid_step("kill"); }

}  // namespace
}  // namespace wafer
