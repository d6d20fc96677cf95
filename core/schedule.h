// Learning-rate (and momentum) schedules with PyTorch's semantics.
//
// A ScheduleSpec is a plain value (what a flag, a proto or a JSON file holds);
// Schedule::Create validates it and returns an immutable schedule that gives
// the values in force for any step t, i.e. what a PyTorch optimizer holds
// after t calls of `scheduler.step()`:
//
//   ScheduleSpec spec = ScheduleSpec::OneCycle(/*max_lr=*/0.1, /*total=*/1000);
//   LRTUNE_ASSIGN_OR_RETURN(Schedule s, Schedule::Create(spec));
//   double lr = s.Lr(t);  std::optional<double> m = s.Momentum(t);
//
// The exact formulas are in docs/schedules.md; tests/golden holds PyTorch's
// values, compared at every step with relative error <= 1e-9.
//
// Thread-safety: a Schedule is immutable after Create; every const method may
// be called from any number of threads.
#ifndef LRTUNE_CORE_SCHEDULE_H_
#define LRTUNE_CORE_SCHEDULE_H_

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/field_names.h"
#include "core/schedule_shapes.h"

namespace lrtune {

enum class ScheduleKind {
  kConstant,     // ConstantLR(factor=1): base_lr forever.
  kStep,         // StepLR(step_size, gamma).
  kMultiStep,    // MultiStepLR(milestones, gamma).
  kExponential,  // ExponentialLR(gamma).
  kLinear,       // LinearLR(start_factor, end_factor, total_iters).
  kPolynomial,   // PolynomialLR(total_iters, power).
  kCosine,       // CosineAnnealingLR(t_max, eta_min).
  kSgdr,         // CosineAnnealingWarmRestarts(t0, t_mult, eta_min).
  kTriangular,   // CyclicLR(mode="triangular").
  kTriangular2,  // CyclicLR(mode="triangular2").
  kExpRange,     // CyclicLR(mode="exp_range", gamma).
  kOneCycle,     // OneCycleLR.
  kRex,          // REX (Chen et al. 2022); not in PyTorch.
  kRamp,         // The range test's ramp from base_lr to max_lr.
  kSequential,   // SequentialLR(children, boundaries); warmup is one case.
  kWsd,          // Warmup-stable-decay (Hägele et al. 2024); HF's WSD.
  kFractal,      // Fractal Chebyshev steps (Agarwal et al. 2021); experimental.
  kProfile,      // A decay or growth shape per period; cyclic, restarts.
};

enum class Anneal { kCos, kLinear };
// WSD's cooldown shape f(p), p the cooldown's progress in [0, 1).
enum class Cooldown {
  kLinear,
  kCosine,
  kOneMinusSqrt
};  // "linear",
    // "cosine", "1-sqrt"
enum class RampShape { kExp, kLinear };

// Returns the canonical lower-case name ("one_cycle", "exp_range", ...).
absl::string_view ScheduleKindName(ScheduleKind kind);
// Parses a canonical name (also accepts "onecycle", "1cycle", "cyclic",
// "warmup" is not a kind: see ScheduleSpec::Warmup). Error names the value
// and lists the valid kinds.
absl::StatusOr<ScheduleKind> ParseScheduleKind(absl::string_view name);
// Every canonical kind name, in the enum's order, joined by `separator`:
// "constant|step|...|profile" for --help.
std::string ScheduleKindNames(absl::string_view separator);

// Every parameter any kind uses, with PyTorch's names and defaults. A field a
// kind does not use is ignored. NaN in an optional double means "unset": the
// kind's own default applies (e.g. gamma is 0.1 for step, 1.0 for exp_range).
struct ScheduleSpec {
  static constexpr double kUnset = std::numeric_limits<double>::quiet_NaN();

  ScheduleKind kind = ScheduleKind::kConstant;

  // The optimizer's initial LR for decaying kinds; the lower bound of cyclic
  // kinds; the ramp's start.
  double base_lr = 0.1;
  // Upper bound of cyclic kinds; one_cycle's peak; the ramp's end.
  double max_lr = kUnset;
  // Length in steps: required for one_cycle, rex and ramp (the schedule
  // rejects more steps); 0 elsewhere means unbounded.
  int64_t total_steps = 0;

  // step, multistep, exponential, exp_range. Unset: 0.1 (step, multistep),
  // required (exponential), 1.0 (exp_range).
  double gamma = kUnset;
  int64_t step_size = 0;            // step: decay every step_size steps (>= 1).
  std::vector<int64_t> milestones;  // multistep: non-decreasing, >= 0.

  // linear (LinearLR) and polynomial.
  double start_factor = 1.0 / 3.0;  // in (0, 1]
  double end_factor = 1.0;          // in [0, 1]
  int64_t total_iters = 5;          // >= 1 (linear), >= 1 (polynomial)
  double power = 1.0;               // polynomial, > 0

  // cosine, sgdr, rex: the floor.
  double eta_min = 0.0;
  int64_t t_max = 0;   // cosine: half period, >= 1
  int64_t t0 = 0;      // sgdr: first period, >= 1
  int64_t t_mult = 1;  // sgdr: period multiplier, >= 1

  // triangular, triangular2, exp_range.
  int64_t step_size_up = 2000;
  int64_t step_size_down = 0;  // 0: equal to step_size_up

  // Momentum cycling (cyclic and one_cycle). Unset: 0.8/0.9 (cyclic),
  // 0.85/0.95 (one_cycle). For Adam-style optimizers momentum means beta1.
  bool cycle_momentum = true;
  double base_momentum = kUnset;
  double max_momentum = kUnset;

  // one_cycle.
  double pct_start = 0.3;
  Anneal anneal = Anneal::kCos;
  double div_factor = 25.0;
  double final_div_factor = 1e4;
  bool three_phase = false;

  // rex: profile z / ((1 - beta) + beta z), z = 1 - t/total_steps.
  double rex_beta = 0.5;

  // wsd over total_steps: base_lr while stable, then eta_min + (base_lr -
  // eta_min) f(p) over the last cooldown steps (p = steps into the cooldown
  // / its length), as transformers' get_wsd_schedule after its warm-up. The
  // cooldown is cooldown_steps long, or when that is 0 round(
  // cooldown_fraction x total_steps). Its warm-up is the one every kind
  // takes (Warmup below: LinearLR, then wsd counting from 0).
  int64_t cooldown_steps = 0;      // >= 0, <= total_steps; 0: the fraction
  double cooldown_fraction = 0.2;  // in [0, 1]
  Cooldown cooldown = Cooldown::kOneMinusSqrt;  // Hägele et al.'s best

  // fractal (experimental; docs/schedules.md): base_lr / g_{sigma(t mod n)},
  // g_i = (1 + 1/kappa)/2 - (1 - 1/kappa)/2 cos((2i - 1) pi / 2n), the
  // Chebyshev nodes on [1/kappa, 1] in the fractal order sigma of period n.
  // base_lr is the largest stable LR (1/L); steps reach kappa x base_lr.
  int64_t fractal_period = 8;  // n, a power of 2 in [1, 2^20]
  double fractal_kappa = 10;   // the condition number, in [1, 1e6]

  // profile: eta_min + (base_lr - eta_min) x shape, over periods of t0,
  // t0 t_mult, t0 t_mult^2, ... steps (core/schedule_shapes.h): decay f(z)
  // or growth g(z) = f(1 - z) with z = t_cur / period, or, cyclic, a
  // growth half-cycle then a decay half-cycle of period steps each. t0 and
  // t_mult are sgdr's fields; rex_beta is read by the rex shape.
  ProfileShape profile = ProfileShape::kLinear;
  ProfileMode profile_mode = ProfileMode::kDecay;

  // ramp shape (exp: base * (max/base)^(t/(N-1)); linear).
  RampShape ramp = RampShape::kExp;

  // Warm-up before any kind: from warmup_start_factor x base_lr to base_lr
  // over warmup_steps, then this schedule counting its own steps from 0
  // (what Warmup below builds; Create builds it when warmup_steps > 0). Its
  // shape is LinearLR's line, or another profile's growth (exp, cosine,
  // rex). 0: none.
  int64_t warmup_steps = 0;          // >= 0
  double warmup_start_factor = 0.1;  // in (0, 1]
  ProfileShape warmup_shape = ProfileShape::kLinear;

  // Profile x sampling rate: hold the value of step floor(t/k)*k. 1 = every
  // step. Applies to every kind but sequential (set it on the children).
  int64_t sample_every = 1;

  // sequential: child i starts at boundaries[i-1] and counts its own steps
  // from 0; boundaries.size() == children.size() - 1, strictly increasing.
  std::vector<ScheduleSpec> children;
  std::vector<int64_t> boundaries;

  // Convenience constructors for the common cases.
  static ScheduleSpec OneCycle(double max_lr, int64_t total_steps);
  static ScheduleSpec Ramp(double start_lr, double end_lr, int64_t steps,
                           RampShape shape);
  // A warm-up from start_factor*base to base over `warmup_steps`, then
  // `after` (whose own step counter starts at 0 when the warmup ends): a
  // LinearLR for the linear shape (PyTorch's warm-up), else a growth
  // profile of that shape from start_factor*base.
  static ScheduleSpec Warmup(int64_t warmup_steps, double start_factor,
                             ScheduleSpec after,
                             ProfileShape shape = ProfileShape::kLinear);
};

// The values in force during one step.
struct SchedulePoint {
  int64_t step = 0;
  double lr = 0.0;
  std::optional<double> momentum;  // empty where the kind defines none
};

class Schedule {
 public:
  // Validates `spec` and builds the schedule. Returns InvalidArgument naming
  // the parameter and the rule ("max_lr (0.01) must be >= base_lr (0.1)",
  // "t0 must be >= 1, got 0", "pct_start must be in (0, 1), got 1.5", any
  // NaN or Inf).
  static absl::StatusOr<Schedule> Create(const ScheduleSpec& spec);
  // The same, with each parameter named in errors by `names` (field_names.h):
  // a flag for the CLI ("--total-steps"), a field path for an RPC
  // ("train.schedule.total_steps"). A sequential's child i is named under
  // "children[i].".
  static absl::StatusOr<Schedule> Create(const ScheduleSpec& spec,
                                         const FieldNamer& names);

  // LR in force for step t >= 0. For a bounded schedule, t must be below
  // length() (checked by Sample; Lr itself extrapolates the formula).
  double Lr(int64_t t) const;
  // Momentum (beta1 for Adam-style optimizers) for step t, or empty where the
  // kind does not cycle momentum.
  std::optional<double> Momentum(int64_t t) const;
  // Whether Momentum() returns values.
  bool has_momentum() const;

  // Number of steps the schedule was built for; 0 when unbounded.
  int64_t length() const { return length_; }
  const ScheduleSpec& spec() const { return spec_; }

  // Values for steps 0..steps-1. InvalidArgument if steps < 0, the
  // schedule is bounded and steps > length(), or an LR in range overflows.
  absl::StatusOr<std::vector<SchedulePoint>> Sample(int64_t steps) const;

  // OK when the LR is finite at every step in [0, steps); otherwise
  // InvalidArgument naming the first step where it is not. A gamma > 1
  // (step, multistep, exponential) grows the LR geometrically, as PyTorch
  // lets it, and a large one passes the largest double within a few
  // hundred steps. Create runs this over length() for a bounded schedule
  // (and over the milestones for multistep); a caller that runs an
  // unbounded one for a budget runs it over that budget.
  absl::Status CheckFinite(int64_t steps) const;

 private:
  explicit Schedule(ScheduleSpec spec);

  double ProfileLr(int64_t t) const;
  std::optional<double> ProfileMomentum(int64_t t) const;
  // Sequential: index of the child in force at t and t relative to it.
  std::pair<size_t, int64_t> Locate(int64_t t) const;

  ScheduleSpec spec_;  // with defaults resolved
  int64_t length_ = 0;
  std::vector<Schedule> children_;
};

}  // namespace lrtune

#endif  // LRTUNE_CORE_SCHEDULE_H_
