// For tests: a schedule from its parameters as the CLI and the grid name
// them (core/schedule_params.h), failing the test on a bad one.
#ifndef LRTUNE_CORE_SCHEDULE_TESTING_H_
#define LRTUNE_CORE_SCHEDULE_TESTING_H_

#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/schedule.h"
#include "core/schedule_params.h"
#include "gtest/gtest.h"

namespace lrtune {

//   Schedule s = MakeSchedule({{"kind", "cosine"}, {"t_max", "900"}});
inline Schedule MakeSchedule(
    const std::vector<std::pair<const char*, const char*>>& params) {
  ScheduleSpec spec;
  for (const auto& [k, v] : params) {
    EXPECT_TRUE(SetScheduleParam(spec, k, v).ok()) << k;
  }
  absl::StatusOr<Schedule> s = Schedule::Create(spec);
  EXPECT_TRUE(s.ok()) << s.status();
  return *std::move(s);
}

}  // namespace lrtune

#endif  // LRTUNE_CORE_SCHEDULE_TESTING_H_
