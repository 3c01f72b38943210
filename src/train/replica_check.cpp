// train/replica_check.cpp
#include "train/replica_check.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>

#include "core/error.h"

namespace wafer {

uint64_t hash_floats(const float* x, int64_t n) {
  // Two floats per 64-bit word: xor in, multiply by an odd constant (invertible mod 2^64), rotate.
  // Each step is a bijection, so a change in one word cannot cancel out. Length is mixed in last.
  constexpr uint64_t kMul = 0x9e3779b97f4a7c15ull;
  uint64_t h = 0x243f6a8885a308d3ull;
  int64_t i = 0;
  for (; i + 2 <= n; i += 2) {
    uint64_t w;
    std::memcpy(&w, x + i, 8);
    h = (h ^ w) * kMul;
    h = h << 29 | h >> 35;
  }
  if (i < n) {
    uint32_t w;
    std::memcpy(&w, x + i, 4);
    h = ((h ^ w) * kMul);
  }
  return (h ^ uint64_t(n)) * kMul;
}

namespace {

std::string hex(uint64_t h) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, h);
  return buf;
}

// Compares hashes[k] (one per tensor, the same tensors in the same order on every rank of `g`)
// across g; throws at the first tensor whose ranks disagree. `what` says why they should agree.
void compare_in_group(Group g, const std::vector<uint64_t>& hashes, const std::vector<std::string>& names,
                      const char* what, int64_t step) {
  const int P = g.size();
  if (P == 1 || hashes.empty()) return;
  const size_t k = hashes.size();
  std::vector<uint64_t> all(k * size_t(P));  // all[r·k + j]: rank r's hash of tensor j
  g.all_gather(all.data(), hashes.data(), int64_t(k));
  for (size_t j = 0; j < k; ++j) {
    std::map<uint64_t, std::vector<int>> holders;  // hash -> the world ranks holding it
    for (int r = 0; r < P; ++r) holders[all[size_t(r) * k + j]].push_back(g.world_rank_of(r));
    if (holders.size() == 1) continue;
    // The largest party first: with three or more replicas, the odd one out is named last.
    std::vector<std::pair<uint64_t, std::vector<int>>> parties(holders.begin(), holders.end());
    std::stable_sort(parties.begin(), parties.end(),
                     [](const auto& a, const auto& b) { return a.second.size() > b.second.size(); });
    std::string who;
    for (const auto& [h, ranks] : parties) {
      who += who.empty() ? "" : "; ";
      who += ranks.size() == 1 ? "world rank " : "world ranks ";
      for (size_t i = 0; i < ranks.size(); ++i) who += (i ? ", " : "") + std::to_string(ranks[i]);
      who += (ranks.size() == 1 ? " holds hash " : " hold hash ") + hex(h);
    }
    fail(str_cat("[check-replicas] step ", step, ": tensor '", names[j], "' differs between the ", what, " (group ",
                 g.name(), "): ", who, ". Stopped before any checkpoint of this step; the last checkpoint is intact"));
  }
}

}  // namespace

void check_replicas(const Model& m, const ParallelState& par, int64_t step) {
  const std::vector<ParamSpec> specs = parameter_specs(m.config, m.shard);
  std::vector<uint64_t> every, replicated, wte;
  std::vector<std::string> every_names, replicated_names, wte_names;
  int64_t off = 0;
  for (const ParamSpec& s : specs) {
    const uint64_t h = hash_floats(m.params.data() + off, s.numel());
    off += s.numel();
    every.push_back(h);
    every_names.push_back(s.name);
    if (s.tp_replicated) {
      replicated.push_back(h);
      replicated_names.push_back(s.name);
    }
    if (s.name == "transformer.wte.weight") {
      wte.push_back(h);
      wte_names.push_back(s.name);
    }
  }
  WAFER_CHECK(off == int64_t(m.params.size()), "[check-replicas] the parameter list covers ", off, " of ",
              m.params.size(), " floats");
  compare_in_group(par.dpcp, every, every_names, "data- and context-parallel replicas", step);
  compare_in_group(par.tp, replicated, replicated_names, "tensor-parallel ranks, which all hold it whole", step);
  if (m.config.tie_word_embeddings)
    compare_in_group(par.embed, wte, wte_names, "first and last pipeline stages' copies of the tied embedding", step);
}

void corrupt_for_fault_test(Model& m) {
  std::string name;
  if (!fault_due("corrupt", &name)) return;
  int64_t off = 0;
  for (const ParamSpec& s : parameter_specs(m.config, m.shard)) {
    if (s.name == name) {
      m.params[size_t(off)] += 1e-3f;
      return;
    }
    off += s.numel();
  }
  fail(str_cat("[fault] WAFER_FAULT names tensor '", name, "', which this rank does not hold"));
}

}  // namespace wafer
