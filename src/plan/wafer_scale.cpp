// plan/wafer_scale.cpp: the two CS-2 execution modes (see wafer_scale.h).
//
// Bytes per parameter of training state: 16 (fp16 weights 2, fp32 master 4, fp32 Adam moments 8,
// fp16 gradients 2: the mixed-precision Adam count of Rajbhandari et al. 2020, ZeRO, section 3).
// Activations a layer keeps per sequence: 34·T·C bytes (fp16; Korthikanti et al. 2022, eq. 1
// without the 5·a·T/C score term, which a blockwise attention never stores).
#include "plan/wafer_scale.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/config.h"
#include "train/recipe.h"

namespace wafer {

namespace {
constexpr double kStateBytesPerParam = 16;
double act_bytes_per_seq_layer(const ModelConfig& c, int64_t T) { return 34.0 * double(T) * double(c.n_embd); }
double block_params(const ModelConfig& c) {
  const double C = double(c.n_embd), F = double(c.ffn());
  return 4 * C * C + 2 * C * F + 9 * C + F;
}
// Training FLOPs (forward + backward = 3 × forward) of one block for one sequence of T tokens.
double block_flops(const ModelConfig& c, int64_t T) {
  const double C = double(c.n_embd), F = double(c.ffn()), t = double(T);
  return 3.0 * t * (2 * (4 * C * C + 2 * C * F) + 4 * t * C / 2);
}
double head_flops(const ModelConfig& c, int64_t T) { return 3.0 * double(T) * 2 * double(c.vocab_size * c.n_embd); }
}  // namespace

std::vector<WaferModeResult> plan_wafer_scale(const WaferRequest& r) {
  const Machine& mc = r.machine;
  const ModelConfig& c = r.model;
  WAFER_CHECK(mc.wafer_scale, "[plan] ", mc.name, " is not a wafer-scale machine");
  const int64_t T = r.seq > 0 ? r.seq : c.n_positions;
  const int64_t G = r.global_batch > 0 ? r.global_batch : published_recipe(c).batch_sequences;
  const int W = mc.extra.value("mesh_width", 922), H = mc.extra.value("mesh_height", 922);
  const double sram_core = mc.extra.value("sram_per_core_kb", 48.0) * 1024;
  const double peak = mc.peak_tflops_bf16 * 1e12;
  const double core_rate = peak / (double(W) * H);
  const double eff = mc.gemm_efficiency(double(T), double(c.n_embd), double(c.n_embd));
  const double tokens = double(G) * double(T);
  const double model_flops = 3.0 * forward_flops_per_token(c, T) * tokens;
  std::vector<WaferModeResult> out;

  // --- Layer-pipelined: one region per layer, sized by FLOPs; a pipeline of L+2 regions, 2(L-l)+1
  // sequences in flight at layer l (1F1B over the regions).
  {
    WaferModeResult w;
    w.mode = "layer-pipelined";
    const int64_t L = c.n_layer;
    std::vector<WaferRegion> regs;
    const double emb_bytes = kStateBytesPerParam * double((c.vocab_size + c.n_positions) * c.n_embd);
    regs.push_back({"embedding", 0, 0, 3.0 * double(T) * double(c.n_embd), emb_bytes});
    for (int64_t l = 0; l < L; ++l)
      regs.push_back({str_cat("h.", l), 0, 0, block_flops(c, T),
                      kStateBytesPerParam * block_params(c) + double(2 * (L - l) + 1) * act_bytes_per_seq_layer(c, T)});
    // A tied head reuses wte's weights, but its region needs its own copy in its SRAM.
    regs.push_back({"head", 0, 0, head_flops(c, T), kStateBytesPerParam * double(c.vocab_size * c.n_embd)});
    double total_flops = 0, total_bytes = 0;
    for (auto& g : regs) total_flops += g.flops, total_bytes += g.bytes;
    // Columns: first what each region's bytes need, then the rest by FLOPs (toward each region's
    // FLOP share of the wafer), the remainder to the biggest; throughput is the slowest region's.
    const double col_sram = double(H) * sram_core;
    int used = 0;
    double deficit = 0;
    for (auto& g : regs) {
      g.cols = std::max(1, int(std::ceil(g.bytes / col_sram)));
      used += g.cols;
      deficit += std::max(0.0, double(W) * g.flops / total_flops - g.cols);
    }
    const double scale = used < W && deficit > 0 ? std::min(1.0, double(W - used) / deficit) : 0.0;
    for (auto& g : regs) {
      const int extra = int(std::floor(scale * std::max(0.0, double(W) * g.flops / total_flops - g.cols)));
      g.cols += extra, used += extra;
    }
    auto biggest = std::max_element(regs.begin(), regs.end(), [](auto& a, auto& b) { return a.flops < b.flops; });
    if (used < W) biggest->cols += W - used, used = W;
    int col = 0;
    double slowest = 0;
    std::string short_region;
    for (auto& g : regs) {
      g.col_begin = col, col += g.cols;
      slowest = std::max(slowest, g.flops / (double(g.cols) * H * core_rate * eff));
      if (g.bytes > double(g.cols) * col_sram && short_region.empty()) short_region = g.name;
    }
    // Fabric: each region boundary moves T·C fp16 activations (and their gradient back) per sequence
    // across H links of fabric_bw / (4 · cores) each.
    const double link_bw = 220e15 / 8 / (4.0 * W * H);
    const double hop = 2.0 * 2.0 * double(T) * double(c.n_embd) / (link_bw * H);
    const double per_seq = std::max(slowest, hop);
    w.sram_needed_gb = total_bytes / 1e9;
    w.fits = total_bytes <= mc.mem_gb * 1e9 && short_region.empty() && used <= W;
    w.why = w.fits ? str_cat("weights, training state and in-flight activations (", int(w.sram_needed_gb), " GB) fit the ",
                             mc.mem_gb, " GB of SRAM")
                   : str_cat("needs ", int(w.sram_needed_gb), " GB of SRAM for weights, training state and in-flight "
                             "activations, the wafer has ", mc.mem_gb, " GB",
                             short_region.empty() ? "" : str_cat(" (region ", short_region, " overflows first)"));
    if (w.fits) {  // (a mapping that does not fit has no meaningful speed)
      w.step_s = (double(G) / r.systems + double(regs.size())) * per_seq;  // steady state + pipeline fill
      w.tokens_per_s = tokens / w.step_s;
      w.mfu = model_flops / w.step_s / (r.systems * peak);
    }
    w.regions = regs;
    out.push_back(w);
  }

  // --- Weight streaming: a layer at a time over the whole wafer, b sequences per pass. Each pass
  // streams every layer's weights in (twice: forward and backward) and its gradients out, so the
  // more sequences a pass holds the better; activations either all stay (34·T·C bytes per layer
  // and sequence) or only each layer's input (2·T·C, the backward recomputing the rest: 4/3 the
  // FLOPs). The faster of the two is reported.
  {
    const int64_t local = (G + r.systems - 1) / r.systems;
    const double io = mc.inter.bw_gbs * 1e9, rate = peak * eff;
    WaferModeResult best;
    best.mode = "weight-streaming";
    for (bool recompute : {false, true}) {
      const double per_layer = recompute ? 2.0 * double(T) * double(c.n_embd) : act_bytes_per_seq_layer(c, T);
      const double per_seq = double(c.n_layer) * per_layer + 4.0 * double(T) * double(c.vocab_size);
      const int64_t b = std::min<int64_t>(local, int64_t(mc.mem_gb * 1e9 / per_seq));
      if (b < 1) {
        if (best.why.empty())
          best.why = str_cat("one sequence's activations (", per_seq / 1e9, " GB) exceed the wafer's SRAM");
        continue;
      }
      const int64_t passes = (local + b - 1) / b;
      const double extra = recompute ? 1.0 / 3 : 0.0;  // the forward again in the backward
      auto layer = [&](double params, double flops_per_seq) {
        const double fwd = std::max(double(b) * flops_per_seq / 3 / rate, 2 * params / io);  // weights in
        const double bwd = std::max(double(b) * flops_per_seq * (2.0 / 3 + extra) / rate, 4 * params / io);  // + grads out
        return fwd + bwd;
      };
      const double pass = double(c.n_layer) * layer(block_params(c), block_flops(c, T)) +
                          layer(double(c.vocab_size * c.n_embd), head_flops(c, T));
      WaferModeResult w;
      w.mode = "weight-streaming";
      w.fits = true;
      w.step_s = double(passes) * pass;
      w.tokens_per_s = tokens / w.step_s;
      w.mfu = model_flops / w.step_s / (r.systems * peak);
      w.sram_needed_gb = double(b) * per_seq / 1e9;
      w.why = str_cat("weights and optimizer state stream from MemoryX; ", b, " sequences' activations",
                      recompute ? " (each layer's input only, recomputed)" : "", " stay in SRAM, ", passes,
                      " pass(es) per step on each of ", r.systems, " CS-2");
      if (!best.fits || w.step_s < best.step_s) best = w;
    }
    out.push_back(best);
  }
  return out;
}

nlohmann::ordered_json wafer_result_json(const WaferModeResult& w) {
  nlohmann::ordered_json j;
  j["layout"] = {{"mode", w.mode}};
  j["fits"] = w.fits;
  j["sram_needed_gb"] = w.sram_needed_gb;
  j["step_s"] = w.step_s;
  j["tokens_per_s"] = w.tokens_per_s;
  j["mfu"] = w.mfu;
  j["why"] = w.why;
  nlohmann::ordered_json regs = nlohmann::ordered_json::array();
  for (const auto& g : w.regions)
    regs.push_back({{"name", g.name}, {"col_begin", g.col_begin}, {"cols", g.cols}, {"gb", g.bytes / 1e9}});
  if (!w.regions.empty()) j["regions"] = regs;
  return j;
}

}  // namespace wafer
