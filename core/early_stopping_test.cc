#include "core/early_stopping.h"

#include <cmath>
#include <vector>

#include "core/schedule_testing.h"
#include "gtest/gtest.h"

namespace lrtune {
namespace {

using Ends = std::vector<int64_t>;

TEST(CycleEndsTest, WhereEachKindIsBackAtItsLow) {
  // Cycles of step_size_up + step_size_down.
  EXPECT_EQ(CycleEnds(MakeSchedule({{"kind", "triangular"},
                                    {"max_lr", "1"},
                                    {"step_size_up", "3"},
                                    {"step_size_down", "2"}}),
                      17),
            (Ends{5, 10, 15}));
  // SGDR's restarts: periods 4, 8, 16.
  EXPECT_EQ(
      CycleEnds(MakeSchedule({{"kind", "sgdr"}, {"t0", "4"}, {"t_mult", "2"}}),
                30),
      (Ends{4, 12, 28}));
  // A cyclic profile's period is two half-cycles; a decaying one restarts.
  EXPECT_EQ(CycleEnds(MakeSchedule({{"kind", "profile"},
                                    {"profile_mode", "cyclic"},
                                    {"t0", "3"}}),
                      20),
            (Ends{6, 12, 18}));
  EXPECT_EQ(
      CycleEnds(
          MakeSchedule({{"kind", "profile"}, {"profile", "rex"}, {"t0", "7"}}),
          20),
      (Ends{7, 14}));
  // A growth ends at its peak: no cycle ends there.
  EXPECT_TRUE(CycleEnds(MakeSchedule({{"kind", "profile"},
                                      {"profile_mode", "growth"},
                                      {"t0", "5"}}),
                        20)
                  .empty());
  // One cycle: the end, when it fits in the budget.
  const Schedule one = MakeSchedule(
      {{"kind", "one_cycle"}, {"max_lr", "0.1"}, {"total_steps", "50"}});
  EXPECT_EQ(CycleEnds(one, 50), (Ends{50}));
  EXPECT_TRUE(CycleEnds(one, 49).empty());
  // No cycles at all.
  EXPECT_TRUE(
      CycleEnds(MakeSchedule({{"kind", "cosine"}, {"t_max", "10"}}), 100)
          .empty());
  EXPECT_TRUE(CycleEnds(MakeSchedule({{"kind", "constant"}}), 100).empty());
}

TEST(CycleEndsTest, AWarmupShiftsTheCyclesAfterIt) {
  EXPECT_EQ(
      CycleEnds(
          MakeSchedule({{"kind", "sgdr"}, {"t0", "10"}, {"warmup_steps", "5"}}),
          40),
      (Ends{15, 25, 35}));
}

TEST(EarlyStoppingTest, CountsJudgedEvaluationsSinceTheBest) {
  EarlyStoppingOptions o;
  o.patience = 2;
  o.min_delta = 0.05;
  EarlyStopping s(o);
  EXPECT_TRUE(s.Observe(10, 1.0).improved);    // the first is the best
  EXPECT_FALSE(s.Observe(20, 0.97).improved);  // not by more than 0.05
  EXPECT_TRUE(s.Observe(30, 0.9).improved);
  EXPECT_EQ(s.best_step(), 30);
  EarlyStopping::Verdict v = s.Observe(40, std::nan(""));  // never improves
  EXPECT_FALSE(v.improved);
  EXPECT_FALSE(v.stop);
  v = s.Observe(50, 0.95);
  EXPECT_TRUE(v.stop);
  EXPECT_EQ(s.best_step(), 30);
  EXPECT_EQ(s.best_value(), 0.9);
  // A checkpoint's state continues the count.
  EarlyStopping t(o);
  t.Restore(s.state());
  EXPECT_TRUE(t.Observe(60, 0.99).stop);
}

TEST(EarlyStoppingTest, AccuracyIsBetterHigherAndPatienceZeroNeverStops) {
  EarlyStoppingOptions o;
  o.metric = StopMetric::kValAccuracy;
  EarlyStopping s(o);
  EXPECT_TRUE(s.Observe(1, 0.5).improved);
  EXPECT_TRUE(s.Observe(2, 0.6).improved);
  for (int i = 3; i < 50; ++i) EXPECT_FALSE(s.Observe(i, 0.4).stop);
  EXPECT_EQ(s.best_step(), 2);
}

}  // namespace
}  // namespace lrtune
