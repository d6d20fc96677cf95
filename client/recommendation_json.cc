#include "client/recommendation_json.h"

#include <cmath>

#include "absl/strings/str_format.h"

namespace lrtune {
namespace {

nlohmann::json Number(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

std::string Lr(double v) {
  return std::isfinite(v) ? absl::StrFormat("%.3g", v) : std::string("-");
}

}  // namespace

nlohmann::json RecommendationToJson(const Recommendation& rec) {
  nlohmann::json warnings = nlohmann::json::array();
  for (const AnalysisWarning& w : rec.warnings) {
    warnings.push_back({{"code", w.code}, {"message", w.message}});
  }
  const OneCycleSettings& oc = rec.one_cycle;
  return {
      {"min_lr", Number(rec.min_lr)},
      {"max_lr", Number(rec.max_lr)},
      {"stepsize_iterations", rec.stepsize_iterations},
      {"stepsize_epochs", Number(rec.stepsize_epochs)},
      {"lr_steepest", Number(rec.lr_steepest)},
      {"lr_valley", Number(rec.lr_valley)},
      {"lr_minimum", Number(rec.lr_minimum)},
      {"lr_slide", Number(rec.lr_slide)},
      {"one_cycle",
       {{"max_lr", Number(oc.max_lr)},
        {"div_factor", Number(oc.div_factor)},
        {"final_div_factor", Number(oc.final_div_factor)},
        {"pct_start", Number(oc.pct_start)},
        {"base_momentum", Number(oc.base_momentum)},
        {"max_momentum", Number(oc.max_momentum)}}},
      {"diverged_at", rec.diverged_at},
      {"points_used", rec.points_used},
      {"seeds", rec.seeds},
      {"spread_decades", Number(rec.spread_decades)},
      {"warnings", warnings},
  };
}

void PrintRecommendation(const Recommendation& rec, std::ostream& out) {
  out << absl::StrFormat("  CLR bounds      min_lr %s   max_lr %s\n",
                         Lr(rec.min_lr), Lr(rec.max_lr));
  if (rec.stepsize_epochs > 0) {
    out << absl::StrFormat("  stepsize        %d iterations (%.3g epochs)\n",
                           rec.stepsize_iterations, rec.stepsize_epochs);
  } else {
    out << absl::StrFormat(
        "  stepsize        %d iterations (pass --iters-per-epoch for epochs)\n",
        rec.stepsize_iterations);
  }
  out << absl::StrFormat(
      "  suggestions     steepest %s   valley %s   minimum/10 %s   slide %s\n",
      Lr(rec.lr_steepest), Lr(rec.lr_valley), Lr(rec.lr_minimum),
      Lr(rec.lr_slide));
  const OneCycleSettings& oc = rec.one_cycle;
  out << absl::StrFormat(
      "  1cycle          max_lr %s  div_factor %.3g  final_div_factor %.3g  "
      "pct_start %.2g  momentum %.2f..%.2f\n",
      Lr(oc.max_lr), oc.div_factor, oc.final_div_factor, oc.pct_start,
      oc.base_momentum, oc.max_momentum);
  out << absl::StrFormat(
      "  points used     %d%s\n", rec.points_used,
      rec.diverged_at >= 0
          ? absl::StrFormat(" (diverged at point %d)", rec.diverged_at)
          : std::string(" (never diverged)"));
  if (rec.seeds > 1) {
    out << absl::StrFormat("  seeds           %d, spread %.2f decades\n",
                           rec.seeds, rec.spread_decades);
  }
  for (const AnalysisWarning& w : rec.warnings) {
    out << "  warning         [" << w.code << "] " << w.message << "\n";
  }
}

}  // namespace lrtune
