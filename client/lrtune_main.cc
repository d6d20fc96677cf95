// lrtune: the command-line client. Flags are read once, here, into each
// command's Options struct; the commands live in their own files.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "client/commands.h"
#include "core/flag_errors.h"

namespace {

// Ends a command that may have trained: output flushed, then _exit. The
// command has closed everything of ours (the store, the embedded log);
// what is left are LibTorch's and gRPC's static destructors, ~0.1 s of a
// range test's whole process. Sanitizer builds exit normally, so that the
// leak checker runs.
int ExitNow(int rc) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return rc;
#else
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  _exit(rc);
#endif
}

// A parse error's line, naming the command whose flags were being read
// and its --help; a first word that is no command is named as such.
std::string UsageError(const CLI::App& app, int argc, char** argv,
                       const std::string& what) {
  const std::vector<const CLI::App*> parsed =
      app.get_subcommands([](const CLI::App* cmd) { return cmd->parsed(); });
  if (!parsed.empty()) {
    return lrtune::FlagErrorLine("lrtune " + parsed.front()->get_name(), what);
  }
  if (argc > 1 && argv[1][0] != '-') {
    std::string names;
    for (const CLI::App* cmd : app.get_subcommands({})) {
      names += (names.empty() ? "" : ", ") + cmd->get_name();
    }
    return std::string("lrtune: unknown command '") + argv[1] +
           "'; the commands: " + names + " (see lrtune --help)";
  }
  return lrtune::FlagErrorLine("lrtune", what);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "lrtune: learning-rate range tests, schedules and their analysis.\n"
      "Run `lrtune COMMAND --help` for a command's flags."};
  app.name("lrtune");  // not argv[0]'s path in the usage line
  app.require_subcommand(1);
  app.set_version_flag("--version", "lrtune 0.1.0");

  lrtune::ScheduleOptions schedule;
  lrtune::AnalyzeOptions analyze;
  lrtune::RangeTestOptions range_test;
  lrtune::JobCommandOptions job_opts;
  lrtune::ServeOptions serve;
  CLI::App* schedule_cmd = lrtune::AddScheduleCommand(app, schedule);
  CLI::App* analyze_cmd = lrtune::AddAnalyzeCommand(app, analyze);
  CLI::App* range_test_cmd = lrtune::AddRangeTestCommand(app, range_test);
  lrtune::AdviseOptions advise;
  CLI::App* advise_cmd = lrtune::AddAdviseCommand(app, advise);
  const lrtune::JobCommands job_cmds = lrtune::AddJobCommands(app, job_opts);
  CLI::App* serve_cmd = lrtune::AddServeCommand(app, serve);
  lrtune::ServeOptions dashboard;
  CLI::App* dashboard_cmd = lrtune::AddDashboardCommand(app, dashboard);

  if (argc == 1) {  // what a first try without arguments wants to see
    std::cerr << app.help();
    return lrtune::kExitUsage;
  }
  if (std::optional<int> exit =
          lrtune::ParseFlags(app, argc, argv, [&](const std::string& what) {
            return UsageError(app, argc, argv, what);
          })) {
    return *exit;
  }
  if (schedule_cmd->parsed()) {
    return lrtune::RunSchedule(schedule, std::cout, std::cerr);
  }
  if (analyze_cmd->parsed()) {
    return lrtune::RunAnalyze(analyze, std::cout, std::cerr);
  }
  if (serve_cmd->parsed()) {
    return ExitNow(lrtune::RunServe(serve, std::cout, std::cerr));
  }
  if (dashboard_cmd->parsed()) {
    dashboard.ui = true;
    dashboard.dashboard = true;
    return ExitNow(lrtune::RunServe(dashboard, std::cout, std::cerr));
  }
  if (range_test_cmd->parsed()) {
    range_test.terminal_plot = isatty(STDOUT_FILENO) != 0;
    return ExitNow(
        lrtune::RunRangeTest(range_test, std::cout, std::cerr,
                             /*progress=*/isatty(STDERR_FILENO) != 0));
  }
  if (advise_cmd->parsed()) {
    return ExitNow(lrtune::RunAdvise(advise, std::cout, std::cerr,
                                     /*progress=*/isatty(STDERR_FILENO) != 0));
  }
  for (CLI::App* cmd : {job_cmds.jobs, job_cmds.get, job_cmds.watch,
                        job_cmds.cancel, job_cmds.submit, job_cmds.grid}) {
    if (cmd->parsed()) {
      return ExitNow(
          lrtune::RunJobCommand(cmd->get_name(), job_opts, std::cout, std::cerr,
                                /*progress=*/isatty(STDERR_FILENO) != 0));
    }
  }
  return lrtune::kExitUsage;
}
