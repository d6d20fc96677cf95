#include "core/schedule.h"

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "core/schedule_params.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace lrtune {
namespace {

using nlohmann::json;

// Relative error bound of the parity tests. PyTorch computes most schedules
// recursively (products of factors); lrtune uses closed forms, which agree
// with the recursion to this bound at every step of every golden case.
constexpr double kRelTol = 1e-9;

bool Close(double want, double got) {
  return std::abs(want - got) <= kRelTol * std::abs(want);
}

ScheduleSpec SpecFromParams(const json& params) {
  ScheduleSpec spec;
  if (params.value("kind", "") == "sequential") {
    ScheduleSpec then =
        SpecFromParams(json::parse(params.at("then").get<std::string>()));
    then.base_lr = std::stod(params.at("base_lr").get<std::string>());
    return ScheduleSpec::Warmup(
        std::stoll(params.at("warmup_steps").get<std::string>()),
        std::stod(params.at("warmup_start_factor").get<std::string>()), then);
  }
  for (const auto& [name, value] : params.items()) {
    absl::Status st = SetScheduleParam(spec, name, value.get<std::string>());
    EXPECT_TRUE(st.ok()) << name << ": " << st;
  }
  return spec;
}

json LoadGolden() {
  std::ifstream in(std::string(LRTUNE_SOURCE_DIR) +
                   "/tests/golden/schedules.json");
  EXPECT_TRUE(in.good()) << "missing tests/golden/schedules.json";
  std::stringstream buf;
  buf << in.rdbuf();
  return json::parse(buf.str());
}

TEST(ScheduleParityTest, MatchesPyTorchAtEveryStep) {
  const json golden = LoadGolden();
  ASSERT_GE(golden.at("cases").size(), 40u);
  int compared = 0;
  for (const json& c : golden.at("cases")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    absl::StatusOr<Schedule> s = Schedule::Create(SpecFromParams(c["params"]));
    ASSERT_TRUE(s.ok()) << s.status();
    const int64_t steps = c.at("steps").get<int64_t>();
    absl::StatusOr<std::vector<SchedulePoint>> pts = s->Sample(steps);
    ASSERT_TRUE(pts.ok()) << pts.status();
    const auto& lr = c.at("lr");
    for (int64_t t = 0; t < steps; ++t) {
      const double want = lr[t].get<double>();
      ASSERT_TRUE(Close(want, (*pts)[t].lr))
          << "lr at step " << t << ": torch " << want << ", lrtune "
          << (*pts)[t].lr;
      ++compared;
    }
    if (c.at("momentum").is_null()) {
      EXPECT_FALSE(s->has_momentum());
      continue;
    }
    ASSERT_TRUE(s->has_momentum());
    for (int64_t t = 0; t < steps; ++t) {
      const double want = c["momentum"][t].get<double>();
      ASSERT_TRUE((*pts)[t].momentum.has_value());
      ASSERT_TRUE(Close(want, *(*pts)[t].momentum))
          << "momentum at step " << t << ": torch " << want << ", lrtune "
          << *(*pts)[t].momentum;
      ++compared;
    }
  }
  EXPECT_GT(compared, 3000);
}

TEST(ScheduleParityTest, GoldenCoversEveryPyTorchDefinedKind) {
  const json golden = LoadGolden();
  std::set<std::string> kinds;
  for (const json& c : golden.at("cases")) {
    kinds.insert(c["params"]["kind"].get<std::string>());
  }
  for (const char* k :
       {"constant", "step", "multistep", "exponential", "linear", "polynomial",
        "cosine", "sgdr", "triangular", "triangular2", "exp_range", "one_cycle",
        "sequential", "rex", "wsd", "fractal", "profile"}) {
    EXPECT_TRUE(kinds.count(k)) << "no golden case for " << k;
  }
}

Schedule MustCreate(const ScheduleSpec& spec) {
  absl::StatusOr<Schedule> s = Schedule::Create(spec);
  EXPECT_TRUE(s.ok()) << s.status();
  return *std::move(s);
}

TEST(ScheduleTest, RampReachesBothEnds) {
  Schedule exp = MustCreate(ScheduleSpec::Ramp(1e-7, 10, 100, RampShape::kExp));
  EXPECT_DOUBLE_EQ(exp.Lr(0), 1e-7);
  EXPECT_NEAR(exp.Lr(99), 10, 1e-12);
  EXPECT_NEAR(exp.Lr(33) / exp.Lr(32), exp.Lr(66) / exp.Lr(65), 1e-12);
  Schedule lin =
      MustCreate(ScheduleSpec::Ramp(0.001, 1, 11, RampShape::kLinear));
  EXPECT_NEAR(lin.Lr(10), 1.0, 1e-15);
  EXPECT_NEAR(lin.Lr(5) - lin.Lr(4), lin.Lr(1) - lin.Lr(0), 1e-15);
  EXPECT_FALSE(exp.has_momentum());
  EXPECT_EQ(exp.length(), 100);
}

TEST(ScheduleTest, RexFollowsThePaperProfile) {
  ScheduleSpec spec;
  spec.kind = ScheduleKind::kRex;
  spec.base_lr = 1.0;
  spec.total_steps = 100;
  Schedule rex = MustCreate(spec);
  EXPECT_DOUBLE_EQ(rex.Lr(0), 1.0);
  // z = 0.5, beta = 0.5: 0.5 / (0.5 + 0.25) = 2/3.
  EXPECT_NEAR(rex.Lr(50), 2.0 / 3.0, 1e-15);
  spec.rex_beta = 0.9;
  spec.eta_min = 0.1;
  Schedule rex9 = MustCreate(spec);
  EXPECT_NEAR(rex9.Lr(50), 0.1 + 0.9 * 0.5 / (0.1 + 0.45), 1e-15);
  for (int64_t t = 1; t < 100; ++t) EXPECT_LT(rex9.Lr(t), rex9.Lr(t - 1));
}

TEST(ScheduleTest, SampleEveryHoldsTheProfileBetweenSamples) {
  ScheduleSpec spec;
  spec.kind = ScheduleKind::kExponential;
  spec.gamma = 0.9;
  spec.base_lr = 1.0;
  spec.sample_every = 10;
  Schedule s = MustCreate(spec);
  EXPECT_DOUBLE_EQ(s.Lr(9), 1.0);
  EXPECT_DOUBLE_EQ(s.Lr(10), std::pow(0.9, 10));
  EXPECT_DOUBLE_EQ(s.Lr(19), std::pow(0.9, 10));
  EXPECT_DOUBLE_EQ(s.Lr(20), std::pow(0.9, 20));
}

TEST(ScheduleTest, SequentialConcatenatesAndRestartsChildren) {
  ScheduleSpec cos;
  cos.kind = ScheduleKind::kCosine;
  cos.t_max = 10;
  cos.base_lr = 0.2;
  Schedule s = MustCreate(ScheduleSpec::Warmup(4, 0.5, cos));
  EXPECT_DOUBLE_EQ(s.Lr(0), 0.1);
  EXPECT_DOUBLE_EQ(s.Lr(4), 0.2);     // cosine's step 0
  EXPECT_NEAR(s.Lr(14), 0.0, 1e-15);  // cosine's step 10
}

TEST(ScheduleTest, OneCycleRejectsStepsBeyondItsLength) {
  Schedule s = MustCreate(ScheduleSpec::OneCycle(0.1, 50));
  EXPECT_TRUE(s.Sample(50).ok());
  absl::StatusOr<std::vector<SchedulePoint>> over = s.Sample(51);
  ASSERT_FALSE(over.ok());
  EXPECT_NE(over.status().message().find("beyond the schedule's length"),
            std::string::npos)
      << over.status();
  EXPECT_FALSE(s.Sample(-1).ok());
}

TEST(ScheduleTest, AnUnboundedGrowingLrIsCheckedOverTheStepsAsked) {
  ScheduleSpec spec;
  spec.kind = ScheduleKind::kExponential;
  spec.gamma = 10;
  Schedule s = MustCreate(spec);  // unbounded: no horizon to check yet
  EXPECT_TRUE(s.CheckFinite(300).ok());
  EXPECT_TRUE(s.Sample(300).ok());
  absl::StatusOr<std::vector<SchedulePoint>> over = s.Sample(400);
  ASSERT_FALSE(over.ok());
  EXPECT_NE(over.status().message().find("not finite from step 309"),
            std::string::npos)
      << over.status();
  spec.gamma = 0.5;  // a shrinking LR never overflows
  EXPECT_TRUE(MustCreate(spec).CheckFinite(int64_t{1} << 40).ok());
}

TEST(ScheduleTest, SequentialChecksEachChildOverItsSpan) {
  ScheduleSpec grow;
  grow.kind = ScheduleKind::kStep;
  grow.step_size = 1;
  grow.gamma = 10;
  ScheduleSpec seq;
  seq.kind = ScheduleKind::kSequential;
  seq.children = {grow, ScheduleSpec{}};
  seq.boundaries = {100};  // 1e99 at step 99: finite
  Schedule s = MustCreate(seq);
  EXPECT_TRUE(s.CheckFinite(1000).ok());
  seq.children = {ScheduleSpec{}, grow};
  absl::Status st = MustCreate(seq).CheckFinite(1000);
  EXPECT_NE(st.message().find("children[1]: step: the lr is not finite"),
            std::string::npos)
      << st;
}

// The fractal order of period 4 is 1 4 2 3: the largest step (the first
// Chebyshev node) first, then the smallest, then the rest; and it repeats.
TEST(FractalScheduleTest, TakesTheNodesInTheFractalOrder) {
  ScheduleSpec spec;
  spec.kind = ScheduleKind::kFractal;
  spec.base_lr = 0.01;
  spec.fractal_period = 4;
  spec.fractal_kappa = 100;
  Schedule s = MustCreate(spec);
  EXPECT_GT(s.Lr(0), s.Lr(2));
  EXPECT_GT(s.Lr(2), s.Lr(3));
  EXPECT_GT(s.Lr(3), s.Lr(1));
  EXPECT_GT(s.Lr(1), 0.01);        // every step is above the stable LR
  EXPECT_LT(s.Lr(0), 0.01 * 100);  // and below kappa times it
  for (int64_t t = 0; t < 4; ++t) EXPECT_DOUBLE_EQ(s.Lr(t + 4), s.Lr(t));
  spec.fractal_kappa = 1;  // no spread of curvature: a constant base_lr
  EXPECT_DOUBLE_EQ(MustCreate(spec).Lr(3), 0.01);
}

ScheduleSpec Profile(ProfileShape shape, ProfileMode mode, int64_t t0,
                     int64_t t_mult = 1) {
  ScheduleSpec spec;
  spec.kind = ScheduleKind::kProfile;
  spec.profile = shape;
  spec.profile_mode = mode;
  spec.t0 = t0;
  spec.t_mult = t_mult;
  spec.base_lr = 0.2;
  spec.eta_min = 0.004;
  return spec;
}

// The profile kind's cosine decay restarted with t_mult is SGDR, its
// linear cyclic variant is CyclicLR's triangle, its rex decay over one
// period is the rex kind, and its linear growth is LinearLR: one shape
// table, the named kinds its special cases.
TEST(ProfileScheduleTest, ItsSpecialCasesAreTheNamedKinds) {
  ScheduleSpec sgdr;
  sgdr.kind = ScheduleKind::kSgdr;
  sgdr.base_lr = 0.2;
  sgdr.eta_min = 0.004;
  sgdr.t0 = 7;
  sgdr.t_mult = 2;
  Schedule a = MustCreate(sgdr);
  Schedule b =
      MustCreate(Profile(ProfileShape::kCosine, ProfileMode::kDecay, 7, 2));
  for (int64_t t = 0; t < 300; ++t) ASSERT_NEAR(a.Lr(t), b.Lr(t), 1e-15) << t;

  ScheduleSpec tri;
  tri.kind = ScheduleKind::kTriangular;
  tri.base_lr = 0.004;
  tri.max_lr = 0.2;
  tri.step_size_up = 9;
  tri.cycle_momentum = false;
  a = MustCreate(tri);
  b = MustCreate(Profile(ProfileShape::kLinear, ProfileMode::kCyclic, 9));
  for (int64_t t = 0; t < 100; ++t) ASSERT_NEAR(a.Lr(t), b.Lr(t), 1e-15) << t;

  ScheduleSpec rex;
  rex.kind = ScheduleKind::kRex;
  rex.base_lr = 0.2;
  rex.eta_min = 0.004;
  rex.total_steps = 40;
  rex.rex_beta = 0.9;
  ScheduleSpec rex_profile =
      Profile(ProfileShape::kRex, ProfileMode::kDecay, 40);
  rex_profile.rex_beta = 0.9;
  a = MustCreate(rex);
  b = MustCreate(rex_profile);
  for (int64_t t = 0; t < 40; ++t) ASSERT_DOUBLE_EQ(a.Lr(t), b.Lr(t)) << t;

  ScheduleSpec linear;
  linear.kind = ScheduleKind::kLinear;
  linear.base_lr = 0.2;
  linear.start_factor = 0.02;  // 0.004 / 0.2
  linear.total_iters = 12;
  a = MustCreate(linear);
  b = MustCreate(Profile(ProfileShape::kLinear, ProfileMode::kGrowth, 12));
  for (int64_t t = 0; t < 12; ++t) ASSERT_NEAR(a.Lr(t), b.Lr(t), 1e-15) << t;
}

// Every shape runs from eta_min to base_lr: a growth starts at the floor
// and rises monotonically, its decay is the same values played backwards.
TEST(ProfileScheduleTest, GrowthIsTheDecayPlayedBackwards) {
  for (ProfileShape shape : {ProfileShape::kLinear, ProfileShape::kCosine,
                             ProfileShape::kExp, ProfileShape::kRex}) {
    SCOPED_TRACE(static_cast<int>(shape));
    Schedule up = MustCreate(Profile(shape, ProfileMode::kGrowth, 20));
    Schedule down = MustCreate(Profile(shape, ProfileMode::kDecay, 20));
    EXPECT_NEAR(up.Lr(0), 0.004, 1e-15);
    EXPECT_DOUBLE_EQ(down.Lr(0), 0.2);
    for (int64_t t = 1; t < 20; ++t) {
      EXPECT_GT(up.Lr(t), up.Lr(t - 1));
      EXPECT_NEAR(up.Lr(t), down.Lr(20 - t), 1e-15);
    }
    EXPECT_NEAR(up.Lr(20), 0.004, 1e-15);  // the next period starts over
  }
}

// A shaped warm-up starts at warmup_start_factor x base_lr and reaches
// base_lr when the schedule after it begins.
TEST(ProfileScheduleTest, AShapedWarmupRisesToTheScheduleAfterIt) {
  ScheduleSpec cos;
  cos.kind = ScheduleKind::kCosine;
  cos.t_max = 30;
  cos.base_lr = 0.3;
  cos.warmup_steps = 10;
  cos.warmup_start_factor = 0.1;
  cos.warmup_shape = ProfileShape::kExp;
  Schedule s = MustCreate(cos);
  EXPECT_NEAR(s.Lr(0), 0.03, 1e-15);
  EXPECT_DOUBLE_EQ(s.Lr(10), 0.3);
  EXPECT_EQ(s.length(), 0);
  // The exp growth is slow, then fast: below the line half-way.
  EXPECT_LT(s.Lr(5), 0.03 + 0.27 * 0.5);
}

TEST(ProfileScheduleTest, KindNamesListIt) {
  EXPECT_NE(ScheduleKindNames("|").find("|profile"), std::string::npos);
  EXPECT_TRUE(ParseScheduleKind("profile").ok());
}

struct BadSpecCase {
  const char* name;
  std::vector<std::pair<const char*, const char*>> params;
  const char* expected_fragment;
};

class BadSpecTest : public ::testing::TestWithParam<BadSpecCase> {};

TEST_P(BadSpecTest, NamesTheParameterAndTheRule) {
  ScheduleSpec spec;
  for (const auto& [k, v] : GetParam().params) {
    ASSERT_TRUE(SetScheduleParam(spec, k, v).ok()) << k;
  }
  absl::StatusOr<Schedule> s = Schedule::Create(spec);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find(GetParam().expected_fragment),
            std::string::npos)
      << s.status();
}

INSTANTIATE_TEST_SUITE_P(
    Rules, BadSpecTest,
    ::testing::Values(
        BadSpecCase{
            "max_below_base",
            {{"kind", "triangular"}, {"base_lr", "0.1"}, {"max_lr", "0.01"}},
            "max_lr (0.01) must be >= base_lr (0.1)"},
        BadSpecCase{"t0_zero",
                    {{"kind", "sgdr"}, {"t0", "0"}},
                    "t0 must be >= 1, got 0"},
        BadSpecCase{"pct_start_high",
                    {{"kind", "one_cycle"},
                     {"max_lr", "0.1"},
                     {"total_steps", "100"},
                     {"pct_start", "1.5"}},
                    "pct_start must be in (0, 1), got 1.5"},
        BadSpecCase{"nan_base",
                    {{"kind", "constant"}, {"base_lr", "nan"}},
                    "base_lr must be a finite number"},
        BadSpecCase{
            "inf_max",
            {{"kind", "one_cycle"}, {"max_lr", "inf"}, {"total_steps", "10"}},
            "max_lr must be a finite number"},
        BadSpecCase{"negative_lr",
                    {{"kind", "constant"}, {"base_lr", "-1"}},
                    "base_lr must be > 0, got -1"},
        BadSpecCase{"step_size_zero",
                    {{"kind", "step"}, {"step_size", "0"}},
                    "step_size must be >= 1"},
        BadSpecCase{"no_milestones",
                    {{"kind", "multistep"}},
                    "milestones must not be empty"},
        BadSpecCase{"negative_milestone",
                    {{"kind", "multistep"}, {"milestones", "-3,5"}},
                    "milestones must be >= 0"},
        // Found by fuzz_schedule: PyTorch lets gamma > 1 grow the LR, and a
        // large one passes the largest double at the last milestone.
        BadSpecCase{"multistep_overflow",
                    {{"kind", "multistep"},
                     {"base_lr", "1"},
                     {"milestones", "1,31,3,0"},
                     {"gamma", "1e100"}},
                    "multistep: the lr is not finite from step 31"},
        BadSpecCase{
            "bounded_exponential_overflow",
            {{"kind", "exponential"}, {"gamma", "10"}, {"total_steps", "400"}},
            "exponential: the lr is not finite from step 309"},
        BadSpecCase{"exponential_no_gamma",
                    {{"kind", "exponential"}},
                    "gamma is required"},
        BadSpecCase{"linear_factor",
                    {{"kind", "linear"}, {"start_factor", "0"}},
                    "start_factor must be in (0, 1]"},
        BadSpecCase{"cosine_eta_min",
                    {{"kind", "cosine"}, {"t_max", "10"}, {"eta_min", "1"}},
                    "eta_min must be in [0, base_lr"},
        BadSpecCase{"one_cycle_zero_phase",
                    {{"kind", "one_cycle"},
                     {"max_lr", "0.1"},
                     {"total_steps", "3"},
                     {"pct_start", "0.3"}},
                    "phase of zero length"},
        BadSpecCase{"momentum_order",
                    {{"kind", "triangular"},
                     {"max_lr", "1"},
                     {"base_momentum", "0.95"},
                     {"max_momentum", "0.9"}},
                    "base_momentum <= max_momentum"},
        BadSpecCase{"rex_beta",
                    {{"kind", "rex"}, {"total_steps", "10"}, {"rex_beta", "1"}},
                    "rex_beta must be in [0, 1)"},
        BadSpecCase{
            "wsd_no_length", {{"kind", "wsd"}}, "total_steps must be >= 1"},
        BadSpecCase{"wsd_fraction",
                    {{"kind", "wsd"},
                     {"total_steps", "10"},
                     {"cooldown_fraction", "1.5"}},
                    "cooldown_fraction must be in [0, 1]"},
        BadSpecCase{
            "wsd_cooldown_steps",
            {{"kind", "wsd"}, {"total_steps", "10"}, {"cooldown_steps", "11"}},
            "cooldown_steps (11) must be <= total_steps (10)"},
        BadSpecCase{"fractal_period",
                    {{"kind", "fractal"}, {"fractal_period", "6"}},
                    "fractal_period must be a power of 2"},
        BadSpecCase{"fractal_kappa",
                    {{"kind", "fractal"}, {"fractal_kappa", "0.5"}},
                    "fractal_kappa must be in [1, 1e6]"},
        BadSpecCase{"ramp_order",
                    {{"kind", "ramp"},
                     {"base_lr", "1"},
                     {"max_lr", "0.1"},
                     {"total_steps", "10"}},
                    "must be > the start lr"},
        BadSpecCase{
            "profile_t0", {{"kind", "profile"}}, "t0 must be >= 1, got 0"},
        BadSpecCase{"profile_t0_huge",
                    {{"kind", "profile"}, {"t0", "2000000000000"}},
                    "profile: t0 must be <= 1099511627776"},
        BadSpecCase{"profile_rex_beta",
                    {{"kind", "profile"},
                     {"t0", "10"},
                     {"profile", "rex"},
                     {"rex_beta", "1"}},
                    "profile: rex_beta must be in [0, 1)"},
        BadSpecCase{"profile_floor",
                    {{"kind", "profile"}, {"t0", "10"}, {"eta_min", "0.5"}},
                    "profile: eta_min must be in [0, base_lr"},
        BadSpecCase{"sample_every",
                    {{"kind", "constant"}, {"sample_every", "0"}},
                    "sample_every must be >= 1"}),
    [](const ::testing::TestParamInfo<BadSpecCase>& info) {
      return std::string(info.param.name);
    });

}  // namespace
}  // namespace lrtune
