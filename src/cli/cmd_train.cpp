// cli/cmd_train.cpp: the training commands: `wafer grads` (loss and per-tensor gradient norms of
// one batch), `wafer prepare` (text -> token shards), `wafer train`.
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/io_util.h"
#include "core/error.h"
#include "core/file.h"
#include "core/json_file.h"
#include "io/safetensors.h"
#include "model/sharding.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/recipe.h"
#include "train/trainer.h"
#include "train/train_step.h"

namespace wafer::cli {

void add_grads_command(CLI::App& app) {
  struct Opts {
    std::string model, batch, out, grads_out, recompute = "none";
    int64_t micro_batches = 1;
    LayoutOptions layout;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("grads", "Loss and the L2 norm of every parameter's gradient for one batch");
  cmd->add_option("--model", o->model, "HF model folder")->required();
  cmd->add_option("--batch", o->batch, "JSON file {\"input_ids\": [[...], ...]}")->required();
  cmd->add_option("--out", o->out, "Output JSON {\"loss\": x, \"grad_norms\": {name: norm}}")->required();
  cmd->add_option("--grads-out", o->grads_out, "Also write every gradient tensor (HF names, F32) to this .safetensors");
  cmd->add_option("--micro-batches", o->micro_batches, "Split the batch's rows into this many micro-batches");
  cmd->add_option("--recompute", o->recompute, "Activation recomputation: none, selective or full");
  o->layout.add_to(cmd, true);
  cmd->callback([o] {
    WAFER_CHECK(o->layout.layout.zero == 0, "[grads] --zero shards the optimizer, and grads takes no optimizer step");
    auto par = o->layout.start(load_hf_config(o->model));
    auto m = load_hf_shard(o->model, *par);
    nlohmann::json j = read_json_file(o->batch, "grads");
    WAFER_CHECK(j.is_object() && j.contains("input_ids") && j["input_ids"].is_array() && !j["input_ids"].empty(),
                "[grads] ", o->batch, ": expected {\"input_ids\": [[ids...], ...]}");
    std::vector<std::vector<int32_t>> seqs;
    for (const auto& row : j["input_ids"]) {
      WAFER_CHECK(row.is_array(), "[grads] ", o->batch, ": each input_ids row must be an array of ids");
      std::vector<int32_t> s;
      for (const auto& id : row) {
        WAFER_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < m->config.vocab_size,
                    "[grads] ", o->batch, ": token id ", id.dump(), " is out of the vocabulary [0, ",
                    m->config.vocab_size, ")");
        s.push_back(id.get<int32_t>());
      }
      WAFER_CHECK(int64_t(s.size()) <= m->config.n_positions, "[grads] a row of ", s.size(),
                  " tokens exceeds the model's context of ", m->config.n_positions);
      seqs.push_back(std::move(s));
    }
    const int64_t M = o->micro_batches;
    WAFER_CHECK(M >= 1 && int64_t(seqs.size()) % M == 0, "[grads] --micro-batches ", M, " must divide the batch's ",
                seqs.size(), " rows");
    std::vector<Batch> micro;
    const size_t rows = seqs.size() / size_t(M);
    for (int64_t k = 0; k < M; ++k)
      micro.push_back(batch_from_sequences({seqs.begin() + long(size_t(k) * rows), seqs.begin() + long(size_t(k + 1) * rows)}));
    TrainStep ts(*m, *par, {});
    ts.set_recompute(recompute_from_name(o->recompute));
    StepResult r = ts.compute_grads(micro);
    const ModelConfig& c = m->config;
    std::vector<float> g = gather_to_rank0(c, m->shard, ts.grads().data(), *par);  // whole-model layout
    if (!is_rank0()) return;
    nlohmann::ordered_json out;
    out["loss"] = r.loss;
    out["grad_norm"] = r.grad_norm;
    out["layout"] = par->layout.describe();
    nlohmann::ordered_json norms = nlohmann::ordered_json::object();
    std::vector<TensorToWrite> tensors;
    size_t offset = 0;
    for (const auto& s : parameter_specs(c)) {
      double sum = 0;
      for (int64_t i = 0; i < s.numel(); ++i) sum += double(g[offset + size_t(i)]) * g[offset + size_t(i)];
      norms[s.name] = std::sqrt(sum);
      tensors.push_back({s.name, DType::F32, s.shape, g.data() + offset});
      offset += size_t(s.numel());
    }
    out["grad_norms"] = norms;
    if (!o->grads_out.empty()) write_safetensors(o->grads_out, tensors);
    write_file_atomic(o->out, out.dump(2) + "\n");
  });
}

void add_prepare_command(CLI::App& app) {
  struct Opts {
    std::vector<std::string> inputs;
    std::string tokenizer, out;
    PrepareOptions prep;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("prepare", "Tokenize text files or folders into token shards for training");
  cmd->add_option("--input", o->inputs, "Text files or folders (recursive); repeatable")->required()->expected(1, -1);
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer folder")->required();
  cmd->add_option("--out", o->out, "Dataset folder to write")->required();
  cmd->add_option("--val-fraction", o->prep.val_fraction, "Share of tokens held out for validation (default 0.01)");
  cmd->add_option("--shard-tokens", o->prep.shard_tokens, "Tokens per shard at most");
  cmd->callback([o] {
    auto tok = Tokenizer::load(o->tokenizer);
    o->prep.progress = isatty(fileno(stderr));
    PrepareResult r = prepare_dataset(o->inputs, *tok, o->tokenizer, o->out, o->prep);
    std::printf("wrote %s: read %lld text files (%.2f MB) -> %lld train + %lld validation tokens\n", o->out.c_str(),
                (long long)r.files, double(r.bytes) / 1e6, (long long)r.train_tokens, (long long)r.val_tokens);
    if (r.skipped > 0)
      std::printf("  skipped %lld file%s that %s not UTF-8 text (binary data, such as %s)\n", (long long)r.skipped,
                  r.skipped == 1 ? "" : "s", r.skipped == 1 ? "is" : "are", r.first_skipped.c_str());
  });
}

void add_train_command(CLI::App& app) {
  struct Opts {
    std::string preset, config, init, data, out, decay, tokenizer, precision = "fp32", recompute = "none";
    int64_t stop_at = 0, steps = 0, batch = 4, seq = 256, micro_batches = 1, warmup = -1, checkpoint_every = 100, eval_every = 50,
            check_replicas = 0;
    double lr = 0, final_ratio = 0.1, peak_gflops = 355;
    uint64_t seed = 1234;
    bool resume = false, mup = false, quiet = false;
    ShapeOverrides shape;
    LayoutOptions layout;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("train", "Train (or fine-tune with --init) a model on a prepared dataset");
  cmd->add_option("--preset", o->preset, "Start from a preset shape, randomly initialised");
  cmd->add_option("--config", o->config, "Start from a config.json, randomly initialised");
  cmd->add_option("--init", o->init, "Start from an HF model folder (fine-tuning)");
  cmd->add_option("--data", o->data, "Dataset folder written by wafer prepare")->required();
  cmd->add_option("--out", o->out, "Run folder: metrics.jsonl, loss.svg, checkpoints, final/")->required();
  cmd->add_option("--steps", o->steps, "Total optimizer steps of the run")->required();
  cmd->add_option("--batch", o->batch, "Sequences per micro-batch");
  cmd->add_option("--seq", o->seq, "Tokens per sequence");
  cmd->add_option("--micro-batches", o->micro_batches, "Micro-batches per step (gradient accumulation)");
  cmd->add_option("--lr", o->lr, "Peak learning rate (default: the published recipe for this size)");
  cmd->add_option("--warmup", o->warmup, "Warmup steps (default: ~375M tokens, at most a tenth of the run)");
  cmd->add_option("--decay", o->decay, "linear or cosine (default: the published recipe)");
  cmd->add_option("--final-lr-ratio", o->final_ratio, "Final LR as a fraction of the peak");
  cmd->add_option("--seed", o->seed, "Seed for initialisation and data order");
  cmd->add_option("--checkpoint-every", o->checkpoint_every, "Steps between checkpoints (0 = only at the end)");
  cmd->add_option("--eval-every", o->eval_every, "Steps between validation losses (0 = only at the end)");
  cmd->add_option("--peak-gflops", o->peak_gflops, "Peak FLOP rate assumed for MFU, in GFLOP/s");
  cmd->add_option("--stop-at", o->stop_at, "Checkpoint and stop after this step (resume later with --resume)");
  cmd->add_flag("--resume", o->resume, "Continue the run in --out from its newest checkpoint");
  cmd->add_flag("--mup", o->mup, "Use μP (base width 256) for a preset or config");
  cmd->add_flag("--quiet", o->quiet, "No progress line");
  add_precision_option(cmd, o->precision, false);
  cmd->add_option("--recompute", o->recompute,
                  "Activation recomputation: none (default), selective (attention's internals) or full (each "
                  "block from its input); the gradients are bit-identical");
  cmd->add_option("--check-replicas", o->check_replicas,
                  "Every N steps and at every checkpoint, the ranks that hold the same parameters (dp and cp "
                  "replicas, tp ranks for the tensors they all hold whole) compare hashes of them; a mismatch "
                  "stops the run naming the step, tensor and ranks (0 = off)");
  o->shape.add_to(cmd);
  o->layout.add_to(cmd, true);
  cmd->callback([o] {
    WAFER_CHECK(o->check_replicas >= 0, "[train] expected --check-replicas >= 0, found ", o->check_replicas);
    WAFER_CHECK(o->steps >= 1, "[train] expected --steps >= 1, found ", o->steps);
    WAFER_CHECK(o->batch >= 1 && o->seq >= 2 && o->micro_batches >= 1,
                "[train] expected --batch >= 1, --seq >= 2, --micro-batches >= 1");
    Dataset data(o->data);
    // The model's config first; the layout then says which shard this rank loads or builds.
    ModelConfig c;
    CheckpointInfo ck;
    int64_t start = 0;
    const bool resuming = o->resume && has_checkpoint(o->out);
    if (resuming) {
      ck = open_checkpoint(o->out);
      c = ck.config;
      start = ck.state.step;
      const auto& x = ck.state.trainer;
      WAFER_CHECK(x.value("batch", o->batch) == o->batch && x.value("seq", o->seq) == o->seq &&
                      x.value("micro_batches", o->micro_batches) == o->micro_batches &&
                      x.value("seed", o->seed) == o->seed,
                  "[train] --resume must keep the run's --batch ", x.value("batch", 0), " --seq ", x.value("seq", 0),
                  " --micro-batches ", x.value("micro_batches", 0), " --seed ", x.value("seed", 0));
      WAFER_CHECK(start <= o->steps, "[train] the checkpoint is at step ", start, ", past --steps ", o->steps);
      if (is_rank0()) std::fprintf(stderr, "[train] resuming %s from step %lld\n", o->out.c_str(), (long long)start);
    } else {
      WAFER_CHECK(!has_checkpoint(o->out), "[train] ", o->out,
                  " already holds a run; pass --resume to continue it or choose another --out");
      if (o->resume && is_rank0()) std::fprintf(stderr, "[train] %s has no checkpoint yet; starting a new run\n", o->out.c_str());
      if (!o->init.empty()) {
        WAFER_CHECK(o->preset.empty() && o->config.empty(), "[train] give one of --preset, --config, --init");
        c = load_hf_config(o->init);
      } else {
        c = resolve_config(o->preset, o->config, "");
        o->shape.apply(c);
        if (o->mup) enable_mup(c);
      }
    }
    auto par = o->layout.start(c);
    check_sequence(par->layout, o->seq, "--seq");
    WAFER_CHECK(o->batch % par->layout.dp == 0, "[layout] --dp ", par->layout.dp, " must divide --batch ", o->batch,
                " (each data-parallel rank takes an equal share of every micro-batch's sequences)");
    // Loaded models come in as this rank's slices only. A new model is initialised whole on every
    // rank (one random stream over the whole parameter list, the same on every layout) and cut.
    const Shard sh = shard_for(c, *par);
    std::unique_ptr<Model> m;
    if (resuming) {
      m = load_checkpoint_shard(ck, sh);
    } else if (!o->init.empty()) {
      m = load_hf_model(o->init, c, sh);
    } else {
      m = std::make_unique<Model>(c);
      init_weights(*m, {.seed = o->seed});
      if (!(sh == m->shard)) m = extract_shard(*m, sh);
    }
    set_precision(*m, parse_precision(o->precision));
    const Recompute recompute = recompute_from_name(o->recompute);
    const Recipe rec = published_recipe(c);
    TrainOptions t;
    t.run_dir = o->out;
    t.steps = o->steps;
    t.batch = o->batch;
    t.seq = o->seq;
    t.micro_batches = o->micro_batches;
    t.seed = o->seed;
    t.adamw = rec.adamw;
    t.clip_norm = rec.clip_norm;
    t.checkpoint_every = o->checkpoint_every;
    t.stop_at = o->stop_at;
    t.eval_every = o->eval_every;
    t.peak_flops = o->peak_gflops * 1e9;
    t.progress = !o->quiet && is_rank0();
    t.progress_tty = isatty(fileno(stderr));
    t.recompute = recompute;
    t.check_replicas = o->check_replicas;
    t.tokenizer_dir = !data.tokenizer_dir().empty() && Tokenizer::present(data.tokenizer_dir()) ? data.tokenizer_dir() : "";
    const int64_t tokens_per_step = o->batch * o->micro_batches * o->seq;
    int64_t warmup = o->warmup;
    if (warmup < 0) {  // the published ~375M tokens, capped to a tenth of a short run
      warmup = (rec.warmup_tokens + tokens_per_step - 1) / tokens_per_step;
      warmup = std::min(warmup, std::max<int64_t>(1, o->steps / 10));
    }
    t.schedule = {.peak = o->lr > 0 ? o->lr : rec.peak_lr, .warmup_steps = warmup, .total_steps = o->steps,
                  .decay = o->decay.empty() ? rec.decay : decay_from_name(o->decay), .final_ratio = o->final_ratio};
    if (t.progress) {
    if (par->world.size() > 1)
      std::fprintf(stderr, "[train] %d ranks: %s\n", par->world.size(), par->layout.describe().c_str());
    std::fprintf(stderr, "[train] %lld parameters (L=%lld C=%lld H=%lld)%s, %lld train tokens; %lld tokens/step (%lld x %lld x %lld)\n",
                 (long long)parameter_count(c), (long long)c.n_layer, (long long)c.n_embd, (long long)c.n_head,
                 c.is_mup() ? ", muP" : "", (long long)data.train_tokens(), (long long)tokens_per_step,
                 (long long)o->micro_batches, (long long)o->batch, (long long)o->seq);
    std::fprintf(stderr, "[train] schedule: %s\n", t.schedule.describe().c_str());
    std::fprintf(stderr, "[train] AdamW beta (%.2f, %.2f), eps %.0e, weight decay %.2f, clip %.1f; MFU = 3 x (2N' + 4LCT) "
                 "FLOPs/token x tokens/s / %.0f GFLOP/s\n",
                 t.adamw.beta1, t.adamw.beta2, t.adamw.eps, t.adamw.weight_decay, t.clip_norm, o->peak_gflops);
    }
    run_training(*m, *par, data, t, start, resuming ? &ck : nullptr);
    if (o->stop_at > 0 && o->stop_at < o->steps) return;
    if (!is_rank0()) return;
    std::printf("trained %s: %lld steps; HF model in %s/final\n", o->out.c_str(), (long long)o->steps, o->out.c_str());
  });
}

}  // namespace wafer::cli
