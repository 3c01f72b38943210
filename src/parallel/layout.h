// parallel/layout.h: how a job's ranks split the model: dp × pp × tp × cp (+ Megatron sequence
// parallelism), each rank's coordinates, the groups it talks through, and the checks that a
// layout fits a model before any work starts.
//
// Rank order: tp fastest, then cp, then dp, then pp:
//   world_rank = tp + TP·(cp + CP·(dp + DP·pp))
// so a tensor-parallel group (the chattiest: two all-reduces per block) is adjacent ranks, on one
// node when a job spans nodes, and pipeline stages (the least traffic) are the farthest apart.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "parallel/comm.h"

namespace wafer {

enum class PipeSchedule { GPipe, OneFOneB };

struct Layout {
  int tp = 1, pp = 1, cp = 1, dp = 1;
  bool sp = false;      // Megatron sequence parallelism inside the tp group
  int zero = 0;         // 1: AdamW state sharded over the data-parallel ranks (ZeRO-1)
  PipeSchedule schedule = PipeSchedule::OneFOneB;
  // Blocks per pipeline stage (empty: as even as possible, earlier stages taking the remainder).
  // Uneven splits balance the last stage's LM head and loss against the others' blocks.
  std::vector<int64_t> stage_layers;
  int ranks() const { return tp * pp * cp * dp; }
  std::string describe() const;  // "tp2 pp1 cp1 dp2 (sp, zero1, 1f1b)"
};

PipeSchedule schedule_from_name(const std::string& name);  // "gpipe" | "1f1b"

struct Coords {
  int tp = 0, cp = 0, dp = 0, pp = 0;
};
Coords coords_of(const Layout& l, int world_rank);

// Throws with a message naming the flag, the model's number and the fix when the layout does not
// fit: product != world size, tp not dividing the heads or the MLP width, pp > layers.
// (The model's numbers come as plain integers: parallel/ sits below model/.)
void check_layout(const Layout& l, int64_t n_head, int64_t ffn, int64_t n_layer, int world);
// First and one-past-last block of pipeline stage `stage` of `l` for a model of n_layer blocks.
std::pair<int64_t, int64_t> stage_blocks(const Layout& l, int64_t n_layer, int stage);
// Throws unless T tokens split into the 2·cp equal zigzag chunks (cp > 1).
void check_sequence(const Layout& l, int64_t T, const std::string& what);

// This rank's place in the layout and its groups. Creating it is collective (every rank at once).
struct ParallelState {
  Layout layout;
  Coords at;
  Group tp, cp, dp, pp;
  Group dpcp;   // the data-parallel and context-parallel ranks of one model shard: gradients sum here
  Group embed;  // pp > 1 with a tied head: the first and last stage of one pipeline (wte's two copies)
  Group world;

  bool first_stage() const { return at.pp == 0; }
  bool last_stage() const { return at.pp == layout.pp - 1; }
  static ParallelState create(const Layout& l);
  static const ParallelState& single();  // a layout of one: every group is this rank alone
};

}  // namespace wafer
