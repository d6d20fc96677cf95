#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "core/curve_analysis.h"
#include "core/curve_csv.h"
#include "core/recommendation_format.h"
#include "core/spec.h"

namespace lrtune {

CLI::App* AddAnalyzeCommand(CLI::App& app, AnalyzeOptions& opts) {
  CLI::App* cmd = app.add_subcommand(
      "analyze",
      "Read a recorded range test (CSV with columns lr,loss and optional "
      "step,\nfrom any framework) and print the recommended LR bounds, "
      "stepsize and\nsuggestions.\n"
      "Example: lrtune analyze --csv curve.csv --iters-per-epoch 469 --json");
  cmd->add_option("--csv", opts.csv_path, "curve file ('-' reads stdin)")
      ->required();
  cmd->add_option("--iters-per-epoch", opts.iters_per_epoch,
                  "iterations per epoch, for the cyclical stepsize "
                  "(default 0: unknown)");
  cmd->add_option("--stepsize-k", opts.stepsize_k,
                  "stepsize = k x iterations per epoch, k in 2..10 "
                  "(default 4)");
  cmd->add_option("--smoothing", opts.smoothing,
                  "causal EMA beta in [0,1) of the divergence rule and the "
                  "smoothed column; the bounds are read from a zero-lag "
                  "curve whose width follows the points per decade and "
                  "the noise (default 0.98)");
  cmd->add_option("--diverge", opts.diverge,
                  "divergence: smoothed loss > F x best (default 4)");
  cmd->add_option(
      "--momentum", opts.momentum,
      absl::StrFormat(
          "the optimizer's momentum during the test (Adam's beta1),\n"
          "in [0,1): max_lr stays below the divergence LR by\n"
          "1/(1-F), clamped to %g..%g (docs/analysis.md section 4;\n"
          "default: unknown, read as 0.9)",
          DivergenceMargin(0.0), DivergenceMargin(0.999)));
  cmd->add_option("--optimizer", opts.optimizer,
                  "the optimizer the test ran: sgd, adam, adamw or rmsprop;\n"
                  "under adam and adamw max_lr is scaled by sqrt(batch / 128)\n"
                  "(with --batch-size; default: unknown, no scaling)");
  cmd->add_option("--batch-size", opts.batch_size,
                  "samples per optimizer update during the test (batch x\n"
                  "accumulation; default 0: unknown)");
  cmd->add_option("--planned-steps", opts.planned_steps,
                  "the steps the test was planned to run (fastai's num_it):\n"
                  "fastai's suggestions read from step N/10 on (default 0:\n"
                  "the curve's rows)");
  cmd->add_flag("--json", opts.json, "print one JSON object");
  return cmd;
}

int RunAnalyze(const AnalyzeOptions& opts, std::ostream& out,
               std::ostream& err) {
  std::stringstream text;
  if (opts.csv_path == "-") {
    text << std::cin.rdbuf();
  } else {
    std::ifstream in(opts.csv_path);
    if (!in) {
      err << "lrtune analyze: cannot open '" << opts.csv_path
          << "': " << std::strerror(errno) << "\n";
      return kExitUsage;
    }
    text << in.rdbuf();
  }
  absl::StatusOr<std::vector<CurvePoint>> points = ParseCurveCsv(text.str());
  if (!points.ok()) {
    err << "lrtune analyze: " << opts.csv_path << ": "
        << points.status().message() << "\n";
    return kExitUsage;
  }
  // The options' rules (core/curve_analysis.h, core/spec.h), in the flags'
  // names.
  const FieldNamer flags = [](absl::string_view field) -> std::string {
    if (field == "smoothing_beta") return "--smoothing";
    if (field == "divergence_factor") return "--diverge";
    if (field == "optimizer.kind") return "--optimizer";
    std::string flag = absl::StrCat("--", field);
    std::replace(flag.begin(), flag.end(), '_', '-');
    return flag;
  };
  AnalysisOptions ao;
  if (!opts.optimizer.empty()) {
    absl::StatusOr<OptimizerKind> kind =
        ParseOptimizerKind(opts.optimizer, flags);
    if (!kind.ok()) {
      err << "lrtune analyze: " << kind.status().message() << "\n";
      return kExitUsage;
    }
    ao.adam_family = IsAdamFamily(*kind);
  }
  ao.batch_size = opts.batch_size;
  ao.iters_per_epoch = opts.iters_per_epoch;
  ao.stepsize_k = opts.stepsize_k;
  ao.smoothing_beta = opts.smoothing;
  ao.divergence_factor = opts.diverge;
  ao.momentum = opts.momentum;
  ao.planned_steps = opts.planned_steps;
  if (absl::Status valid = ValidateAnalysisOptions(ao, flags); !valid.ok()) {
    err << "lrtune analyze: " << valid.message() << "\n";
    return kExitUsage;
  }
  absl::StatusOr<Recommendation> rec = AnalyzeCurve(*points, ao);
  if (!rec.ok()) {
    err << "lrtune analyze: " << rec.status().message() << "\n";
    return kExitUsage;
  }
  if (opts.json) {
    out << RecommendationToJson(*rec) << "\n";
  } else {
    out << absl::StrFormat("lrtune analyze: %s, %d points\n", opts.csv_path,
                           points->size());
    out << FormatRecommendation(*rec);
  }
  return kExitOk;
}

}  // namespace lrtune
