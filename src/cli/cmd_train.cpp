// cli/cmd_train.cpp: the training commands: `wafer grads` (loss and per-tensor gradient norms of
// one batch), `wafer prepare` (text -> token shards), `wafer train`.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/io_util.h"
#include "core/error.h"
#include "core/file.h"
#include "core/json_file.h"
#include "train/train_step.h"

namespace wafer::cli {

void add_grads_command(CLI::App& app) {
  struct Opts {
    std::string model, batch, out;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("grads", "Loss and the L2 norm of every parameter's gradient for one batch");
  cmd->add_option("--model", o->model, "HF model folder")->required();
  cmd->add_option("--batch", o->batch, "JSON file {\"input_ids\": [[...], ...]}")->required();
  cmd->add_option("--out", o->out, "Output JSON {\"loss\": x, \"grad_norms\": {name: norm}}")->required();
  cmd->callback([o] {
    auto m = load_hf_model(o->model);
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
    TrainStep ts(*m, {});
    StepResult r = ts.compute_grads({batch_from_sequences(seqs)});
    nlohmann::ordered_json out;
    out["loss"] = r.loss;
    out["grad_norm"] = r.grad_norm;
    nlohmann::ordered_json norms = nlohmann::ordered_json::object();
    size_t offset = 0;
    for (const auto& s : parameter_specs(m->config)) {
      double sum = 0;
      for (int64_t i = 0; i < s.numel(); ++i) sum += double(ts.grads()[offset + size_t(i)]) * ts.grads()[offset + size_t(i)];
      norms[s.name] = std::sqrt(sum);
      offset += size_t(s.numel());
    }
    out["grad_norms"] = norms;
    write_file_atomic(o->out, out.dump(2) + "\n");
  });
}

}  // namespace wafer::cli
