#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "core/schedule.h"
#include "core/schedule_params.h"
#include "google/protobuf/util/json_util.h"
#include "lrtune/v1/schedule.pb.h"
#include "proto/core_convert.h"

namespace lrtune {
namespace {

std::string FlagName(const std::string& param) {
  std::string f = param;
  std::replace(f.begin(), f.end(), '_', '-');
  return "--" + f;
}

FieldNamer FlagNames() {
  return [](absl::string_view path) { return FlagName(std::string(path)); };
}

// What each parameter means, for --help; PyTorch's names and defaults.
const std::map<std::string, std::string>& ParamHelp() {
  static const auto* help = new std::map<std::string, std::string>{
      {"kind", ScheduleKindNames("|")},
      {"mode", "CyclicLR mode (selects triangular|triangular2|exp_range)"},
      {"base_lr",
       "optimizer's initial LR (decaying kinds); lower bound (cyclic); ramp "
       "start (default 0.1)"},
      {"max_lr", "upper bound (cyclic), peak (one_cycle), ramp end"},
      {"total_steps", "length of one_cycle, rex, wsd and ramp"},
      {"gamma", "decay factor (default 0.1 step/multistep, 1.0 exp_range)"},
      {"step_size", "step: decay every N steps"},
      {"milestones", "multistep: e.g. 30,60,60 (a repeat decays twice)"},
      {"start_factor", "linear: first factor (default 1/3)"},
      {"end_factor", "linear: last factor (default 1.0)"},
      {"total_iters", "linear/polynomial: steps to reach the end (default 5)"},
      {"power", "polynomial exponent (default 1.0)"},
      {"eta_min", "floor of cosine, sgdr, rex, wsd, profile (default 0)"},
      {"t_max", "cosine: half period in steps"},
      {"t0", "sgdr: first period; profile: half-cycle, in steps"},
      {"t_mult", "sgdr, profile: period multiplier (default 1)"},
      {"step_size_up", "cyclic: steps from base to max (default 2000)"},
      {"step_size_down", "cyclic: steps from max to base (default = up)"},
      {"cycle_momentum",
       "cycle momentum inversely to the LR (default on; --no-cycle-momentum)"},
      {"base_momentum", "lower momentum (0.8 cyclic, 0.85 one_cycle)"},
      {"max_momentum", "upper momentum (0.9 cyclic, 0.95 one_cycle)"},
      {"pct_start", "one_cycle: share of steps going up (default 0.3)"},
      {"anneal", "one_cycle: cos|linear (default cos)"},
      {"div_factor", "one_cycle: initial = max_lr/div_factor (default 25)"},
      {"final_div_factor", "one_cycle: min = initial/final_div (default 1e4)"},
      {"three_phase", "one_cycle: fast.ai-style third phase (default off)"},
      {"rex_beta", "rex (kind or shape) parameter in [0,1) (default 0.5)"},
      {"profile",
       "profile: shape linear|cosine|exp|rex, eta_min..base_lr (default "
       "linear)"},
      {"profile_mode",
       "profile: decay|growth|cyclic (growth then decay) per period (default "
       "decay)"},
      {"cooldown_steps",
       "wsd: the cooldown's length in steps (default 0: the fraction)"},
      {"cooldown_fraction",
       "wsd: the cooldown's share of total_steps, in [0,1] (default 0.2)"},
      {"cooldown", "wsd: cooldown shape linear|cosine|1-sqrt (default 1-sqrt)"},
      {"fractal_period",
       "fractal (experimental): period, a power of 2 (default 8)"},
      {"fractal_kappa",
       "fractal: condition number in [1,1e6]; steps reach kappa x base_lr "
       "(default 10)"},
      {"ramp", "ramp shape exp|linear (default exp)"},
      {"warmup_steps",
       "prepend a warm-up of N steps to any kind (default 0: none)"},
      {"warmup_start_factor",
       "the warm-up's first LR as a fraction of base_lr (default 0.1)"},
      {"warmup_shape",
       "the warm-up's growth linear (LinearLR)|cosine|exp|rex (default "
       "linear)"},
      {"sample_every", "hold the profile for k steps (default 1)"},
  };
  return *help;
}

// A ScheduleSpec in protobuf JSON, from `path` ("-": stdin), through the
// API's one conversion (proto/core_convert.h). InvalidArgument naming
// --spec-json and what is wrong.
absl::StatusOr<ScheduleSpec> ReadScheduleJson(const std::string& path) {
  std::stringstream text;
  if (path == "-") {
    text << std::cin.rdbuf();
  } else {
    std::ifstream in(path);
    if (!in) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--spec-json: cannot open '", path, "': ", std::strerror(errno)));
    }
    text << in.rdbuf();
  }
  v1::ScheduleSpec proto;
  const google::protobuf::util::Status parsed =
      google::protobuf::util::JsonStringToMessage(text.str(), &proto);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--spec-json: not a lrtune.v1.ScheduleSpec in JSON: ",
                     parsed.message().as_string()));
  }
  return ScheduleSpecFromProto(proto, "--spec-json");
}

}  // namespace

int PrintSchedule(const ScheduleSpec& spec, const ScheduleOptions& opts,
                  std::ostream& out, std::ostream& err);

CLI::App* AddScheduleCommand(CLI::App& app, ScheduleOptions& opts) {
  CLI::App* cmd = app.add_subcommand(
      "schedule",
      "Print a learning-rate schedule step by step, with PyTorch's values.\n"
      "Line t holds what the optimizer holds after t scheduler.step() calls.\n"
      "Example: lrtune schedule --kind one_cycle --max-lr 0.1 --total-steps "
      "1000 --csv");
  for (const std::string& name : ScheduleParamNames()) {
    auto it = ParamHelp().find(name);
    const std::string help = it == ParamHelp().end() ? name : it->second;
    if (IsScheduleFlag(name)) {
      // --three-phase on its own; --no-cycle-momentum turns a default off.
      const std::string flag = FlagName(name);
      cmd->add_flag_function(
          flag + ",!--no-" + flag.substr(2),
          [&opts, name](int64_t count) {
            opts.params[name] = count > 0 ? "true" : "false";
          },
          help);
      continue;
    }
    cmd->add_option_function<std::string>(
        FlagName(name),
        [&opts, name](const std::string& v) { opts.params[name] = v; }, help);
  }
  cmd->add_option("--steps", opts.steps,
                  "steps to print (default: the schedule's length, if it has "
                  "one)");
  cmd->add_flag("--csv", opts.csv, "print CSV (step,lr,momentum) with header");
  cmd->add_option("--spec-json", opts.spec_json,
                  "a lrtune.v1.ScheduleSpec in protobuf JSON (FILE, or - for "
                  "stdin)\ninstead of the parameter flags");
  return cmd;
}

int RunSchedule(const ScheduleOptions& opts, std::ostream& out,
                std::ostream& err) {
  if (!opts.spec_json.empty()) {
    if (!opts.params.empty()) {
      err << "lrtune schedule: --spec-json takes the place of the parameter "
             "flags; give one or the other\n";
      return kExitUsage;
    }
    absl::StatusOr<ScheduleSpec> spec = ReadScheduleJson(opts.spec_json);
    if (!spec.ok()) {
      err << "lrtune schedule: " << spec.status().message() << "\n";
      return kExitUsage;
    }
    return PrintSchedule(*spec, opts, out, err);
  }
  if (!opts.params.count("kind") && !opts.params.count("mode")) {
    err << "lrtune schedule: --kind is required (e.g. --kind cosine)\n";
    return kExitUsage;
  }
  ScheduleSpec spec;
  // Errors name the flags the user typed: --total-steps, not total_steps
  // (a warm-up's schedule too: Create checks it under its own names).
  const FieldNamer flags = FlagNames();
  // The kind first, so that --mode can refine it whatever the flag order.
  if (auto it = opts.params.find("kind"); it != opts.params.end()) {
    if (absl::Status st = SetScheduleParam(spec, "kind", it->second, flags);
        !st.ok()) {
      err << "lrtune schedule: " << st.message() << "\n";
      return kExitUsage;
    }
  }
  for (const auto& [name, value] : opts.params) {
    if (name == "kind") continue;
    if (absl::Status st = SetScheduleParam(spec, name, value, flags);
        !st.ok()) {
      err << "lrtune schedule: " << st.message() << "\n";
      return kExitUsage;
    }
  }
  return PrintSchedule(spec, opts, out, err);
}

int PrintSchedule(const ScheduleSpec& spec, const ScheduleOptions& opts,
                  std::ostream& out, std::ostream& err) {
  // Errors name the flags the user typed: --total-steps, not total_steps
  // (a warm-up's schedule too: Create checks it under its own names).
  const FieldNamer flags = FlagNames();
  absl::StatusOr<Schedule> schedule = Schedule::Create(spec, flags);
  if (!schedule.ok()) {
    err << "lrtune schedule: " << schedule.status().message() << "\n";
    return kExitUsage;
  }
  int64_t steps = opts.steps;
  if (steps == ScheduleOptions::kStepsUnset) {
    if (schedule->length() == 0) {
      err << "lrtune schedule: --steps is required for an unbounded "
             "schedule ("
          << ScheduleKindName(spec.kind) << ")\n";
      return kExitUsage;
    }
    steps = schedule->length();
  }
  absl::StatusOr<std::vector<SchedulePoint>> points = schedule->Sample(steps);
  if (!points.ok()) {
    err << "lrtune schedule: " << points.status().message() << "\n";
    return kExitUsage;
  }
  if (opts.csv) out << "step,lr,momentum\n";
  for (const SchedulePoint& p : *points) {
    const std::string m =
        p.momentum ? absl::StrFormat(opts.csv ? "%.17g" : "%.6f", *p.momentum)
                   : std::string();
    if (opts.csv) {
      out << absl::StrFormat("%d,%.17g,%s\n", p.step, p.lr, m);
    } else {
      out << absl::StrFormat("%8d  %-14.8g %s\n", p.step, p.lr, m);
    }
  }
  return kExitOk;
}

}  // namespace lrtune
