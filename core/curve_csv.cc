#include "core/curve_csv.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace lrtune {
namespace {

// A cell without surrounding blanks and double quotes.
absl::string_view CleanCell(absl::string_view cell) {
  cell = absl::StripAsciiWhitespace(cell);
  if (cell.size() >= 2 && cell.front() == '"' && cell.back() == '"') {
    cell = absl::StripAsciiWhitespace(cell.substr(1, cell.size() - 2));
  }
  return cell;
}

// Accepts what absl parses plus the spellings numpy, pandas and C print for
// non-finite values ("nan", "-nan", "inf", "-inf", "infinity"), any case.
bool ParseDouble(absl::string_view text, double* out) {
  const std::string lower = absl::AsciiStrToLower(text);
  absl::string_view body = lower;
  const bool negative = !body.empty() && body.front() == '-';
  if (negative || (!body.empty() && body.front() == '+')) body.remove_prefix(1);
  if (body == "nan") {
    *out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (body == "inf" || body == "infinity") {
    *out = negative ? -std::numeric_limits<double>::infinity()
                    : std::numeric_limits<double>::infinity();
    return true;
  }
  return absl::SimpleAtod(text, out);
}

struct Columns {
  size_t count = 0;
  std::optional<size_t> step, lr, loss;
};

absl::StatusOr<Columns> ParseHeader(absl::string_view line, int line_no) {
  Columns cols;
  size_t index = 0;
  for (absl::string_view raw : absl::StrSplit(line, ',')) {
    const std::string name = absl::AsciiStrToLower(CleanCell(raw));
    std::optional<size_t>* slot = nullptr;
    if (name == "step") slot = &cols.step;
    if (name == "lr") slot = &cols.lr;
    if (name == "loss") slot = &cols.loss;
    if (slot != nullptr) {
      if (slot->has_value()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "line ", line_no, ": duplicate column '", name, "' in the header"));
      }
      *slot = index;
    }
    ++index;
  }
  cols.count = index;
  for (const auto& [slot, name] :
       {std::pair{&cols.lr, "lr"}, std::pair{&cols.loss, "loss"}}) {
    if (!slot->has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "missing column '", name, "': line ", line_no,
          " is the header and must name the columns 'lr' and 'loss' "
          "('step' optional)"));
    }
  }
  return cols;
}

}  // namespace

absl::StatusOr<std::vector<CurvePoint>> ParseCurveCsv(absl::string_view text) {
  std::optional<Columns> cols;
  std::vector<CurvePoint> points;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const absl::string_view stripped = absl::StripAsciiWhitespace(line);
    if (stripped.empty() || stripped.front() == '#') continue;
    if (!cols.has_value()) {
      absl::StatusOr<Columns> header = ParseHeader(stripped, line_no);
      if (!header.ok()) return header.status();
      cols = *header;
      continue;
    }
    std::vector<absl::string_view> cells = absl::StrSplit(stripped, ',');
    if (cells.size() != cols->count) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_no, ": expected ", cols->count,
                       " columns as in the header, got ", cells.size()));
    }
    auto cell = [&](size_t index) { return CleanCell(cells[index]); };
    auto not_a = [&](absl::string_view column, absl::string_view value,
                     absl::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_no, ", column '", column, "': '", value,
                       "' is not ", what));
    };
    CurvePoint p;
    p.step = static_cast<int64_t>(points.size());
    if (cols->step.has_value() &&
        !absl::SimpleAtoi(cell(*cols->step), &p.step)) {
      return not_a("step", cell(*cols->step), "an integer");
    }
    if (!ParseDouble(cell(*cols->lr), &p.lr)) {
      return not_a("lr", cell(*cols->lr), "a number");
    }
    if (!(std::isfinite(p.lr) && p.lr > 0.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_no, ": lr must be finite and > 0, got ",
                       cell(*cols->lr)));
    }
    if (!ParseDouble(cell(*cols->loss), &p.loss)) {
      return not_a("loss", cell(*cols->loss), "a number");
    }
    points.push_back(p);
  }
  if (!cols.has_value()) {
    return absl::InvalidArgumentError(
        "missing header: the CSV has no line naming the columns 'lr' and "
        "'loss'");
  }
  return points;
}

std::string FormatCurveCsv(const std::vector<CurvePoint>& points) {
  auto number = [](double v) -> std::string {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    return absl::StrFormat("%.17g", v);
  };
  std::string out = "step,lr,loss\n";
  for (const CurvePoint& p : points) {
    absl::StrAppend(&out, p.step, ",", number(p.lr), ",", number(p.loss), "\n");
  }
  return out;
}

}  // namespace lrtune
