// RangeTestReport::Svg: the range test as a figure for a report.
#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/range_test_report.h"
#include "client/svg_util.h"
#include "core/curve_analysis.h"

namespace lrtune {
namespace {

constexpr double kWidth = 800, kHeight = 480;
constexpr double kLeft = 70, kRight = 20, kTop = 40, kBottom = 50;
constexpr double kPlotW = kWidth - kLeft - kRight;
constexpr double kPlotH = kHeight - kTop - kBottom;

constexpr svg::Frame kFrame{kLeft, kTop, kPlotW, kPlotH};

const char* SeedColour(int seed) { return svg::Colour(seed % 5); }

using svg::Number;

}  // namespace

std::string RangeTestReport::Svg(const v1::Recommendation& rec,
                                 const std::string& title) const {
  // Ranges: x over log10(lr) of every point; y from the lowest loss shown
  // to 1.25 x the highest starting smoothed loss, so a diverged tail is
  // clipped at the top instead of flattening the curve.
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_start = 0;
  for (const auto& [key, p] : curve_) {
    if (!(p.lr() > 0)) continue;
    x_lo = std::min(x_lo, std::log10(p.lr()));
    x_hi = std::max(x_hi, std::log10(p.lr()));
    if (std::isfinite(p.smoothed())) y_lo = std::min(y_lo, p.smoothed());
    if (std::isfinite(p.loss())) y_lo = std::min(y_lo, p.loss());
    if (key.second == 0 && std::isfinite(p.smoothed())) {
      y_start = std::max(y_start, p.smoothed());
    }
  }
  if (!(x_hi > x_lo) || !std::isfinite(y_lo)) return "";
  const double y_hi = std::max(1.25 * y_start, y_lo + 1e-9);
  auto x = [&](double lr) {
    return kLeft + (std::log10(lr) - x_lo) / (x_hi - x_lo) * kPlotW;
  };
  auto y = [&](double loss) {
    const double v = std::clamp(loss, y_lo, y_hi);
    return kTop + (y_hi - v) / (y_hi - y_lo) * kPlotH;
  };

  std::string svg = svg::Header(kWidth, kHeight);
  absl::StrAppendFormat(
      &svg, "<text x=\"%g\" y=\"24\" font-size=\"15\">%s</text>\n", kLeft,
      svg::Escape(title.empty() ? std::string("LR range test") : title));

  // The recommended band, behind the curves.
  if (rec.min_lr() > 0 && rec.max_lr() >= rec.min_lr()) {
    const double a = x(rec.min_lr()), b = x(rec.max_lr());
    absl::StrAppendFormat(
        &svg,
        "<g id=\"bounds\"><rect x=\"%.1f\" y=\"%g\" width=\"%.1f\" "
        "height=\"%g\" fill=\"#2ca02c\" fill-opacity=\"0.12\"/>\n"
        "<text x=\"%.1f\" y=\"%g\" fill=\"#2ca02c\">min_lr %s</text>\n"
        "<text x=\"%.1f\" y=\"%g\" fill=\"#2ca02c\" "
        "text-anchor=\"end\">max_lr %s</text></g>\n",
        a, kTop, std::max(b - a, 1.0), kPlotH, a + 3, kTop + 14,
        Number(rec.min_lr()), b - 3, kTop + 28, Number(rec.max_lr()));
  }

  // Axes: a tick per decade, five on the loss axis.
  svg += svg::Axes(kFrame);
  for (int d = static_cast<int>(std::ceil(x_lo));
       d <= static_cast<int>(std::floor(x_hi)); ++d) {
    const double px = x(std::pow(10.0, d));
    absl::StrAppendFormat(
        &svg,
        "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"#ddd\"/>"
        "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">1e%d</text>\n",
        px, kTop, px, kTop + kPlotH, px, kTop + kPlotH + 16, d);
  }
  for (int i = 0; i <= 4; ++i) {
    const double v = y_lo + (y_hi - y_lo) * i / 4;
    absl::StrAppendFormat(&svg,
                          "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\">%s"
                          "</text>\n",
                          kLeft - 6, y(v) + 4, Number(v));
  }
  svg += svg::AxisTitles(kFrame, kHeight, "learning rate (log scale)",
                         "training loss");

  // Per seed: the raw loss faint, and on top the curve the analysis reads
  // its positions from (core's PositionCurve: up to divergence, spikes
  // removed, zero-lag smoothing a tenth of a decade wide, up to three
  // tenths on a noisy curve, so features are not drawn ~50 points late as
  // with the causal EMA).
  std::map<int32_t, std::string> raw, smoothed;
  std::map<int32_t, std::vector<std::pair<double, double>>> kept;  // lr, loss
  for (const auto& [key, p] : curve_) {
    if (!(p.lr() > 0)) continue;
    if (std::isfinite(p.loss())) {
      absl::StrAppendFormat(&raw[key.first], "%.1f,%.1f ", x(p.lr()),
                            y(p.loss()));
    }
    kept[key.first].emplace_back(p.lr(), p.loss());
  }
  for (const auto& [seed, points] : kept) {
    // The seed's own analysis's curve, read with the job's options; a
    // stream without one (an older coordinator) is read again here.
    std::vector<double> z;
    if (const auto carried = positions_.find(seed);
        carried != positions_.end() && !carried->second.empty()) {
      z = carried->second;
    } else {
      std::vector<double> lrs, losses;
      for (const auto& [lr, loss] : points) {
        lrs.push_back(lr);
        losses.push_back(loss);
      }
      z = PositionCurve(lrs, losses, AnalysisOptions{});
    }
    for (size_t i = 0; i < z.size() && i < points.size(); ++i) {
      absl::StrAppendFormat(&smoothed[seed], "%.1f,%.1f ", x(points[i].first),
                            y(z[i]));
    }
  }
  for (const auto& [seed, points] : raw) {
    absl::StrAppendFormat(
        &svg,
        "<polyline id=\"raw-%d\" class=\"raw\" fill=\"none\" "
        "stroke=\"%s\" stroke-opacity=\"0.3\" points=\"%s\"/>\n",
        seed, SeedColour(seed), points);
  }
  for (const auto& [seed, points] : smoothed) {
    absl::StrAppendFormat(
        &svg,
        "<polyline id=\"smoothed-%d\" class=\"smoothed\" fill=\"none\" "
        "stroke=\"%s\" stroke-width=\"2\" points=\"%s\"/>\n",
        seed, SeedColour(seed), points);
  }

  // The suggestions, each a dashed line with its name.
  struct Mark {
    const char* id;
    const char* label;
    bool has;
    double lr;
  };
  const Mark marks[] = {
      {"lr-steepest", "steepest", rec.has_lr_steepest(), rec.lr_steepest()},
      {"lr-valley", "fastai valley", rec.has_lr_valley(), rec.lr_valley()},
      {"lr-minimum", "fastai minimum/10", rec.has_lr_minimum(),
       rec.lr_minimum()},
      {"lr-slide", "fastai slide", rec.has_lr_slide(), rec.lr_slide()},
      {"lr-steep", "fastai steep", rec.has_lr_steep(), rec.lr_steep()},
  };
  int row = 0;
  for (const Mark& m : marks) {
    if (!m.has || !(m.lr > 0)) continue;
    const double px = x(m.lr);
    if (px < kLeft || px > kLeft + kPlotW) continue;
    absl::StrAppendFormat(
        &svg,
        "<g id=\"%s\"><line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" "
        "stroke=\"#555\" stroke-dasharray=\"4 3\"/><text x=\"%.1f\" "
        "y=\"%g\" fill=\"#555\">%s %s</text></g>\n",
        m.id, px, kTop, px, kTop + kPlotH, px + 3,
        kTop + kPlotH - 8 - 14 * row++, m.label, Number(m.lr));
  }

  // Legend: in the header row, right-aligned, one swatch per seed (the
  // plot's corners hold the band's and the suggestions' labels).
  std::string legend;
  double lx = kLeft + kPlotW;
  auto entry = [&](const std::string& text, const char* colour, double stroke) {
    lx -= 7 * static_cast<double>(text.size());
    absl::StrAppendFormat(&legend, "<text x=\"%g\" y=\"24\">%s</text>", lx,
                          text);
    if (colour != nullptr) {
      lx -= 24;
      absl::StrAppendFormat(&legend,
                            "<line x1=\"%g\" y1=\"20\" x2=\"%g\" y2=\"20\" "
                            "stroke=\"%s\" stroke-width=\"%g\"/>",
                            lx, lx + 18, colour, stroke);
    }
    lx -= 12;
  };
  entry("raw", "#999", 1);
  entry("smoothed", "#444", 2);
  if (smoothed.size() > 1 && smoothed.size() <= 6) {
    for (auto it = smoothed.rbegin(); it != smoothed.rend(); ++it) {
      entry(absl::StrCat("seed ", it->first), SeedColour(it->first), 2);
    }
  }
  absl::StrAppendFormat(&svg, "<g id=\"legend\">%s</g>\n", legend);
  svg += "</svg>\n";
  return svg;
}

}  // namespace lrtune
