// cli/commands.h: each subcommand adds itself to the CLI11 app and runs from its callback.
// Commands throw wafer::Error on bad input; main() prints it as one line and exits 1.
#pragma once
#include <CLI/CLI.hpp>

namespace wafer::cli {

void add_tokenize_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_init_command(CLI::App& app);
void add_logits_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_grads_command(CLI::App& app);
void add_prepare_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_plan_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_export_command(CLI::App& app);
void add_quantize_command(CLI::App& app);

}  // namespace wafer::cli
