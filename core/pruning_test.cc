#include "core/pruning.h"

#include <cmath>
#include <vector>

#include "core/schedule_testing.h"
#include "gtest/gtest.h"

namespace lrtune {
namespace {

using Steps = std::vector<int64_t>;

TEST(RungStepsTest, MonotoneSchedulesAtFractionsOfTheBudget) {
  const PruningOptions o;  // eta 3, first rung at 1/9
  EXPECT_EQ(
      RungSteps(MakeSchedule({{"kind", "cosine"}, {"t_max", "900"}}), 900, o),
      (Steps{100, 300}));
  EXPECT_EQ(RungSteps(MakeSchedule({{"kind", "one_cycle"},
                                    {"max_lr", "0.1"},
                                    {"total_steps", "702"}}),
                      702, o),
            (Steps{78, 234}));
  PruningOptions two;
  two.reduction_factor = 2;
  two.min_fraction = 0.25;
  EXPECT_EQ(RungSteps(MakeSchedule({{"kind", "constant"}}), 100, two),
            (Steps{25, 50}));
}

TEST(RungStepsTest, NoRungBeforeMinSteps) {
  const Schedule cosine = MakeSchedule({{"kind", "cosine"}, {"t_max", "100"}});
  PruningOptions o;  // rungs at N/9 and N/3, none before step 10
  EXPECT_EQ(RungSteps(cosine, 100, o), (Steps{11, 33}));
  EXPECT_EQ(RungSteps(cosine, 45, o), (Steps{15}));  // N/9 = 5 is dropped
  EXPECT_EQ(RungSteps(cosine, 11, o), (Steps{}));    // 1 and 4: none
  o.min_steps = 1;
  EXPECT_EQ(RungSteps(cosine, 11, o), (Steps{1, 4}));
  o.min_steps = 0;
  EXPECT_NE(ValidatePruning(o, PrefixNames("grid.pruning."))
                .message()
                .find("grid.pruning.min_steps must be >= 1, got 0"),
            std::string::npos);
}

TEST(RungStepsTest, CyclicalSchedulesAtTheNextCycleEnd) {
  const PruningOptions o;
  // Cycles of 2 x 40: N/9 = 100 moves to 160, N/3 = 300 to 320.
  EXPECT_EQ(RungSteps(MakeSchedule({{"kind", "triangular"},
                                    {"max_lr", "1"},
                                    {"step_size_up", "40"}}),
                      900, o),
            (Steps{160, 320}));
  // SGDR restarting at 200, 600 (t_mult 2): both rungs move to 200 and 600.
  EXPECT_EQ(RungSteps(MakeSchedule(
                          {{"kind", "sgdr"}, {"t0", "200"}, {"t_mult", "2"}}),
                      900, o),
            (Steps{200, 600}));
  // One cycle over the budget has no cycle end before it: like a monotone
  // schedule, it is compared at the fractions, with its own kind.
  EXPECT_EQ(RungSteps(MakeSchedule({{"kind", "triangular"},
                                    {"max_lr", "1"},
                                    {"step_size_up", "450"}}),
                      900, o),
            (Steps{100, 300}));
}

TEST(PruningGroupTest, BudgetAndKindAfterAWarmup) {
  EXPECT_EQ(PruningGroup(
                MakeSchedule({{"kind", "rex"}, {"total_steps", "300"}}), 300),
            "rex/300");
  EXPECT_EQ(PruningGroup(MakeSchedule({{"kind", "cosine"},
                                       {"t_max", "290"},
                                       {"warmup_steps", "10"}}),
                         300),
            "cosine/300");
}

TEST(RungTableTest, KeepsTheBestThirdOfWhatArrivedSoFar) {
  RungTable t(3.0);
  // Lower is better. 1: alone, goes on. 2: worse than 1 of 2 -> keep 1.
  EXPECT_TRUE(t.Decide("g", 0, 1, 0.50, false));
  EXPECT_FALSE(t.Decide("g", 0, 2, 0.60, false));
  EXPECT_TRUE(t.Decide("g", 0, 3, 0.40, false));           // the best of 3
  EXPECT_FALSE(t.Decide("g", 0, 4, 0.45, false));          // 2nd of 4, keep 1
  EXPECT_FALSE(t.Decide("g", 0, 5, 0.42, false));          // 2nd of 5, keep 1
  EXPECT_TRUE(t.Decide("g", 0, 6, 0.41, false));           // 2nd of 6, keep 2
  EXPECT_FALSE(t.Decide("g", 0, 7, std::nan(""), false));  // NaN: pruned
  // A resent result gets its decision again, and changes nothing.
  EXPECT_FALSE(t.Decide("g", 0, 2, 0.01, false));
  EXPECT_TRUE(t.Decide("g", 0, 1, 9.0, false));
  // Other rungs and groups are separate; higher can be better.
  EXPECT_TRUE(t.Decide("g", 1, 2, 0.3, true));
  EXPECT_TRUE(t.Decide("h", 0, 2, 0.3, true));
  EXPECT_FALSE(t.Decide("h", 0, 3, 0.2, true));
  EXPECT_TRUE(t.Decide("h", 0, 4, 0.3, true) == false);  // tie: the earlier
}

TEST(RungTableTest, ReplayedDecisionsStandAndWeighLaterOnes) {
  RungTable t(3.0);
  t.Record("g", 0, 1, 0.9, true);
  t.Record("g", 0, 2, 0.5, false);  // as stored, whatever the rule says now
  EXPECT_FALSE(*t.Find("g", 0, 2));
  EXPECT_FALSE(t.Decide("g", 0, 3, 0.7, false));  // 2nd of 3
  EXPECT_EQ(t.Find("g", 1, 1), nullptr);
}

TEST(ValidatePruningTest, NamesTheField) {
  PruningOptions o;
  o.reduction_factor = 1.5;
  EXPECT_NE(ValidatePruning(o, PrefixNames("grid.pruning."))
                .message()
                .find("grid.pruning.reduction_factor must be in [2, 10]"),
            std::string::npos);
  o = {};
  o.min_fraction = 0.5;
  EXPECT_NE(ValidatePruning(o, PrefixNames(""))
                .message()
                .find("min_fraction must be in (0, 1 / reduction_factor]"),
            std::string::npos);
}

}  // namespace
}  // namespace lrtune
