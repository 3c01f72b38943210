// fuzz/fuzz_state_json.cpp: bytes as a checkpoint's state.json (step, AdamW t, checksums,
// the trainer's fields a resume compares).
#include "fuzz.h"
#include "train/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wafer;
  fuzz::expect_wafer_errors([&] {
    CheckpointStateFile st = parse_checkpoint_state(fuzz::bytes(data, size), "ckpt-00000001/state.json");
    fuzz::require(st.crc32.size() == 3 && st.step >= 0 && st.adam_t >= 0 && st.trainer.is_object(),
                  "an accepted state.json has three checksums, counts >= 0 and a trainer object");
  });
  return 0;
}
