// parallel/comm.h: the communicator: a Group of ranks over an MPI sub-communicator, with the
// collectives and point-to-point calls the parallel engine uses. Every call waits with a
// deadline: a dead or stuck peer ends the whole job with one message naming this rank, the
// operation, the group and the training step, instead of hanging.
//
// Without mpirun (no OpenMPI environment) MPI is never initialised and every Group has one rank:
// collectives are no-ops or copies, so one code path serves one rank and many.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace wafer {

// Starts MPI when launched by mpirun (reads OMPI_COMM_WORLD_SIZE); safe to call once at start.
void init_world(int* argc, char*** argv);
// MPI_Finalize when MPI was started (call on a normal exit).
void finalize_world();
// Ends every rank now: prints `msg` (rank-prefixed) and aborts the MPI job, or exits 1 alone.
[[noreturn]] void abort_world(const std::string& msg);
int world_size();
int world_rank();
bool mpi_active();

// Seconds a call may wait before the job is ended (default 45; WAFER_COMM_TIMEOUT or --comm-timeout).
void set_comm_timeout(double seconds);
double comm_timeout();
// The training step named in timeout and termination messages (-1: not training).
void set_comm_step(int64_t step);
// Most bytes one MPI call carries (default 1 GiB; WAFER_COMM_CHUNK_BYTES). MPI counts are `int`,
// so larger calls are split into chunks; every rank must use the same limit. Tests set it tiny.
void set_comm_chunk_bytes(int64_t bytes);
int64_t comm_chunk_bytes();

// Fault injection for the tests: WAFER_FAULT="kill:R:S" makes world rank R die by SIGKILL, and
// "stall:R:S" makes it hang, when it reaches a fault point during training step S; "pause:R:S"
// makes it sleep 2 s there (the multi-host tests pull a link during that step).
void fault_point();
// Whether WAFER_FAULT="KIND:R:S[:ARG]" is due here (this world rank, the current training step);
// `arg` (optional) receives ARG. Faults that act on data above this layer ("corrupt") use it.
bool fault_due(const char* kind, std::string* arg);

// One in-flight point-to-point transfer (isend / irecv); wait() before touching its buffer.
struct CommRequest {
  std::shared_ptr<void> handle;  // its MPI_Requests (one per chunk), opaque so the header needs no mpi.h
  const char* op = "";
  int peer = -1;
};

class Group {
 public:
  Group();  // the group of one (this rank alone)
  // The ranks of the world that share `color` form one group, ordered by `key`; every rank calls
  // this together. `name` ("tp", "pp", ...) appears in messages and in the traffic counters.
  static Group split_world(const std::string& name, int color, int key);

  int size() const { return size_; }
  int rank() const { return rank_; }
  const std::string& name() const { return name_; }
  int world_rank_of(int group_rank) const { return world_ranks_[size_t(group_rank)]; }

  // In place over x[n] of every rank.
  void all_reduce_sum(float* x, int64_t n);
  void all_reduce_sum(double* x, int64_t n);
  void all_reduce_max(float* x, int64_t n);
  // x[n] of every rank summed into x on `root` (other ranks' x is left unspecified).
  void reduce_sum(float* x, int64_t n, int root);
  // in[size·n] on every rank -> out[n] on rank r = Σ_ranks in[r·n, (r+1)·n).
  void reduce_scatter_sum(float* out, const float* in, int64_t n);
  // in[n] on every rank -> out[size·n], rank r's piece at out + r·n.
  void all_gather(float* out, const float* in, int64_t n);
  void all_gather(uint64_t* out, const uint64_t* in, int64_t n);  // the same for 64-bit words (hashes)
  // in[size·n]: piece r goes to rank r; out[size·n]: piece r came from rank r.
  void all_to_all(float* out, const float* in, int64_t n);
  void broadcast(void* data, int64_t bytes, int root);
  void barrier();
  // Point to point by group rank. The tag tells concurrent transfers between two ranks apart.
  // A receive's n must equal the matching send's n (both are split into the same chunks).
  void send(const float* x, int64_t n, int dest, int tag);
  void recv(float* x, int64_t n, int src, int tag);
  CommRequest isend(const float* x, int64_t n, int dest, int tag);
  CommRequest irecv(float* x, int64_t n, int src, int tag);
  void wait(CommRequest& r);
  // send[ns] to dest while receiving recv[nr] from src (a ring shift).
  void sendrecv(const float* send, int64_t ns, int dest, float* recv, int64_t nr, int src, int tag);

  // Bytes this rank has sent through the group (ring-algorithm volume for collectives).
  uint64_t bytes_sent() const { return *bytes_; }
  // Seconds this rank has spent inside the group's calls (waiting included).
  double seconds() const { return *seconds_; }

 private:
  struct Comm;  // the MPI_Comm
  std::shared_ptr<Comm> comm_;
  std::string name_ = "self";
  int size_ = 1, rank_ = 0;
  std::vector<int> world_ranks_;
  std::shared_ptr<uint64_t> bytes_;
  std::shared_ptr<double> seconds_;
  friend struct CommCall;
};

}  // namespace wafer
