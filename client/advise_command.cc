// `lrtune advise`: the schedule to use for a training budget. A range test
// finds the bounds; a pruned grid search (docs/grid.md, "Pruned search")
// tries the schedule kinds at multiples of them over the budget; the
// winner is printed as the `lrtune schedule` flags that rebuild it, with
// what was tried and the compute spent.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/commands.h"
#include "client/lrtune_client.h"
#include "core/schedule_params.h"
#include "core/status_macros.h"
#include "proto/core_convert.h"

namespace lrtune {
namespace {

absl::Status Invalid(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

// One schedule axis value per kind. linear is LinearLR decaying to 0 (its
// default is a warm-up: start 1/3, end 1).
absl::Status AddKinds(const std::string& kinds, v1::GridAxis& axis) {
  axis.set_name("schedule");
  for (absl::string_view name : absl::StrSplit(kinds, ',', absl::SkipEmpty())) {
    absl::StatusOr<ScheduleKind> kind =
        ParseScheduleKind(absl::StripAsciiWhitespace(name));
    if (!kind.ok()) {
      return Invalid(absl::StrCat("--kinds: ", kind.status().message()));
    }
    v1::ScheduleSpec& value = *axis.mutable_schedules()->add_values();
    value.set_kind(ScheduleKindToProto(*kind));
    if (*kind == ScheduleKind::kLinear) {
      value.set_start_factor(1.0);
      value.set_end_factor(0.0);
    }
  }
  if (axis.schedules().values_size() == 0) {
    return Invalid("--kinds must name at least one schedule kind");
  }
  return absl::OkStatus();
}

absl::Status AddMultiples(const std::string& multiples, v1::GridAxis& axis) {
  axis.set_name("bounds");
  for (absl::string_view text :
       absl::StrSplit(multiples, ',', absl::SkipEmpty())) {
    double scale = 0;
    if (!absl::SimpleAtod(absl::StripAsciiWhitespace(text), &scale) ||
        !std::isfinite(scale) || scale <= 0) {
      return Invalid(absl::StrCat(
          "--multiples must be positive numbers separated by commas (e.g. "
          "0.5,1,2), got '",
          multiples, "'"));
    }
    axis.mutable_lr_bounds()->add_values()->mutable_recommended()->set_scale(
        scale);
  }
  if (axis.lr_bounds().values_size() == 0) {
    return Invalid("--multiples must give at least one multiple");
  }
  return absl::OkStatus();
}

// The advice: the winner's schedule as flags, and what the search did.
void PrintAdvice(const AdviseOptions& opts, const v1::Job& job,
                 std::ostream& out) {
  const v1::GridResult& result = job.grid_result();
  if (result.ranking_size() == 0) return;
  const v1::Trial* best = nullptr;
  for (const v1::Trial& t : job.trials()) {
    if (t.trial_index() == result.ranking(0)) best = &t;
  }
  if (best == nullptr) return;
  absl::StatusOr<ScheduleSpec> schedule =
      ScheduleSpecFromProto(best->train().schedule(), "schedule");
  out << absl::StrFormat(
      "advice for %d epoch%s (%d steps): %s\n  lrtune schedule %s\n",
      opts.budget_epochs, opts.budget_epochs == 1 ? "" : "s",
      best->train().steps(), best->label(),
      // --steps: the budget's steps, which an unbounded kind (linear,
      // constant, ...) needs for `lrtune schedule` to print it.
      schedule.ok() ? absl::StrCat(ScheduleFlags(*schedule), " --steps ",
                                   best->train().steps())
                    : std::string(schedule.status().message()));
  const v1::GridSearchJob& grid = job.grid();
  // A winner at the edge of the multiples says the best may lie beyond.
  const auto& multiples = grid.grid().axes(1).lr_bounds().values();
  if (multiples.size() > 1 && best->choice().value_index_size() > 1 &&
      best->choice().value_index(1) < multiples.size()) {
    auto scale = [](const v1::LrBounds& b) {
      return b.recommended().has_scale() ? b.recommended().scale() : 1.0;
    };
    double low = scale(multiples[0]), high = low;
    for (const v1::LrBounds& m : multiples) {
      low = std::min(low, scale(m));
      high = std::max(high, scale(m));
    }
    const double won = scale(multiples[best->choice().value_index(1)]);
    if (won == high || won == low) {
      out << absl::StrFormat(
          "note: the winner is at the %s multiple tried (x%g): a %s one may "
          "do better; try --multiples %g,%g,%g\n",
          won == high ? "largest" : "smallest", won,
          won == high ? "larger" : "smaller", won / 2, won, won * 2);
    }
  }
  out << absl::StrFormat(
      "tried %d schedules (%d kinds x %d multiples of the range test's "
      "bounds %.3g..%.3g), %d pruned; %d of %d trial-steps (%.0f%% of the "
      "full grid)\n",
      job.trials_size(), grid.grid().axes(0).schedules().values_size(),
      grid.grid().axes(1).lr_bounds().values_size(), result.bounds().min_lr(),
      result.bounds().max_lr(), result.trials_pruned(), result.trial_steps(),
      result.full_grid_trial_steps(),
      result.full_grid_trial_steps() > 0
          ? 100.0 * static_cast<double>(result.trial_steps()) /
                static_cast<double>(result.full_grid_trial_steps())
          : 0.0);
}

}  // namespace

CLI::App* AddAdviseCommand(CLI::App& app, AdviseOptions& opts) {
  CLI::App* cmd = app.add_subcommand(
      "advise",
      "The schedule to use for a training budget: a range test, then a\n"
      "pruned search over the schedule kinds at multiples of its bounds\n"
      "over the budget; prints the winner as `lrtune schedule` flags.\n"
      "Takes range-test's flags. Without --server it runs embedded.\n"
      "Example: lrtune advise --budget-epochs 3 --dataset fashion-mnist "
      "--momentum 0.9 --steps 300 --seeds 3");
  AddRangeTestFlags(cmd, opts.range_test);
  cmd->add_option("--budget-epochs", opts.budget_epochs,
                  "the training budget, in epochs (required)")
      ->required();
  cmd->add_option("--kinds", opts.kinds,
                  absl::StrCat("the schedule kinds to try, comma-separated "
                               "(default ",
                               opts.kinds, ")"));
  cmd->add_option("--multiples", opts.multiples,
                  "multiples of the range test's bounds to try (default "
                  "0.5,1,2)");
  cmd->add_option("--reduction-factor", opts.reduction_factor,
                  "the pruning's eta: a rung keeps the best 1/eta (default 3)");
  cmd->add_option("--plot", opts.plot_path,
                  "write the search's trials as an SVG figure to FILE.svg");
  cmd->add_flag("--json", opts.range_test.json,
                "print the search's job as protobuf JSON");
  cmd->add_flag("--ui", opts.range_test.ui,
                "embedded: serve the web dashboard on 127.0.0.1 (the range "
                "test, then the trials ranked), print its address, and keep "
                "serving after the search until Ctrl-C");
  return cmd;
}

absl::StatusOr<v1::SubmitJobRequest> BuildAdviseRequest(
    const AdviseOptions& opts) {
  if (opts.budget_epochs < 1) {
    return Invalid(
        absl::StrCat("--budget-epochs must be >= 1, got ", opts.budget_epochs));
  }
  RangeTestOptions range = opts.range_test;
  range.budget_epochs = opts.budget_epochs;
  absl::StatusOr<v1::RangeTestRequest> rt =
      BuildRangeTestRequest(range, client::ClientOptions().max_message_bytes);
  if (!rt.ok()) return rt.status();
  v1::SubmitJobRequest request;
  v1::GridSearchJob& grid = *request.mutable_grid();
  *grid.mutable_run() = rt->run();
  *grid.mutable_range_test() = rt->range_test();
  // The trials train one model each, with the range test's first seed.
  grid.mutable_run()->set_seed(
      rt->range_test().seeds_size() > 0 ? rt->range_test().seeds(0) : 0);
  grid.mutable_train()->mutable_schedule()->set_kind(
      v1::SCHEDULE_KIND_ONE_CYCLE);
  grid.mutable_train()->set_epochs(opts.budget_epochs);
  LRTUNE_RETURN_IF_ERROR(
      AddKinds(opts.kinds, *grid.mutable_grid()->add_axes()));
  LRTUNE_RETURN_IF_ERROR(
      AddMultiples(opts.multiples, *grid.mutable_grid()->add_axes()));
  grid.mutable_grid()->set_max_trials(
      grid.grid().axes(0).schedules().values_size() *
      grid.grid().axes(1).lr_bounds().values_size());
  v1::Pruning& pruning = *grid.mutable_grid()->mutable_pruning();
  pruning.set_kind(v1::PRUNING_KIND_SUCCESSIVE_HALVING);
  pruning.set_reduction_factor(opts.reduction_factor);
  return request;
}

int RunAdvise(const AdviseOptions& opts, std::ostream& out, std::ostream& err,
              bool progress) {
  absl::StatusOr<v1::SubmitJobRequest> request = BuildAdviseRequest(opts);
  if (!request.ok()) {
    err << "lrtune advise: " << request.status().message() << "\n";
    return kExitUsage;
  }
  JobCommandOptions job_opts;
  job_opts.remote = opts.range_test.remote;
  job_opts.json = opts.range_test.json;
  job_opts.db_path = opts.range_test.db_path;
  job_opts.plot_path = opts.plot_path;
  job_opts.ui = opts.range_test.ui;
  return SubmitAndFollow("advise", *request, job_opts, out, err, progress,
                         [&opts](const v1::Job& job, std::ostream& o) {
                           PrintAdvice(opts, job, o);
                         });
}

}  // namespace lrtune
