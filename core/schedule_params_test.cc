#include "core/schedule_params.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"

namespace lrtune {
namespace {

TEST(ScheduleParamsTest, AcceptsSnakeAndKebabNames) {
  ScheduleSpec spec;
  ASSERT_TRUE(SetScheduleParam(spec, "kind", "1cycle").ok());
  ASSERT_TRUE(SetScheduleParam(spec, "max-lr", "0.3").ok());
  ASSERT_TRUE(SetScheduleParam(spec, "total_steps", "120").ok());
  ASSERT_TRUE(SetScheduleParam(spec, "three-phase", "true").ok());
  ASSERT_TRUE(SetScheduleParam(spec, "anneal", "linear").ok());
  EXPECT_EQ(spec.kind, ScheduleKind::kOneCycle);
  EXPECT_DOUBLE_EQ(spec.max_lr, 0.3);
  EXPECT_EQ(spec.total_steps, 120);
  EXPECT_TRUE(spec.three_phase);
  EXPECT_EQ(spec.anneal, Anneal::kLinear);
}

TEST(ScheduleParamsTest, ModeSelectsTheCyclicKind) {
  ScheduleSpec spec;
  ASSERT_TRUE(SetScheduleParam(spec, "mode", "exp_range").ok());
  EXPECT_EQ(spec.kind, ScheduleKind::kExpRange);
  EXPECT_FALSE(SetScheduleParam(spec, "mode", "sawtooth").ok());
}

TEST(ScheduleParamsTest, MilestonesKeepRepeats) {
  ScheduleSpec spec;
  ASSERT_TRUE(SetScheduleParam(spec, "milestones", "30,60,60").ok());
  EXPECT_EQ(spec.milestones, (std::vector<int64_t>{30, 60, 60}));
}

TEST(ScheduleParamsTest, ErrorsNameTheParameter) {
  ScheduleSpec spec;
  absl::Status st = SetScheduleParam(spec, "gamma", "fast");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("gamma: 'fast' is not a number"),
            std::string::npos)
      << st;
  st = SetScheduleParam(spec, "warp_factor", "9");
  EXPECT_NE(st.message().find("unknown schedule parameter 'warp_factor'"),
            std::string::npos)
      << st;
  st = SetScheduleParam(spec, "kind", "zigzag");
  EXPECT_NE(st.message().find("unknown schedule kind 'zigzag'"),
            std::string::npos)
      << st;
  st = SetScheduleParam(spec, "cooldown", "sqrt");
  EXPECT_NE(st.message().find("one of linear, cosine, 1-sqrt"),
            std::string::npos)
      << st;
  ASSERT_TRUE(SetScheduleParam(spec, "cooldown", "1-SQRT").ok());
  EXPECT_EQ(spec.cooldown, Cooldown::kOneMinusSqrt);
  EXPECT_FALSE(SetScheduleParam(spec, "t0", "1.5").ok());
  EXPECT_FALSE(SetScheduleParam(spec, "milestones", "3,x").ok());
}

TEST(ScheduleParamsTest, EveryNameIsSettable) {
  for (const std::string& name : ScheduleParamNames()) {
    ScheduleSpec spec;
    // Each parameter rejects garbage with its own name in the message.
    absl::Status st = SetScheduleParam(spec, name, "%%");
    EXPECT_FALSE(st.ok()) << name;
    EXPECT_NE(st.message().find(name == "kind" ? "%%" : name),
              std::string::npos)
        << st;
  }
}

TEST(ScheduleParamsTest, FlagsAreTheBooleans) {
  EXPECT_TRUE(IsScheduleFlag("three_phase"));
  EXPECT_TRUE(IsScheduleFlag("cycle_momentum"));
  EXPECT_FALSE(IsScheduleFlag("max_lr"));
  EXPECT_FALSE(IsScheduleFlag("warp_factor"));
  for (const std::string& name : ScheduleParamNames()) {
    ScheduleSpec spec;
    // A flag takes true and false and nothing else; no other takes both.
    const bool boolean = SetScheduleParam(spec, name, "true").ok() &&
                         SetScheduleParam(spec, name, "false").ok() &&
                         !SetScheduleParam(spec, name, "0.5").ok();
    EXPECT_EQ(IsScheduleFlag(name), boolean) << name;
  }
}

// A schedule as flags reads back as the same schedule: only what differs
// from the kind's defaults is written, and every double in full.
TEST(ScheduleFlagsTest, RebuildTheSchedule) {
  ScheduleSpec spec = ScheduleSpec::OneCycle(0.0675, 1404);
  spec.div_factor = 10;
  spec.three_phase = true;
  spec.cycle_momentum = false;
  const std::string flags = ScheduleFlags(spec);
  EXPECT_EQ(flags,
            "--kind one_cycle --max-lr 0.0675 --total-steps 1404 "
            "--no-cycle-momentum --div-factor 10 --three-phase");
  ScheduleSpec back;
  for (absl::string_view f : absl::StrSplit(flags, "--", absl::SkipEmpty())) {
    std::vector<std::string> kv =
        absl::StrSplit(absl::StripAsciiWhitespace(f), ' ');
    if (kv.size() == 1) {
      const bool no = absl::StartsWith(kv[0], "no-");
      ASSERT_TRUE(SetScheduleParam(back, no ? kv[0].substr(3) : kv[0],
                                   no ? "false" : "true")
                      .ok());
    } else {
      ASSERT_TRUE(SetScheduleParam(back, kv[0], kv[1]).ok()) << f;
    }
  }
  EXPECT_EQ(ScheduleParamValues(back), ScheduleParamValues(spec));
  ScheduleSpec cos;
  cos.kind = ScheduleKind::kCosine;
  cos.base_lr = 1.0 / 3.0;  // the 16 digits that read back
  cos.t_max = 90;
  EXPECT_EQ(ScheduleFlags(cos),
            "--kind cosine --base-lr 0.3333333333333333 --t-max 90");
}

}  // namespace
}  // namespace lrtune
