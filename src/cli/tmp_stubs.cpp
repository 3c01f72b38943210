#include "cli/commands.h"
namespace wafer::cli {
void add_info_command(CLI::App&) {}
void add_init_command(CLI::App&) {}
void add_logits_command(CLI::App&) {}
void add_generate_command(CLI::App&) {}
void add_eval_command(CLI::App&) {}
void add_bench_command(CLI::App&) {}
}
