// parallel/layout.cpp
#include "parallel/layout.h"

#include "core/error.h"

namespace wafer {

std::string Layout::describe() const {
  std::string s = str_cat("tp", tp, " pp", pp, " cp", cp, " dp", dp);
  std::string extra;
  if (sp) extra += "sp";
  if (zero) extra += std::string(extra.empty() ? "" : ", ") + "zero1";
  if (pp > 1) extra += std::string(extra.empty() ? "" : ", ") + (schedule == PipeSchedule::GPipe ? "gpipe" : "1f1b");
  return extra.empty() ? s : s + " (" + extra + ")";
}

PipeSchedule schedule_from_name(const std::string& name) {
  if (name == "gpipe") return PipeSchedule::GPipe;
  if (name == "1f1b") return PipeSchedule::OneFOneB;
  fail(str_cat("[layout] expected --schedule gpipe or 1f1b, found '", name, "'"));
}

Coords coords_of(const Layout& l, int r) {
  Coords c;
  c.tp = r % l.tp;
  r /= l.tp;
  c.cp = r % l.cp;
  r /= l.cp;
  c.dp = r % l.dp;
  c.pp = r / l.dp;
  return c;
}

void check_layout(const Layout& l, int64_t n_head, int64_t ffn, int64_t n_layer, int world) {
  WAFER_CHECK(l.tp >= 1 && l.pp >= 1 && l.cp >= 1 && l.dp >= 1, "[layout] expected --tp, --pp, --cp, --dp >= 1, found ",
              l.describe());
  WAFER_CHECK(l.ranks() == world, "[layout] expected --tp x --cp x --dp x --pp = ", l.tp, " x ", l.cp, " x ", l.dp,
              " x ", l.pp, " = ", l.ranks(), " to equal the number of ranks, found ", world,
              world == 1 ? " (start the job with mpirun -np N)" : " (mpirun -np)");
  WAFER_CHECK(n_head % l.tp == 0, "[layout] --tp ", l.tp, " must divide the model's ", n_head,
              " attention heads (each head stays whole on one rank); try a --tp that divides ", n_head);
  WAFER_CHECK(ffn % l.tp == 0, "[layout] --tp ", l.tp, " must divide the MLP width ", ffn);
  WAFER_CHECK(l.pp <= n_layer, "[layout] --pp ", l.pp, " is more pipeline stages than the model's ", n_layer,
              " layers");
  if (!l.stage_layers.empty()) {
    int64_t sum = 0;
    bool positive = true;
    for (int64_t n : l.stage_layers) sum += n, positive = positive && n >= 1;
    WAFER_CHECK(int(l.stage_layers.size()) == l.pp && positive && sum == n_layer, "[layout] --stage-layers must give ",
                l.pp, " counts (one per stage, each >= 1) adding up to the model's ", n_layer, " layers; found ",
                l.stage_layers.size(), " counts adding up to ", sum);
  }
  WAFER_CHECK(l.zero == 0 || l.zero == 1, "[layout] expected --zero 0 or 1, found ", l.zero);
}

void check_sequence(const Layout& l, int64_t T, const std::string& what) {
  if (l.cp == 1) return;
  WAFER_CHECK(T % (2 * l.cp) == 0, "[layout] --cp ", l.cp, " splits each sequence into 2 x ", l.cp, " = ", 2 * l.cp,
              " equal chunks (zigzag), so ", what, " must be a multiple of ", 2 * l.cp, "; found ", T);
}

std::pair<int64_t, int64_t> stage_blocks(const Layout& l, int64_t n_layer, int stage) {
  if (!l.stage_layers.empty()) {
    int64_t begin = 0;
    for (int s = 0; s < stage; ++s) begin += l.stage_layers[size_t(s)];
    return {begin, begin + l.stage_layers[size_t(stage)]};
  }
  const int64_t base = n_layer / l.pp, extra = n_layer % l.pp;
  const int64_t begin = stage * base + std::min<int64_t>(stage, extra);
  return {begin, begin + base + (stage < extra ? 1 : 0)};
}

ParallelState ParallelState::create(const Layout& l) {
  ParallelState s;
  s.layout = l;
  const int r = world_rank();
  s.at = coords_of(l, r);
  const Coords a = s.at;
  // color: the coordinates the group does not span; key: the position along the one it does.
  s.tp = Group::split_world("tp", ((a.pp * l.dp + a.dp) * l.cp + a.cp), a.tp);
  s.cp = Group::split_world("cp", ((a.pp * l.dp + a.dp) * l.tp + a.tp), a.cp);
  s.dp = Group::split_world("dp", ((a.pp * l.cp + a.cp) * l.tp + a.tp), a.dp);
  s.pp = Group::split_world("pp", ((a.dp * l.cp + a.cp) * l.tp + a.tp), a.pp);
  s.dpcp = Group::split_world("dp", a.pp * l.tp + a.tp, a.dp * l.cp + a.cp);
  const bool end_stage = a.pp == 0 || a.pp == l.pp - 1;
  s.embed = Group::split_world("embedding", end_stage ? ((a.dp * l.cp + a.cp) * l.tp + a.tp) : l.ranks() + r, a.pp);
  s.world = Group::split_world("world", 0, r);
  return s;
}

const ParallelState& ParallelState::single() {
  static const ParallelState s;
  return s;
}

}  // namespace wafer
