#include "core/recommendation_format.h"

#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace lrtune {
namespace {

std::string Lr(double v) {
  return std::isfinite(v) ? absl::StrFormat("%.3g", v) : std::string("-");
}

}  // namespace

std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  for (int precision : {15, 16}) {
    std::string s = absl::StrFormat("%.*g", precision, v);
    if (std::strtod(s.c_str(), nullptr) == v) return s;
  }
  return absl::StrFormat("%.17g", v);
}

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string RecommendationToJson(const Recommendation& rec) {
  std::vector<std::string> warnings;
  for (const AnalysisWarning& w : rec.warnings) {
    warnings.push_back(absl::StrCat("{\"code\":", JsonString(w.code),
                                    ",\"message\":", JsonString(w.message),
                                    "}"));
  }
  const OneCycleSettings& oc = rec.one_cycle;
  return absl::StrCat("{\"min_lr\":", JsonNumber(rec.min_lr),
                      ",\"max_lr\":", JsonNumber(rec.max_lr),
                      ",\"stepsize_iterations\":", rec.stepsize_iterations,
                      ",\"stepsize_epochs\":", JsonNumber(rec.stepsize_epochs),
                      ",\"lr_valley\":", JsonNumber(rec.lr_valley),
                      ",\"lr_slide\":", JsonNumber(rec.lr_slide),
                      ",\"lr_minimum\":", JsonNumber(rec.lr_minimum),
                      ",\"lr_steep\":", JsonNumber(rec.lr_steep),
                      ",\"lr_steepest\":", JsonNumber(rec.lr_steepest),
                      ",\"lr_lowest\":", JsonNumber(rec.lr_lowest),
                      ",\"one_cycle\":{\"max_lr\":", JsonNumber(oc.max_lr),
                      ",\"div_factor\":", JsonNumber(oc.div_factor),
                      ",\"final_div_factor\":", JsonNumber(oc.final_div_factor),
                      ",\"pct_start\":", JsonNumber(oc.pct_start),
                      ",\"base_momentum\":", JsonNumber(oc.base_momentum),
                      ",\"max_momentum\":", JsonNumber(oc.max_momentum),
                      "},\"diverged_at\":", rec.diverged_at,
                      ",\"points_used\":", rec.points_used,
                      ",\"seeds\":", rec.seeds,
                      ",\"spread_decades\":", JsonNumber(rec.spread_decades),
                      ",\"max_lr_low\":", JsonNumber(rec.max_lr_low),
                      ",\"max_lr_high\":", JsonNumber(rec.max_lr_high),
                      ",\"warnings\":[", absl::StrJoin(warnings, ","), "]}");
}

std::string FormatRecommendation(const Recommendation& rec) {
  std::string out;
  absl::StrAppendFormat(&out, "  CLR bounds      min_lr %s   max_lr %s\n",
                        Lr(rec.min_lr), Lr(rec.max_lr));
  if (rec.stepsize_epochs > 0) {
    absl::StrAppendFormat(&out,
                          "  stepsize        %d iterations (%.3g epochs)\n",
                          rec.stepsize_iterations, rec.stepsize_epochs);
  } else {
    absl::StrAppendFormat(
        &out,
        "  stepsize        %d iterations (give iterations per epoch for "
        "epochs)\n",
        rec.stepsize_iterations);
  }
  absl::StrAppendFormat(
      &out,
      "  fastai          valley %s   steep %s   minimum/10 %s   slide %s\n",
      Lr(rec.lr_valley), Lr(rec.lr_steep), Lr(rec.lr_minimum),
      Lr(rec.lr_slide));
  absl::StrAppendFormat(&out, "  zero-lag        steepest %s   lowest %s\n",
                        Lr(rec.lr_steepest), Lr(rec.lr_lowest));
  const OneCycleSettings& oc = rec.one_cycle;
  absl::StrAppendFormat(
      &out,
      "  1cycle          max_lr %s  div_factor %.3g  final_div_factor %.3g  "
      "pct_start %.2g  momentum %.2f..%.2f\n",
      Lr(oc.max_lr), oc.div_factor, oc.final_div_factor, oc.pct_start,
      oc.base_momentum, oc.max_momentum);
  const char* which = rec.seeds > 1 ? " (fewest of the seeds" : " (";
  absl::StrAppendFormat(
      &out, "  points used     %d%s%s)\n", rec.points_used, which,
      rec.diverged_at < 0
          ? std::string(rec.seeds > 1 ? "; none diverged" : "never diverged")
      : rec.seeds > 1
          ? absl::StrFormat("; first divergence at point %d", rec.diverged_at)
          : absl::StrFormat("diverged at point %d", rec.diverged_at));
  if (rec.seeds > 1) {
    absl::StrAppendFormat(
        &out, "  seeds           %d, spread %.2f decades, max_lr %s..%s\n",
        rec.seeds, rec.spread_decades, Lr(rec.max_lr_low), Lr(rec.max_lr_high));
  }
  for (const AnalysisWarning& w : rec.warnings) {
    absl::StrAppend(&out, "  warning         [", w.code, "] ", w.message, "\n");
  }
  return out;
}

}  // namespace lrtune
