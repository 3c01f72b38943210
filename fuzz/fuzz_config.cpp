// fuzz/fuzz_config.cpp: bytes as a model's config.json. An accepted config must survive the
// sums wafer does with it at once (parameter and FLOP counts) and a write/read round trip.
#include "core/json_file.h"
#include "fuzz.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wafer;
  fuzz::expect_wafer_errors([&] {
    ModelConfig c = config_from_json(parse_json(fuzz::bytes(data, size), "config", "config.json"), "config.json");
    volatile int64_t n = parameter_count(c);
    volatile double flops = forward_flops_per_token(c, c.n_positions);
    volatile float s = c.attn_scale();
    (void)n, (void)flops, (void)s;
    const std::string text = config_to_json(c).dump();
    fuzz::require(config_from_json(nlohmann::json::parse(text), "round trip") == c, "config.json round trip");
  });
  return 0;
}
