// plan/svg.cpp
#include "plan/svg.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"

namespace wafer {

namespace {
std::string fmt(const char* f, double a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, a);
  return buf;
}
std::string rect(double x, double y, double w, double h, const std::string& fill) {
  return str_cat("<rect x='", x, "' y='", y, "' width='", w, "' height='", h, "' fill='", fill,
                 "' stroke='#333' stroke-width='1'/>\n");
}
std::string text(double x, double y, const std::string& s, int size = 11) {
  std::string e;  // XML-escaped
  for (char ch : s) e += ch == '&' ? "&amp;" : ch == '<' ? "&lt;" : ch == '>' ? "&gt;" : std::string(1, ch);
  return str_cat("<text x='", x, "' y='", y, "' font-family='monospace' font-size='", size, "'>", e, "</text>\n");
}
const char* kColors[] = {"#cfe2f3", "#d9ead3", "#fff2cc", "#f4cccc", "#d9d2e9", "#fce5cd", "#d0e0e3", "#ead1dc"};
}  // namespace

std::string cluster_svg(const PlanRequest& r, const PlanResult& p) {
  const Layout& l = p.opts.layout;
  const Machine& mc = r.machine;
  const int world = l.ranks();
  const int per_node = mc.memory_shared ? (world + r.nodes - 1) / r.nodes : mc.devices_per_node;
  const int nodes = (world + per_node - 1) / per_node;
  const double bw = 150, bh = 58, pad = 10, node_w = per_node * (bw + pad) + pad, node_h = bh + 2 * pad + 16;
  // Bytes per step each rank sends per kind of group (ring volumes, as the time model counts them).
  const ModelConfig& c = r.model;
  const int64_t T = p.opts.seq > 0 ? p.opts.seq : c.n_positions;
  const RowShape rs = row_shape(l, p.opts.batch, T);
  const double act = r.act_bytes * double(rs.N) * double(c.n_embd), m = p.opts.micro_batches;
  const double tp_b = l.tp > 1 ? m * (4.0 * c.n_layer / l.pp + 1) * 2.0 * (l.tp - 1) / l.tp * act : 0;
  const double pp_b = l.pp > 1 ? m * 2 * r.act_bytes * double(rs.Ns) * double(c.n_embd) : 0;
  const double dp_b = l.dp * l.cp > 1 ? 2.0 * (l.dp * l.cp - 1) / (l.dp * l.cp) * p.peak.weights : 0;
  const double cp_b = l.cp > 1 ? m * 3.0 * (l.cp - 1) * double(rs.N) * 2 * double(c.n_embd) / l.tp * r.act_bytes *
                                     double(c.n_layer) / l.pp
                               : 0;
  auto crosses = [&](int stride, int size) { return group_crosses_nodes(stride, size, per_node) ? "between nodes" : "in node"; };
  const double W = std::max(node_w + 2 * pad, 620.0), Hh = nodes * (node_h + pad) + 120;
  std::string s = str_cat("<svg xmlns='http://www.w3.org/2000/svg' width='", W, "' height='", Hh, "'>\n");
  s += text(pad, 18, str_cat(c.n_layer, "-layer model on ", mc.name, ": ", layout_label(p.opts)), 13);
  for (int n = 0; n < nodes; ++n) {
    const double y0 = 30 + n * (node_h + pad);
    s += rect(pad, y0, node_w, node_h, "#f8f8f8");
    s += text(pad + 4, y0 + 13, str_cat("node ", n));
    for (int k = 0; k < per_node && n * per_node + k < world; ++k) {
      const int rk = n * per_node + k;
      const Coords co = coords_of(l, rk);
      const double x = pad + pad + k * (bw + pad), y = y0 + 18;
      s += rect(x, y, bw, bh, kColors[co.pp % 8]);
      s += text(x + 4, y + 14, str_cat("rank ", rk));
      s += text(x + 4, y + 28, str_cat("tp", co.tp, " cp", co.cp));
      s += text(x + 4, y + 42, str_cat("dp", co.dp, " pp", co.pp));
    }
  }
  double y = 30 + nodes * (node_h + pad) + 16;
  s += text(pad, y, "traffic per rank per step (MB):", 12);
  s += text(pad, y += 16, str_cat("tp ", fmt("%.1f", tp_b / 1e6), " (", crosses(1, l.tp), ")  cp ", fmt("%.1f", cp_b / 1e6),
                                  " (", crosses(l.tp, l.cp), ")"));
  s += text(pad, y += 16, str_cat("dp ", fmt("%.1f", dp_b / 1e6), " (", crosses(l.tp, l.cp * l.dp), ")  pp ",
                                  fmt("%.1f", pp_b / 1e6), " (", crosses(l.tp * l.cp * l.dp, l.pp), ")"));
  s += text(pad, y += 16, str_cat("step ", fmt("%.3f", p.time.step), " s, peak ", fmt("%.0f", p.peak_mb), " MiB per rank"));
  return s + "</svg>\n";
}

std::string wafer_svg(const WaferRequest& r, const WaferModeResult& w) {
  const int W = r.machine.extra.value("mesh_width", 922), H = r.machine.extra.value("mesh_height", 922);
  const double scale = 600.0 / W, x0 = 20, y0 = 40;
  std::string s = "<svg xmlns='http://www.w3.org/2000/svg' width='900' height='700'>\n";
  s += text(x0, 20, str_cat("WSE-2 (", W, " x ", H, " cores), ", r.model.n_layer, "-layer model: ", w.mode,
                            w.fits ? "" : " (does not fit)"), 13);
  s += rect(x0, y0, W * scale, H * scale, "#eeeeee");
  if (w.mode == "layer-pipelined") {
    int i = 0;
    for (const auto& g : w.regions) {
      s += rect(x0 + g.col_begin * scale, y0, g.cols * scale, H * scale, kColors[i++ % 8]);
      if (g.cols * scale > 9)
        s += str_cat("<text x='", x0 + (g.col_begin + g.cols / 2.0) * scale, "' y='", y0 + 300,
                     "' font-family='monospace' font-size='10' transform='rotate(-90 ", x0 + (g.col_begin + g.cols / 2.0) * scale,
                     " ", y0 + 300, ")'>", g.name, "</text>\n");
    }
    s += text(x0, y0 + H * scale + 20, "regions: columns of the mesh sized by FLOPs; activations flow left to right");
  } else {
    s += text(x0 + 200, y0 + 300, "all cores: one layer at a time", 14);
    s += rect(x0 + W * scale + 60, y0 + 200, 180, 120, "#fff2cc");
    s += text(x0 + W * scale + 70, y0 + 240, "MemoryX: weights,", 12);
    s += text(x0 + W * scale + 70, y0 + 256, "optimizer state", 12);
    s += text(x0 + W * scale + 10, y0 + 190, "weights in / gradients out", 11);
  }
  s += text(x0, y0 + H * scale + 40, w.why);
  return s + "</svg>\n";
}

}  // namespace wafer
