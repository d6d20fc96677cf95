// GridPlot: the trials of a grid search, one curve each, as an SVG figure.
#include "client/grid_plot.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/svg_util.h"

namespace lrtune {
namespace {

constexpr double kPlotWidth = 620, kPlotHeight = 390;
constexpr double kLeft = 70, kTop = 40, kBottom = 50;
constexpr double kLegendRow = 16;
// Rough width of a character of the figure's 12 px sans-serif text (bold
// included), to size the legend so that no label runs off the figure.
constexpr double kCharWidth = 7;

// The words ("schedule=cosine") that every label has, in the first label's
// order; the legend shows them once and each trial's other words.
std::vector<std::string> CommonWords(const std::vector<std::string>& labels) {
  std::vector<std::string> common;
  if (labels.size() < 2) return common;
  for (absl::string_view w :
       absl::StrSplit(labels[0], ' ', absl::SkipEmpty())) {
    bool everywhere = true;
    for (const std::string& l : labels) {
      std::vector<absl::string_view> words =
          absl::StrSplit(l, ' ', absl::SkipEmpty());
      everywhere =
          everywhere && std::find(words.begin(), words.end(), w) != words.end();
    }
    if (everywhere) common.emplace_back(w);
  }
  return common;
}

std::string WithoutWords(const std::string& label,
                         const std::vector<std::string>& drop) {
  std::vector<absl::string_view> kept;
  for (absl::string_view w : absl::StrSplit(label, ' ', absl::SkipEmpty())) {
    if (std::find(drop.begin(), drop.end(), w) == drop.end()) kept.push_back(w);
  }
  return absl::StrJoin(kept, " ");
}

// About five round tick values covering [lo, hi].
std::vector<double> Ticks(double lo, double hi) {
  std::vector<double> ticks;
  if (!(hi > lo)) return ticks;
  const double raw = (hi - lo) / 5;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * magnitude;
    if (step >= raw) break;
  }
  for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9;
       v += step) {
    ticks.push_back(std::abs(v) < step * 1e-9 ? 0 : v);
  }
  return ticks;
}

std::string StateWord(v1::TrialState state) {
  switch (state) {
    case v1::TRIAL_STATE_FAILED:
      return "failed";
    case v1::TRIAL_STATE_SUCCEEDED:
      return "unranked";
    case v1::TRIAL_STATE_PRUNED:
      return "pruned";
    default:
      return "not finished";
  }
}

}  // namespace

void GridPlot::Add(const v1::JobEvent& event) {
  if (event.has_point() && event.point().origin().has_trial_index()) {
    const v1::CurvePoint& p = event.point().point();
    if (std::isfinite(p.smoothed())) {
      loss_[event.point().origin().trial_index()][p.step()] = p.smoothed();
    }
  } else if (event.has_evaluation() &&
             event.evaluation().origin().has_trial_index()) {
    const v1::Evaluation& e = event.evaluation().evaluation();
    if (std::isfinite(e.val_loss())) {
      val_[event.evaluation().origin().trial_index()][e.step()] = e.val_loss();
    }
  }
}

std::string GridPlot::Svg(const v1::Job& job, const std::string& title) const {
  if (loss_.empty()) return "";
  // Ranges: x from step 0 to the last step seen; y from the lowest loss to
  // 1.25 x the highest first smoothed loss, so a diverged trial is clipped
  // at the top instead of flattening the others.
  double x_hi = 1, y_lo = INFINITY, y_start = 0;
  for (const auto* series : {&loss_, &val_}) {
    for (const auto& [trial, points] : *series) {
      for (const auto& [step, v] : points) {
        x_hi = std::max(x_hi, static_cast<double>(step));
        y_lo = std::min(y_lo, v);
      }
    }
  }
  for (const auto& [trial, points] : loss_) {
    y_start = std::max(y_start, points.begin()->second);
  }
  const double y_hi = std::max(1.25 * y_start, y_lo + 1e-9);
  std::vector<std::string> labels;
  for (const v1::Trial& t : job.trials()) labels.push_back(t.label());
  const std::vector<std::string> common = CommonWords(labels);
  const std::string common_line =
      common.empty() ? "" : absl::StrCat("all: ", absl::StrJoin(common, " "));
  size_t longest = std::max<size_t>(common_line.size(), 20);
  for (const v1::Trial& t : job.trials()) {
    // "12. trial 34: " and " (best)" around the label.
    longest =
        std::max(longest, WithoutWords(t.label(), common).size() + 16 + 7);
  }
  const double legend_width = 24 + kCharWidth * static_cast<double>(longest);
  const int legend_rows =
      std::max(job.trials_size(), trials()) + (common.empty() ? 0 : 1);
  const double height = std::max(kTop + kPlotHeight + kBottom,
                                 kTop + 24 + kLegendRow * legend_rows + 20);
  const double width = kLeft + kPlotWidth + 20 + legend_width + 10;
  const svg::Frame frame{kLeft, kTop, kPlotWidth, kPlotHeight};
  auto x = [&](double step) { return kLeft + step / x_hi * kPlotWidth; };
  auto y = [&](double loss) {
    const double v = std::clamp(loss, y_lo, y_hi);
    return kTop + (y_hi - v) / (y_hi - y_lo) * kPlotHeight;
  };

  // Rank and label per trial index, from the final job.
  std::map<int32_t, const v1::Trial*> trials;
  for (const v1::Trial& t : job.trials()) trials[t.trial_index()] = &t;
  auto is_best = [&](int32_t index) {
    auto it = trials.find(index);
    return it != trials.end() && it->second->has_rank() &&
           it->second->rank() == 1;
  };
  // A pruned search's losers: dashed, with a cross where they stopped.
  auto is_pruned = [&](int32_t index) {
    auto it = trials.find(index);
    return it != trials.end() && it->second->state() == v1::TRIAL_STATE_PRUNED;
  };

  std::string svg = svg::Header(width, height);
  absl::StrAppendFormat(
      &svg, "<text x=\"%g\" y=\"24\" font-size=\"15\">%s</text>\n", kLeft,
      svg::Escape(title.empty() ? std::string("grid search") : title));
  svg += svg::Axes(frame);
  for (double v : Ticks(0, x_hi)) {
    absl::StrAppendFormat(
        &svg,
        "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"#ddd\"/>"
        "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%s</text>\n",
        x(v), kTop, x(v), frame.bottom(), x(v), frame.bottom() + 16,
        svg::Number(v));
  }
  for (double v : Ticks(y_lo, y_hi)) {
    absl::StrAppendFormat(
        &svg,
        "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#eee\"/>"
        "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
        kLeft, y(v), frame.right(), y(v), kLeft - 6, y(v) + 4, svg::Number(v));
  }
  svg += svg::AxisTitles(frame, height, "step",
                         "training loss (smoothed); validation loss (dots)");

  // The curves, the best one last so it is on top.
  std::vector<int32_t> order;
  for (const auto& [index, points] : loss_) {
    if (!is_best(index)) order.push_back(index);
  }
  for (const auto& [index, points] : loss_) {
    if (is_best(index)) order.push_back(index);
  }
  for (int32_t index : order) {
    const bool best = is_best(index);
    std::string d;
    for (const auto& [step, v] : loss_.at(index)) {
      absl::StrAppendFormat(&d, "%s%.1f,%.1f", d.empty() ? "M" : " L",
                            x(static_cast<double>(step)), y(v));
    }
    const bool pruned = is_pruned(index);
    absl::StrAppendFormat(
        &svg,
        "<path id=\"trial-%d\" class=\"trial%s\" fill=\"none\" stroke=\"%s\" "
        "stroke-width=\"%s\"%s%s d=\"%s\"/>\n",
        index,
        best     ? " best"
        : pruned ? " pruned"
                 : "",
        svg::Colour(index), best ? "3.5" : "1.5",
        best ? "" : " stroke-opacity=\"0.8\"",
        pruned ? " stroke-dasharray=\"5 3\"" : "", d);
    if (pruned && !loss_.at(index).empty()) {
      const auto& [step, v] = *loss_.at(index).rbegin();
      const double px = x(static_cast<double>(step)), py = y(v);
      absl::StrAppendFormat(
          &svg,
          "<path class=\"pruned-at\" stroke=\"%s\" stroke-width=\"2\" "
          "d=\"M%.1f,%.1f L%.1f,%.1f M%.1f,%.1f L%.1f,%.1f\"/>\n",
          svg::Colour(index), px - 4, py - 4, px + 4, py + 4, px - 4, py + 4,
          px + 4, py - 4);
    }
    auto val = val_.find(index);
    if (val == val_.end()) continue;
    absl::StrAppendFormat(&svg, "<g id=\"val-%d\" class=\"val\" fill=\"%s\">",
                          index, svg::Colour(index));
    for (const auto& [step, v] : val->second) {
      absl::StrAppendFormat(&svg,
                            "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%s\" "
                            "stroke=\"black\" stroke-width=\"0.5\"/>",
                            x(static_cast<double>(step)), y(v),
                            best ? "4.5" : "3");
    }
    svg += "</g>\n";
  }

  // The legend: ranked trials first (best at the top), then the others.
  std::vector<const v1::Trial*> legend;
  for (int32_t index : job.grid_result().ranking()) {
    auto it = trials.find(index);
    if (it != trials.end()) legend.push_back(it->second);
  }
  for (const auto& [index, t] : trials) {
    if (std::find(legend.begin(), legend.end(), t) == legend.end()) {
      legend.push_back(t);
    }
  }
  const double lx = frame.right() + 20;
  absl::StrAppendFormat(&svg,
                        "<g id=\"legend\"><text x=\"%g\" y=\"%g\" "
                        "font-weight=\"bold\">rank, trial, label</text>\n",
                        lx, kTop + 4);
  double ly = kTop + 24;
  if (!common_line.empty()) {
    absl::StrAppendFormat(
        &svg, "<text class=\"common\" x=\"%g\" y=\"%g\">%s</text>\n", lx, ly,
        svg::Escape(common_line));
    ly += kLegendRow;
  }
  for (const v1::Trial* t : legend) {
    const int32_t index = t->trial_index();
    const bool best = is_best(index);
    const std::string rank =
        t->has_rank() ? absl::StrCat(t->rank(), ".")
                      : absl::StrCat("(", StateWord(t->state()), ")");
    absl::StrAppendFormat(
        &svg,
        "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"%s\" "
        "stroke-width=\"%s\"%s/><text class=\"entry\" x=\"%g\" y=\"%g\"%s>%s "
        "trial %d: "
        "%s%s</text>\n",
        lx, ly - 4, lx + 18, ly - 4, svg::Colour(index), best ? "3.5" : "1.5",
        is_pruned(index) ? " stroke-dasharray=\"5 3\"" : "", lx + 24, ly,
        best ? " font-weight=\"bold\"" : "", svg::Escape(rank), index,
        svg::Escape(WithoutWords(t->label(), common)), best ? " (best)" : "");
    ly += kLegendRow;
  }
  svg += "</g>\n</svg>\n";
  return svg;
}

}  // namespace lrtune
