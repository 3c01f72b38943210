// train/recipe.h: the published Cerebras-GPT training recipe, chosen by model width (the
// nearest published size), and μP settings (base width 256).
#pragma once
#include <cstdint>

#include "model/config.h"
#include "train/adamw.h"
#include "train/schedule.h"

namespace wafer {

struct Recipe {
  double peak_lr;       // 6e-4 (111M, 256M), 2e-4 (590M-2.7B), 1.2e-4 (6.7B, 13B); μP: base 6e-3
  Decay decay;          // linear (111M, 256M, 590M, 6.7B) or cosine (1.3B, 2.7B, 13B)
  double final_ratio;   // 0.1
  AdamWOptions adamw;   // β (0.9, 0.95), eps 1e-8 (1e-9 for 6.7B, 13B), weight decay 0.1
  double clip_norm;     // 1.0
  int64_t warmup_tokens;  // ~375M
  int64_t batch_sequences;  // published global batch (sequences of 2048 tokens)
};

Recipe published_recipe(const ModelConfig& c);
// Turns on μP with base width 256: embeddings ×10, logits ×256/C, attention 1/D.
void enable_mup(ModelConfig& c);

}  // namespace wafer
