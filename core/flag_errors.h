// The command-line programs' one way to read their flags (CLI11): --help
// and --version print and exit 0; a flag that does not parse prints one
// line naming the program, the flag and the program's --help, and exits 2
// (usage), as every lrtune program's usage errors do (docs/cli.md).
// Header-only: it needs CLI11, which only the programs link.
#ifndef LRTUNE_CORE_FLAG_ERRORS_H_
#define LRTUNE_CORE_FLAG_ERRORS_H_

#include <functional>
#include <iostream>
#include <optional>
#include <string>

#include "CLI/CLI.hpp"

namespace lrtune {

inline constexpr int kFlagUsageExit = 2;

// "NAME: WHAT (see NAME --help)": a usage error's line.
inline std::string FlagErrorLine(const std::string& name,
                                 const std::string& what) {
  return name + ": " + what + " (see " + name + " --help)";
}

// Parses `app` (named by app.name()); nullopt to go on, else the exit
// code, with the help, version or error printed: the error's line is
// `error_line(what)` where given (a program with subcommands names the
// one it was reading), else FlagErrorLine(app's name, what).
inline std::optional<int> ParseFlags(
    CLI::App& app, int argc, char** argv,
    const std::function<std::string(const std::string&)>& error_line = {}) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << (error_line ? error_line(e.what())
                             : FlagErrorLine(app.get_name(), e.what()))
              << "\n";
    return kFlagUsageExit;
  }
  return std::nullopt;
}

}  // namespace lrtune

#endif  // LRTUNE_CORE_FLAG_ERRORS_H_
