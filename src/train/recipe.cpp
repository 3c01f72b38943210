// train/recipe.cpp: the recipe table of the Cerebras-GPT paper.
#include "train/recipe.h"

#include <cmath>
#include <cstdlib>

namespace wafer {

namespace {
struct Row {
  int64_t width;
  double lr;
  Decay decay;
  double eps;
  int64_t batch;
};
constexpr Row kRows[] = {
    {768, 6e-4, Decay::Linear, 1e-8, 120},   {1088, 6e-4, Decay::Linear, 1e-8, 264},
    {1536, 2e-4, Decay::Linear, 1e-8, 264},  {2048, 2e-4, Decay::Cosine, 1e-8, 528},
    {2560, 2e-4, Decay::Cosine, 1e-8, 528},  {4096, 1.2e-4, Decay::Linear, 1e-9, 1040},
    {5120, 1.2e-4, Decay::Cosine, 1e-9, 720},
};
}  // namespace

Recipe published_recipe(const ModelConfig& c) {
  const Row* best = &kRows[0];
  for (const Row& r : kRows)
    if (std::llabs(r.width - c.n_embd) < std::llabs(best->width - c.n_embd)) best = &r;
  Recipe rec;
  rec.peak_lr = c.is_mup() ? 6e-3 : best->lr;
  rec.decay = best->decay;
  rec.final_ratio = 0.1;
  rec.adamw = {.beta1 = 0.9, .beta2 = 0.95, .eps = best->eps, .weight_decay = 0.1};
  rec.clip_norm = 1.0;
  rec.warmup_tokens = 375'000'000;
  rec.batch_sequences = best->batch;
  return rec;
}

void enable_mup(ModelConfig& c) {
  c.mup_base_width = 256;
  c.mup_embeddings_scale = 10.0;
  c.mup_output_scale = 256.0 / double(c.n_embd);
  c.mup_scale_qk_dot_by_d = true;
}

}  // namespace wafer
