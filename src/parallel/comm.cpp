// parallel/comm.cpp: Group on MPI's nonblocking calls, each completed by a polling wait with a
// deadline (MPI itself has no timeouts). Polling backs off to short sleeps so that ranks waiting
// on an oversubscribed machine leave the cores to the ranks that compute. MPI counts are `int`,
// so a call larger than comm_chunk_bytes() is several MPI calls over chunks of the buffer.
#include "parallel/comm.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "core/error.h"

#ifdef WAFER_HAVE_MPI
#include <mpi.h>
#endif

namespace wafer {

namespace {

bool g_mpi = false;
int g_world_size = 1, g_world_rank = 0;
double g_timeout = 45.0;
int64_t g_chunk_bytes = int64_t(1) << 30;
std::atomic<int64_t> g_step{-1};
// What this rank is waiting in, for the termination message (read by the signal handler).
std::atomic<const char*> g_op{nullptr};
std::atomic<const char*> g_group{nullptr};
std::atomic<int> g_peer{-1};  // the world rank waited on, where one is (-1: any of the group)

// Async-signal-safe formatting for the SIGTERM handler.
void append(char* buf, size_t cap, const char* s) {
  size_t n = std::strlen(buf);
  while (*s && n + 1 < cap) buf[n++] = *s++;
  buf[n] = 0;
}
void append_int(char* buf, size_t cap, int64_t v) {
  char tmp[24];
  int i = 0;
  bool neg = v < 0;
  uint64_t u = neg ? uint64_t(-v) : uint64_t(v);
  do tmp[i++] = char('0' + u % 10); while ((u /= 10) && i < 22);
  if (neg) tmp[i++] = '-';
  char out[24];
  for (int k = 0; k < i; ++k) out[k] = tmp[i - 1 - k];
  out[i] = 0;
  append(buf, cap, out);
}

// mpirun ends the surviving ranks with SIGTERM when one rank dies; say where this one was.
void on_sigterm(int) {
  char msg[512] = "wafer: error: rank ";
  append_int(msg, sizeof msg, g_world_rank);
  const char* op = g_op.load();
  if (op) {
    append(msg, sizeof msg, ": stopped while waiting in ");
    append(msg, sizeof msg, op);
    append(msg, sizeof msg, " over the ");
    append(msg, sizeof msg, g_group.load() ? g_group.load() : "?");
    append(msg, sizeof msg, " group");
    if (g_peer.load() >= 0) {
      append(msg, sizeof msg, " for rank ");
      append_int(msg, sizeof msg, g_peer.load());
    }
  } else {
    append(msg, sizeof msg, ": stopped while computing");
  }
  if (g_step.load() >= 0) {
    append(msg, sizeof msg, " at step ");
    append_int(msg, sizeof msg, g_step.load());
  }
  append(msg, sizeof msg, ": the launcher ended the job because another rank died or gave up (see its message)\n");
  ssize_t ignored = write(2, msg, std::strlen(msg));
  (void)ignored;
  _exit(1);
}

}  // namespace

#ifdef WAFER_HAVE_MPI
struct Group::Comm {
  MPI_Comm comm = MPI_COMM_NULL;
  ~Comm() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (comm != MPI_COMM_NULL && comm != MPI_COMM_WORLD && !finalized) MPI_Comm_free(&comm);
  }
};
#else
struct Group::Comm {};
#endif

void init_world(int* argc, char*** argv) {
  if (const char* t = std::getenv("WAFER_COMM_TIMEOUT")) g_timeout = std::atof(t);
  if (const char* c = std::getenv("WAFER_COMM_CHUNK_BYTES")) set_comm_chunk_bytes(std::atoll(c));
#ifdef WAFER_HAVE_MPI
  if (!std::getenv("OMPI_COMM_WORLD_SIZE")) return;  // not under mpirun: a world of one
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_size(MPI_COMM_WORLD, &g_world_size);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_world_rank);
  g_mpi = true;
  std::signal(SIGTERM, on_sigterm);
#endif
}

void finalize_world() {
#ifdef WAFER_HAVE_MPI
  if (g_mpi) {
    g_mpi = false;
    MPI_Finalize();
  }
#endif
}

void abort_world(const std::string& msg) {
  std::fflush(stdout);
  if (g_world_size > 1)
    std::fprintf(stderr, "wafer: error: rank %d: %s\n", g_world_rank, msg.c_str());
  else
    std::fprintf(stderr, "wafer: error: %s\n", msg.c_str());
  std::fflush(stderr);
#ifdef WAFER_HAVE_MPI
  if (g_mpi) MPI_Abort(MPI_COMM_WORLD, 1);
#endif
  std::exit(1);
}

int world_size() { return g_world_size; }
int world_rank() { return g_world_rank; }
bool mpi_active() { return g_mpi; }
void set_comm_timeout(double seconds) { g_timeout = seconds; }
double comm_timeout() { return g_timeout; }
void set_comm_step(int64_t step) { g_step = step; }
void set_comm_chunk_bytes(int64_t bytes) { g_chunk_bytes = std::max<int64_t>(bytes, 1); }
int64_t comm_chunk_bytes() { return g_chunk_bytes; }

bool fault_due(const char* kind, std::string* arg) {
  static const char* spec = std::getenv("WAFER_FAULT");
  if (!spec) return false;
  char k[8] = {0};
  int rank = -1, used = 0;
  long long step = -1;
  if (std::sscanf(spec, "%7[a-z]:%d:%lld%n", k, &rank, &step, &used) != 3 || std::strcmp(k, kind) != 0 ||
      rank != g_world_rank || step != g_step)
    return false;
  if (arg) *arg = spec[used] == ':' ? std::string(spec + used + 1) : std::string();
  return true;
}

void fault_point() {
  if (fault_due("kill", nullptr)) std::raise(SIGKILL);
  if (fault_due("stall", nullptr))
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  if (fault_due("pause", nullptr)) std::this_thread::sleep_for(std::chrono::seconds(2));
}

Group::Group() : world_ranks_{g_world_rank}, bytes_(std::make_shared<uint64_t>(0)), seconds_(std::make_shared<double>(0)) {}

// Marks the operation in progress (for messages) and charges its time to the group.
struct CommCall {
  Group& g;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  CommCall(Group& group, const char* op, uint64_t bytes) : g(group) {
    g_op = op;
    g_group = g.name_.c_str();
    *g.bytes_ += bytes;
  }
  ~CommCall() {
    g_op = nullptr;
    *g.seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
};

#ifdef WAFER_HAVE_MPI
namespace {

std::string group_ranks(const std::vector<int>& ranks) {
  std::string s;
  for (int r : ranks) {
    if (!s.empty()) s += ',';
    s += std::to_string(r);
  }
  return s;
}

// Completes `req` or ends the job once the deadline passes. Spins briefly, then sleeps in
// growing steps (up to 200 µs) so a waiting rank does not take a core from a computing one.
void wait_request(MPI_Request* req, const char* op, const std::string& group, const std::vector<int>& ranks,
                  int peer_world) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  g_peer = peer_world;
  int done = 0, polls = 0;
  auto pause = std::chrono::microseconds(5);
  for (;;) {
    int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
      char err[MPI_MAX_ERROR_STRING];
      int len = 0;
      MPI_Error_string(rc, err, &len);
      abort_world(str_cat(op, " over the ", group, " group (world ranks ", group_ranks(ranks), ")",
                          g_step >= 0 ? str_cat(" at step ", g_step.load()) : std::string(), " failed: ", err));
    }
    if (done) return;
    if (++polls < 200) {
      std::this_thread::yield();
      continue;
    }
    const double waited = std::chrono::duration<double>(clock::now() - start).count();
    if (waited > g_timeout)
      abort_world(str_cat(op, " over the ", group, " group (world ranks ", group_ranks(ranks), ")",
                          g_step >= 0 ? str_cat(" at step ", g_step.load()) : std::string(), " timed out after ",
                          int(g_timeout), " s: ",
                          peer_world >= 0 ? str_cat("rank ", peer_world, " is")
                                          : std::string("a rank of the group is"),
                          " dead or stuck"));
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(200));
  }
}

}  // namespace

Group Group::split_world(const std::string& name, int color, int key) {
  Group g;
  g.name_ = name;
  if (!g_mpi) return g;
  auto c = std::make_shared<Comm>();
  MPI_Comm_split(MPI_COMM_WORLD, color, key, &c->comm);
  MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
  MPI_Comm_size(c->comm, &g.size_);
  MPI_Comm_rank(c->comm, &g.rank_);
  g.world_ranks_.assign(size_t(g.size_), 0);
  MPI_Allgather(&g_world_rank, 1, MPI_INT, g.world_ranks_.data(), 1, MPI_INT, c->comm);
  g.comm_ = c;
  return g;
}

// A collective of two ranks (peer -1) waits on the other one; of more, on any of them.
#define WAFER_MPI_WAIT(req, op, peer)                                                              \
  wait_request(&req, op, name_, world_ranks_,                                                     \
               (peer) >= 0 ? world_ranks_[size_t(peer)] : size_ == 2 ? world_ranks_[size_t(1 - rank_)] : -1)

namespace {

// Elements of `elem_bytes` each that one MPI call may carry when it moves `pieces` of them per
// element offset (a gather of P ranks moves P): at least 1, and a count that fits MPI's `int`.
int64_t chunk_elems(size_t elem_bytes, int pieces = 1) {
  const int64_t per = g_chunk_bytes / int64_t(elem_bytes * size_t(pieces));
  return std::clamp<int64_t>(per, 1, INT_MAX);
}

// Calls f(offset, count) over [0, n) in chunks of at most `chunk` (count fits an int).
template <class F>
void for_chunks(int64_t n, int64_t chunk, F f) {
  for (int64_t off = 0; off < n; off += chunk) f(off, int(std::min(chunk, n - off)));
}

// Piece r of length c at src + r·stride, for each of P ranks, into dst[P·c] (and back).
void pack(float* dst, const float* src, int P, int64_t stride, int64_t c) {
  for (int r = 0; r < P; ++r) std::memcpy(dst + r * c, src + r * stride, size_t(c) * sizeof(float));
}
void unpack(float* dst, const float* src, int P, int64_t stride, int64_t c) {
  for (int r = 0; r < P; ++r) std::memcpy(dst + r * stride, src + r * c, size_t(c) * sizeof(float));
}

// All-reduce in place, chunk by chunk (each chunk is an independent all-reduce).
template <class T, class Wait>
void all_reduce_chunks(T* x, int64_t n, MPI_Datatype type, MPI_Op mpi_op, MPI_Comm comm, Wait wait) {
  for_chunks(n, chunk_elems(sizeof(T)), [&](int64_t off, int c) {
    MPI_Request req;
    MPI_Iallreduce(MPI_IN_PLACE, x + off, c, type, mpi_op, comm, &req);
    wait(req);
  });
}

}  // namespace

void Group::all_reduce_sum(float* x, int64_t n) {
  if (size_ == 1 || n == 0) return;
  CommCall call(*this, "all_reduce", uint64_t(2 * (size_ - 1) * n / size_) * sizeof(float));
  all_reduce_chunks(x, n, MPI_FLOAT, MPI_SUM, comm_->comm, [&](MPI_Request& req) { WAFER_MPI_WAIT(req, "all_reduce", -1); });
}

void Group::all_reduce_sum(double* x, int64_t n) {
  if (size_ == 1 || n == 0) return;
  CommCall call(*this, "all_reduce", uint64_t(2 * (size_ - 1) * n / size_) * sizeof(double));
  all_reduce_chunks(x, n, MPI_DOUBLE, MPI_SUM, comm_->comm, [&](MPI_Request& req) { WAFER_MPI_WAIT(req, "all_reduce", -1); });
}

void Group::all_reduce_max(float* x, int64_t n) {
  if (size_ == 1 || n == 0) return;
  CommCall call(*this, "all_reduce(max)", uint64_t(2 * (size_ - 1) * n / size_) * sizeof(float));
  all_reduce_chunks(x, n, MPI_FLOAT, MPI_MAX, comm_->comm,
                    [&](MPI_Request& req) { WAFER_MPI_WAIT(req, "all_reduce(max)", -1); });
}

void Group::reduce_sum(float* x, int64_t n, int root) {
  if (size_ == 1 || n == 0) return;
  CommCall call(*this, "reduce", uint64_t(n) * sizeof(float));
  for_chunks(n, chunk_elems(sizeof(float)), [&](int64_t off, int c) {
    MPI_Request req;
    if (rank_ == root)
      MPI_Ireduce(MPI_IN_PLACE, x + off, c, MPI_FLOAT, MPI_SUM, root, comm_->comm, &req);
    else
      MPI_Ireduce(x + off, nullptr, c, MPI_FLOAT, MPI_SUM, root, comm_->comm, &req);
    WAFER_MPI_WAIT(req, "reduce", -1);
  });
}

// Under the limit: one call on the caller's buffers. Over it: the same element range [o, o+c)
// of every rank's piece is packed into one buffer of P·c and reduce-scattered.
void Group::reduce_scatter_sum(float* out, const float* in, int64_t n) {
  if (size_ == 1) {
    if (out != in) std::memmove(out, in, size_t(n) * sizeof(float));
    return;
  }
  if (n == 0) return;
  CommCall call(*this, "reduce_scatter", uint64_t((size_ - 1) * n) * sizeof(float));
  const int64_t chunk = chunk_elems(sizeof(float), size_);
  if (n <= chunk) {
    MPI_Request req;
    MPI_Ireduce_scatter_block(in, out, int(n), MPI_FLOAT, MPI_SUM, comm_->comm, &req);
    WAFER_MPI_WAIT(req, "reduce_scatter", -1);
    return;
  }
  std::vector<float> packed(size_t(size_ * chunk));
  for_chunks(n, chunk, [&](int64_t off, int c) {
    pack(packed.data(), in + off, size_, n, c);
    MPI_Request req;
    MPI_Ireduce_scatter_block(packed.data(), out + off, c, MPI_FLOAT, MPI_SUM, comm_->comm, &req);
    WAFER_MPI_WAIT(req, "reduce_scatter", -1);
  });
}

void Group::all_gather(float* out, const float* in, int64_t n) {
  if (size_ == 1) {
    if (out != in) std::memmove(out, in, size_t(n) * sizeof(float));
    return;
  }
  if (n == 0) return;
  CommCall call(*this, "all_gather", uint64_t((size_ - 1) * n) * sizeof(float));
  const int64_t chunk = chunk_elems(sizeof(float), size_);
  if (n <= chunk) {
    MPI_Request req;
    MPI_Iallgather(in, int(n), MPI_FLOAT, out, int(n), MPI_FLOAT, comm_->comm, &req);
    WAFER_MPI_WAIT(req, "all_gather", -1);
    return;
  }
  std::vector<float> packed(size_t(size_ * chunk));
  for_chunks(n, chunk, [&](int64_t off, int c) {
    MPI_Request req;
    MPI_Iallgather(in + off, c, MPI_FLOAT, packed.data(), c, MPI_FLOAT, comm_->comm, &req);
    WAFER_MPI_WAIT(req, "all_gather", -1);
    unpack(out + off, packed.data(), size_, n, c);
  });
}

void Group::all_gather(uint64_t* out, const uint64_t* in, int64_t n) {
  if (size_ == 1) {
    if (out != in) std::memmove(out, in, size_t(n) * sizeof(uint64_t));
    return;
  }
  if (n == 0) return;
  // Hash lists, a few thousand words: one call, never split (the chunk limit is for bulk data).
  WAFER_CHECK(n <= INT32_MAX / size_, "[comm] all_gather of ", n, " words is more than one MPI call carries");
  CommCall call(*this, "all_gather", uint64_t((size_ - 1) * n) * sizeof(uint64_t));
  MPI_Request req;
  MPI_Iallgather(in, int(n), MPI_UINT64_T, out, int(n), MPI_UINT64_T, comm_->comm, &req);
  WAFER_MPI_WAIT(req, "all_gather", -1);
}

void Group::all_to_all(float* out, const float* in, int64_t n) {
  if (size_ == 1) {
    if (out != in) std::memmove(out, in, size_t(n) * sizeof(float));
    return;
  }
  if (n == 0) return;
  CommCall call(*this, "all_to_all", uint64_t((size_ - 1) * n) * sizeof(float));
  const int64_t chunk = chunk_elems(sizeof(float), size_);
  if (n <= chunk) {
    MPI_Request req;
    MPI_Ialltoall(in, int(n), MPI_FLOAT, out, int(n), MPI_FLOAT, comm_->comm, &req);
    WAFER_MPI_WAIT(req, "all_to_all", -1);
    return;
  }
  std::vector<float> packed_in(size_t(size_ * chunk)), packed_out(size_t(size_ * chunk));
  for_chunks(n, chunk, [&](int64_t off, int c) {
    pack(packed_in.data(), in + off, size_, n, c);
    MPI_Request req;
    MPI_Ialltoall(packed_in.data(), c, MPI_FLOAT, packed_out.data(), c, MPI_FLOAT, comm_->comm, &req);
    WAFER_MPI_WAIT(req, "all_to_all", -1);
    unpack(out + off, packed_out.data(), size_, n, c);
  });
}

void Group::broadcast(void* data, int64_t bytes, int root) {
  if (size_ == 1 || bytes == 0) return;
  CommCall call(*this, "broadcast", rank_ == root ? uint64_t(bytes) : 0);
  for_chunks(bytes, chunk_elems(1), [&](int64_t off, int c) {
    MPI_Request req;
    MPI_Ibcast(static_cast<char*>(data) + off, c, MPI_BYTE, root, comm_->comm, &req);
    WAFER_MPI_WAIT(req, "broadcast", root);
  });
}

void Group::barrier() {
  if (size_ == 1) return;
  CommCall call(*this, "barrier", 0);
  MPI_Request req;
  MPI_Ibarrier(comm_->comm, &req);
  WAFER_MPI_WAIT(req, "barrier", -1);
}

// A transfer of n floats is ceil(n / chunk) messages with the same tag, all posted at once;
// MPI's non-overtaking rule matches them to the receiver's chunks in order. n = 0 sends nothing.
CommRequest Group::isend(const float* x, int64_t n, int dest, int tag) {
  WAFER_ASSERT(dest >= 0 && dest < size_ && dest != rank_);
  *bytes_ += uint64_t(n) * sizeof(float);
  auto reqs = std::make_shared<std::vector<MPI_Request>>();
  for_chunks(n, chunk_elems(sizeof(float)), [&](int64_t off, int c) {
    reqs->emplace_back();
    MPI_Isend(x + off, c, MPI_FLOAT, dest, tag, comm_->comm, &reqs->back());
  });
  return {reqs, "send", dest};
}

CommRequest Group::irecv(float* x, int64_t n, int src, int tag) {
  WAFER_ASSERT(src >= 0 && src < size_ && src != rank_);
  auto reqs = std::make_shared<std::vector<MPI_Request>>();
  for_chunks(n, chunk_elems(sizeof(float)), [&](int64_t off, int c) {
    reqs->emplace_back();
    MPI_Irecv(x + off, c, MPI_FLOAT, src, tag, comm_->comm, &reqs->back());
  });
  return {reqs, "recv", src};
}

void Group::wait(CommRequest& r) {
  if (!r.handle) return;
  CommCall call(*this, r.op, 0);
  for (MPI_Request& req : *static_cast<std::vector<MPI_Request>*>(r.handle.get())) WAFER_MPI_WAIT(req, r.op, r.peer);
  r.handle.reset();
}

void Group::send(const float* x, int64_t n, int dest, int tag) {
  CommRequest r = isend(x, n, dest, tag);
  wait(r);
}

void Group::recv(float* x, int64_t n, int src, int tag) {
  CommRequest r = irecv(x, n, src, tag);
  wait(r);
}

void Group::sendrecv(const float* send, int64_t ns, int dest, float* recv, int64_t nr, int src, int tag) {
  if (size_ == 1) {
    std::memmove(recv, send, size_t(ns) * sizeof(float));
    return;
  }
  CommRequest rr = irecv(recv, nr, src, tag);
  CommRequest sr = isend(send, ns, dest, tag);
  wait(rr);
  wait(sr);
}

#else  // no MPI: every group is this rank alone

Group Group::split_world(const std::string& name, int, int) {
  Group g;
  g.name_ = name;
  return g;
}
void Group::all_reduce_sum(float*, int64_t) {}
void Group::all_reduce_sum(double*, int64_t) {}
void Group::all_reduce_max(float*, int64_t) {}
void Group::reduce_sum(float*, int64_t, int) {}
void Group::reduce_scatter_sum(float* out, const float* in, int64_t n) {
  if (out != in) std::memmove(out, in, size_t(n) * sizeof(float));
}
void Group::all_gather(float* out, const float* in, int64_t n) {
  if (out != in) std::memmove(out, in, size_t(n) * sizeof(float));
}
void Group::all_gather(uint64_t* out, const uint64_t* in, int64_t n) {
  if (out != in) std::memmove(out, in, size_t(n) * sizeof(uint64_t));
}
void Group::all_to_all(float* out, const float* in, int64_t n) {
  if (out != in) std::memmove(out, in, size_t(n) * sizeof(float));
}
void Group::broadcast(void*, int64_t, int) {}
void Group::barrier() {}
CommRequest Group::isend(const float*, int64_t, int, int) { fail("[comm] send needs MPI (a group of one has no peer)"); }
CommRequest Group::irecv(float*, int64_t, int, int) { fail("[comm] recv needs MPI (a group of one has no peer)"); }
void Group::wait(CommRequest&) {}
void Group::send(const float*, int64_t, int, int) { fail("[comm] send needs MPI"); }
void Group::recv(float*, int64_t, int, int) { fail("[comm] recv needs MPI"); }
void Group::sendrecv(const float* send, int64_t ns, int, float* recv, int64_t, int, int) {
  std::memmove(recv, send, size_t(ns) * sizeof(float));
}

#endif

}  // namespace wafer
