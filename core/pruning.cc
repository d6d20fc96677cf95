#include "core/pruning.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/early_stopping.h"

namespace lrtune {

absl::Status ValidatePruning(const PruningOptions& o, const FieldNamer& names) {
  if (!(o.reduction_factor >= 2.0 && o.reduction_factor <= 10.0)) {
    return FieldError(
        names, "reduction_factor",
        absl::StrCat("must be in [2, 10], got ", o.reduction_factor));
  }
  if (!(o.min_fraction > 0.0 && o.min_fraction <= 1.0 / o.reduction_factor)) {
    return FieldError(
        names, "min_fraction",
        absl::StrCat("must be in (0, 1 / reduction_factor] (at least one "
                     "rung below the budget), got ",
                     o.min_fraction));
  }
  if (o.min_steps < 1) {
    return FieldError(names, "min_steps",
                      absl::StrCat("must be >= 1, got ", o.min_steps));
  }
  return absl::OkStatus();
}

std::vector<int64_t> RungSteps(const Schedule& schedule, int64_t total,
                               const PruningOptions& o) {
  // K rungs: the most k with eta^-k >= min_fraction (a little slack for
  // 1/9 not being exact in binary).
  const int rungs = static_cast<int>(std::floor(
      std::log(1.0 / o.min_fraction) / std::log(o.reduction_factor) + 1e-9));
  const std::vector<int64_t> ends = CycleEnds(schedule, total);
  // Cyclical: more than one cycle end, or one before the end of the run.
  const bool cyclical = !ends.empty() && ends.front() < total;
  std::vector<int64_t> out;
  for (int k = rungs; k >= 1; --k) {
    int64_t step = static_cast<int64_t>(std::llround(
        static_cast<double>(total) / std::pow(o.reduction_factor, k)));
    if (cyclical) {
      auto it = std::lower_bound(ends.begin(), ends.end(), step);
      if (it == ends.end()) continue;
      step = *it;
    }
    if (step < o.min_steps || step >= total) continue;
    if (!out.empty() && out.back() >= step) continue;
    out.push_back(step);
  }
  return out;
}

std::string PruningGroup(const Schedule& schedule, int64_t total) {
  // A warm-up is a sequential: the group is the kind after it.
  const ScheduleSpec& s = schedule.spec();
  const ScheduleKind kind =
      s.kind == ScheduleKind::kSequential && !s.children.empty()
          ? s.children.back().kind
          : s.kind;
  return absl::StrCat(ScheduleKindName(kind), "/", total);
}

const bool* RungTable::Find(const std::string& group, int rung,
                            int trial) const {
  auto it = rungs_.find({group, rung});
  if (it == rungs_.end()) return nullptr;
  for (const Result& r : it->second) {
    if (r.trial == trial) return &r.promoted;
  }
  return nullptr;
}

void RungTable::Record(const std::string& group, int rung, int trial,
                       double value, bool promoted) {
  if (Find(group, rung, trial) != nullptr) return;
  rungs_[{group, rung}].push_back({trial, value, promoted});
}

bool RungTable::Decide(const std::string& group, int rung, int trial,
                       double value, bool higher_is_better) {
  if (const bool* known = Find(group, rung, trial)) return *known;
  std::vector<Result>& results = rungs_[{group, rung}];
  bool promoted = false;
  if (!std::isnan(value)) {
    // Results strictly better than this one (earlier equal ones count as
    // better: ties go to the earlier arrival).
    int64_t better = 0;
    for (const Result& r : results) {
      if (std::isnan(r.value)) continue;
      if (higher_is_better ? r.value >= value : r.value <= value) ++better;
    }
    const int64_t n = static_cast<int64_t>(results.size()) + 1;
    const int64_t keep = std::max<int64_t>(
        1, static_cast<int64_t>(std::floor(static_cast<double>(n) / eta_)));
    promoted = better < keep;
  }
  results.push_back({trial, value, promoted});
  return promoted;
}

}  // namespace lrtune
