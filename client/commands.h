// The `lrtune` subcommands that need no server: `schedule` and `analyze`.
//
// Each command registers its flags on the CLI11 app (read once, in main,
// into an Options struct) and runs from the filled struct:
//
//   ScheduleOptions opts;
//   CLI::App* cmd = AddScheduleCommand(app, opts);
//   ...  if (cmd->parsed()) return RunSchedule(opts, std::cout, std::cerr);
//
// Run functions return the process exit code (kExitOk, kExitUsage, ...) and
// write errors as one line on `err`.
#ifndef LRTUNE_CLIENT_COMMANDS_H_
#define LRTUNE_CLIENT_COMMANDS_H_

#include <cstdint>
#include <map>
#include <ostream>
#include <string>

#include "CLI/CLI.hpp"

namespace lrtune {

// Exit codes of every lrtune command.
inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 2;      // bad flags, bad input files
inline constexpr int kExitJobFailed = 3;  // a job ran and failed
inline constexpr int kExitUnreachable = 4;

struct ScheduleOptions {
  // Parameter name (snake_case, see core/schedule_params.h) -> text value,
  // for every flag the user gave.
  std::map<std::string, std::string> params;
  // Unset (kStepsUnset): the schedule's length, if it is bounded.
  static constexpr int64_t kStepsUnset = -(int64_t{1} << 62);
  int64_t steps = kStepsUnset;
  int64_t warmup_steps = 0;  // 0: no warmup
  double warmup_start_factor = 0.1;
  bool csv = false;  // CSV with a header instead of a table
};

struct AnalyzeOptions {
  std::string csv_path;         // "-" reads stdin
  int64_t iters_per_epoch = 0;  // 0: unknown
  int stepsize_k = 4;           // stepsize = k x iters_per_epoch
  double smoothing = 0.98;      // EMA beta
  double diverge = 4.0;         // divergence factor
  bool json = false;
};

CLI::App* AddScheduleCommand(CLI::App& app, ScheduleOptions& opts);
int RunSchedule(const ScheduleOptions& opts, std::ostream& out,
                std::ostream& err);

CLI::App* AddAnalyzeCommand(CLI::App& app, AnalyzeOptions& opts);
int RunAnalyze(const AnalyzeOptions& opts, std::ostream& out,
               std::ostream& err);

}  // namespace lrtune

#endif  // LRTUNE_CLIENT_COMMANDS_H_
