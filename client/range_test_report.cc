#include "client/range_test_report.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/recommendation_format.h"
#include "core/spec.h"
#include "google/protobuf/util/json_util.h"
#include "proto/core_convert.h"

namespace lrtune {
namespace {

constexpr absl::Duration kRedrawEvery = absl::Milliseconds(100);

// Full precision for finite values; what ParseCurveCsv reads otherwise.
std::string CsvNumber(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return JsonNumber(v);
}

// "succeeded", "failed", ...
std::string StateName(v1::JobState state) {
  std::string name = v1::JobState_Name(state);
  constexpr absl::string_view kPrefix = "JOB_STATE_";
  if (absl::StartsWith(name, kPrefix)) name = name.substr(kPrefix.size());
  return absl::AsciiStrToLower(name);
}

std::string Device(const v1::Job& job, const std::string& hint) {
  for (const v1::TaskAttempt& a : job.attempts()) {
    if (!a.device().empty()) return a.device();
  }
  return hint;
}

std::string Duration(double seconds) {
  if (seconds < 60) return absl::StrFormat("%.1f s", seconds);
  return absl::StrFormat("%dm%02ds", static_cast<int>(seconds) / 60,
                         static_cast<int>(seconds) % 60);
}

}  // namespace

void RangeTestReport::Add(const v1::JobEvent& event, absl::Time now) {
  if (event.has_recommendation() && event.recommendation().has_seed_index()) {
    const auto& position = event.recommendation().recommendation().position();
    positions_[event.recommendation().seed_index()].assign(position.begin(),
                                                           position.end());
    return;
  }
  if (!event.has_point()) return;
  const v1::CurvePoint& p = event.point().point();
  if (points_ == 0) first_point_ = now;
  ++points_;
  curve_[{p.seed_index(), p.step()}] = p;
  last_ = p;
}

void RangeTestReport::DrawProgress(std::ostream& err, absl::Time now,
                                   bool force) {
  if (points_ == 0) return;
  if (!force && now - last_draw_ < kRedrawEvery) return;
  last_draw_ = now;
  std::string eta = "";
  const double elapsed = absl::ToDoubleSeconds(now - first_point_);
  if (total_steps_ > points_ && points_ >= 10 && elapsed > 0) {
    eta = absl::StrCat("  eta ",
                       Duration(elapsed / static_cast<double>(points_) *
                                static_cast<double>(total_steps_ - points_)));
  }
  const int percent = total_steps_ > 0 ? static_cast<int>(std::min<int64_t>(
                                             100, 100 * points_ / total_steps_))
                                       : 0;
  err << absl::StrFormat(
             "\r\033[K  seed %d  step %d  lr %.3g  loss %.4g  %3d%%%s",
             last_.seed_index(), last_.step(), last_.lr(), last_.loss(),
             percent, eta)
      << std::flush;
  drawn_ = true;
}

void RangeTestReport::ClearProgress(std::ostream& err) {
  if (!drawn_) return;
  err << "\r\033[K" << std::flush;
  drawn_ = false;
}

std::string RangeTestReport::CurveCsv() const {
  std::string csv = "seed,step,lr,loss,smoothed\n";
  for (const auto& [key, p] : curve_) {
    absl::StrAppend(&csv, key.first, ",", key.second, ",", CsvNumber(p.lr()),
                    ",", CsvNumber(p.loss()), ",", CsvNumber(p.smoothed()),
                    "\n");
  }
  return csv;
}

std::string RangeTestReport::TerminalPlot(double min_lr, double max_lr,
                                          int width, int height) const {
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY;
  std::vector<double> starts;
  for (const auto& [key, p] : curve_) {
    if (!(p.lr() > 0) || !std::isfinite(p.smoothed())) continue;
    x_lo = std::min(x_lo, std::log10(p.lr()));
    x_hi = std::max(x_hi, std::log10(p.lr()));
    y_lo = std::min(y_lo, p.smoothed());
    if (key.second == 0) starts.push_back(p.smoothed());
  }
  if (!(x_hi > x_lo) || starts.empty() || width < 8 || height < 3) return "";
  const double y_hi = std::max(
      1.25 * *std::max_element(starts.begin(), starts.end()), y_lo + 1e-12);
  std::vector<std::string> rows(height, std::string(width, ' '));
  auto column = [&](double lr) {
    return static_cast<int>(
        std::lround((std::log10(lr) - x_lo) / (x_hi - x_lo) * (width - 1)));
  };
  for (double bound : {min_lr, max_lr}) {
    if (!(bound > 0)) continue;
    const int c = column(bound);
    if (c < 0 || c >= width) continue;
    for (std::string& row : rows) row[c] = '|';
  }
  for (const auto& [key, p] : curve_) {
    if (!(p.lr() > 0) || !std::isfinite(p.smoothed())) continue;
    const int c = column(p.lr());
    const double y = std::min(p.smoothed(), y_hi);
    const int r = static_cast<int>(
        std::lround((y_hi - y) / (y_hi - y_lo) * (height - 1)));
    char& cell = rows[r][c];
    const char mark = static_cast<char>('0' + key.first % 10);
    cell = (cell == ' ' || cell == '|' || cell == mark) ? mark : '*';
  }
  std::string plot;
  for (int r = 0; r < height; ++r) {
    const double y = y_hi - (y_hi - y_lo) * r / (height - 1);
    absl::StrAppend(&plot,
                    r == 0 || r == height - 1 ? absl::StrFormat("%9.4g ", y)
                                              : std::string(10, ' '),
                    "|", rows[r], "\n");
  }
  const std::string left = absl::StrFormat("lr %.2g", std::pow(10, x_lo));
  const std::string right = absl::StrFormat("%.2g", std::pow(10, x_hi));
  absl::StrAppend(
      &plot, std::string(10, ' '), "+", std::string(width, '-'), "\n",
      std::string(11, ' '), left,
      std::string(std::max<int>(
                      1, width - static_cast<int>(left.size() + right.size())),
                  ' '),
      right, "\n", std::string(11, ' '),
      "smoothed loss vs LR (log); | marks min_lr and max_lr\n");
  return plot;
}

std::string RangeTestJson(const v1::Job& job, int64_t points,
                          double wall_seconds, const std::string& device_hint) {
  std::string json = absl::StrCat(
      "{\"job_id\":", JsonString(job.job_id()),
      ",\"state\":", JsonString(StateName(job.state())), ",\"points\":", points,
      ",\"wall_seconds\":", JsonNumber(wall_seconds),
      ",\"device\":", JsonString(Device(job, device_hint)));
  if (job.state() != v1::JOB_STATE_SUCCEEDED || !job.has_range_test_result()) {
    return absl::StrCat(json, ",\"failure\":", JsonString(job.failure()), "}");
  }
  const v1::RangeTestResult& result = job.range_test_result();
  std::vector<std::string> per_seed;
  for (const v1::Recommendation& r : result.per_seed()) {
    per_seed.push_back(RecommendationToJson(RecommendationFromProto(r)));
  }
  std::string schedules = "null";
  if (result.recommendation().has_schedules()) {
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    std::string s;
    if (google::protobuf::util::MessageToJsonString(
            result.recommendation().schedules(), &s, options)
            .ok()) {
      schedules = s;
    }
  }
  return absl::StrCat(
      json, ",\"steps_run\":", result.steps_run(),
      ",\"train_seconds\":", JsonNumber(result.train_seconds()),
      ",\"recommendation\":",
      RecommendationToJson(RecommendationFromProto(result.recommendation())),
      ",\"per_seed\":[", absl::StrJoin(per_seed, ","),
      "],\"schedules\":", schedules, "}");
}

std::string RangeTestSummary(const v1::Job& job, int64_t points,
                             double wall_seconds,
                             const std::string& device_hint) {
  const std::string device = Device(job, device_hint);
  std::string head = absl::StrFormat(
      "range test %s: %d points in %s%s\n", job.job_id(), points,
      Duration(wall_seconds), device.empty() ? "" : " on " + device);
  if (job.state() != v1::JOB_STATE_SUCCEEDED || !job.has_range_test_result()) {
    return absl::StrCat(head, "  ", StateName(job.state()), ": ", job.failure(),
                        "\n");
  }
  const v1::RangeTestSpec& rt = job.range_test().range_test();
  if (rt.metric() == v1::RANGE_METRIC_VAL_LOSS ||
      rt.metric() == v1::RANGE_METRIC_VAL_ACCURACY) {
    absl::StrAppendFormat(
        &head, "  read from       %s, evaluated every %d steps on %d samples\n",
        rt.metric() == v1::RANGE_METRIC_VAL_LOSS ? "val_loss"
                                                 : "1 - val_accuracy",
        rt.eval_every(),
        rt.has_eval_samples() ? rt.eval_samples()
                              : RangeTestSpec{}.eval_samples);
  }
  return absl::StrCat(head, FormatRecommendation(RecommendationFromProto(
                                job.range_test_result().recommendation())));
}

}  // namespace lrtune
