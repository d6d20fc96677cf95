#include "core/early_stopping.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/schedule_shapes.h"

namespace lrtune {
namespace {

// Appends the ends of periods that restart every `first`, first x t_mult,
// ... steps from `offset`, up to `limit` (total updates).
void AppendPeriodEnds(int64_t offset, int64_t first, int64_t t_mult,
                      int64_t limit, std::vector<int64_t>& out) {
  int64_t end = offset, period = first;
  while (period <= limit - end) {
    end += period;
    out.push_back(end);
    if (t_mult > 1 && period > std::numeric_limits<int64_t>::max() / t_mult) {
      break;
    }
    period *= t_mult;
  }
}

// The cycle ends of a schedule that is not sequential, shifted by `offset`,
// up to `limit`.
void AppendCycleEnds(const ScheduleSpec& s, int64_t length, int64_t offset,
                     int64_t limit, std::vector<int64_t>& out) {
  switch (s.kind) {
    case ScheduleKind::kTriangular:
    case ScheduleKind::kTriangular2:
    case ScheduleKind::kExpRange:
      AppendPeriodEnds(offset, s.step_size_up + s.step_size_down, 1, limit,
                       out);
      return;
    case ScheduleKind::kSgdr:
      AppendPeriodEnds(offset, s.t0, s.t_mult, limit, out);
      return;
    case ScheduleKind::kProfile:
      if (s.profile_mode == ProfileMode::kGrowth) return;  // ends at a peak
      AppendPeriodEnds(offset,
                       s.profile_mode == ProfileMode::kCyclic ? 2 * s.t0 : s.t0,
                       s.t_mult, limit, out);
      return;
    case ScheduleKind::kOneCycle:
    case ScheduleKind::kRex:
    case ScheduleKind::kWsd:
      if (length > 0 && length <= limit - offset)
        out.push_back(offset + length);
      return;
    default:
      return;
  }
}

}  // namespace

std::vector<int64_t> CycleEnds(const Schedule& schedule, int64_t total) {
  std::vector<int64_t> out;
  const ScheduleSpec& s = schedule.spec();
  if (s.kind != ScheduleKind::kSequential) {
    AppendCycleEnds(s, schedule.length(), 0, total, out);
    return out;
  }
  for (size_t i = 0; i < s.children.size(); ++i) {
    const int64_t start = i == 0 ? 0 : s.boundaries[i - 1];
    if (start >= total) break;
    const int64_t end =
        i < s.boundaries.size() ? std::min(total, s.boundaries[i]) : total;
    // Children passed Create with the parent; their defaults resolve here.
    absl::StatusOr<Schedule> child = Schedule::Create(s.children[i]);
    if (!child.ok()) continue;
    AppendCycleEnds(child->spec(), child->length(), start, end, out);
  }
  return out;
}

EarlyStopping::Verdict EarlyStopping::Observe(int64_t step, double value) {
  Verdict v;
  const bool lower_is_better = options_.metric == StopMetric::kValLoss;
  if (!std::isnan(value)) {
    if (state_.best_step < 0) {
      v.improved = true;
    } else if (lower_is_better) {
      v.improved = value < state_.best - options_.min_delta;
    } else {
      v.improved = value > state_.best + options_.min_delta;
    }
  }
  if (v.improved) {
    state_.best = value;
    state_.best_step = step;
    state_.since_best = 0;
  } else {
    ++state_.since_best;
  }
  v.stop = options_.patience > 0 && state_.since_best >= options_.patience;
  return v;
}

}  // namespace lrtune
