// plan/svg.h: pictures of a chosen mapping. A cluster: ranks as boxes grouped by node, each with
// its tp/cp/dp/pp coordinates, and the bytes per step each kind of group moves on its link level.
// The CS-2: the wafer as a grid of mesh columns with each layer's region (layer-pipelined), or the
// whole wafer running one layer at a time beside MemoryX (weight streaming).
#pragma once
#include <string>

#include "plan/planner.h"
#include "plan/wafer_scale.h"

namespace wafer {

std::string cluster_svg(const PlanRequest& r, const PlanResult& p);
std::string wafer_svg(const WaferRequest& r, const WaferModeResult& w);

}  // namespace wafer
