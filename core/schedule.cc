// Schedules as PyTorch computes them (core/schedule.h). At ~780 lines, over
// the house's ~600: one switch per concern (validation, LR, momentum) over
// the eighteen kinds, which splitting by kind would scatter; the shapes
// several kinds share are in schedule_shapes.cc.
#include "core/schedule.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"

namespace lrtune {
namespace {

constexpr double kPi = 3.14159265358979323846;
// A profile's half-cycle, in steps: a cyclic period (two of them) stays far
// from the largest int64.
constexpr int64_t kMaxProfilePeriod = int64_t{1} << 40;

struct KindName {
  ScheduleKind kind;
  absl::string_view name;
};
constexpr KindName kKindNames[] = {
    {ScheduleKind::kConstant, "constant"},
    {ScheduleKind::kStep, "step"},
    {ScheduleKind::kMultiStep, "multistep"},
    {ScheduleKind::kExponential, "exponential"},
    {ScheduleKind::kLinear, "linear"},
    {ScheduleKind::kPolynomial, "polynomial"},
    {ScheduleKind::kCosine, "cosine"},
    {ScheduleKind::kSgdr, "sgdr"},
    {ScheduleKind::kTriangular, "triangular"},
    {ScheduleKind::kTriangular2, "triangular2"},
    {ScheduleKind::kExpRange, "exp_range"},
    {ScheduleKind::kOneCycle, "one_cycle"},
    {ScheduleKind::kRex, "rex"},
    {ScheduleKind::kRamp, "ramp"},
    {ScheduleKind::kSequential, "sequential"},
    {ScheduleKind::kWsd, "wsd"},
    {ScheduleKind::kFractal, "fractal"},
    {ScheduleKind::kProfile, "profile"},
};

bool IsCyclic(ScheduleKind k) {
  return k == ScheduleKind::kTriangular || k == ScheduleKind::kTriangular2 ||
         k == ScheduleKind::kExpRange;
}

absl::Status Invalid(absl::string_view msg) {
  return absl::InvalidArgumentError(msg);
}

absl::Status RequireFinite(const FieldNamer& n, absl::string_view name,
                           double v) {
  if (!std::isfinite(v)) {
    return Invalid(
        absl::StrFormat("%s must be a finite number, got %g", n(name), v));
  }
  return absl::OkStatus();
}

absl::Status RequirePositive(const FieldNamer& n, absl::string_view name,
                             double v) {
  LRTUNE_RETURN_IF_ERROR(RequireFinite(n, name, v));
  if (v <= 0) {
    return Invalid(absl::StrFormat("%s must be > 0, got %g", n(name), v));
  }
  return absl::OkStatus();
}

absl::Status RequireAtLeast(const FieldNamer& n, absl::string_view name,
                            int64_t v, int64_t min) {
  if (v < min) {
    return Invalid(
        absl::StrFormat("%s must be >= %d, got %d", n(name), min, v));
  }
  return absl::OkStatus();
}

absl::Status RequireFloor(const FieldNamer& n, absl::string_view kind,
                          const ScheduleSpec& s) {
  LRTUNE_RETURN_IF_ERROR(RequireFinite(n, "eta_min", s.eta_min));
  if (s.eta_min < 0 || s.eta_min > s.base_lr) {
    return Invalid(absl::StrFormat("%s: %s must be in [0, %s (%g)], got %g",
                                   kind, n("eta_min"), n("base_lr"), s.base_lr,
                                   s.eta_min));
  }
  return absl::OkStatus();
}

// Resolves the kind-dependent defaults of unset (NaN) fields.
void ResolveDefaults(ScheduleSpec& s) {
  if (std::isnan(s.gamma)) {
    if (s.kind == ScheduleKind::kStep || s.kind == ScheduleKind::kMultiStep) {
      s.gamma = 0.1;
    } else if (IsCyclic(s.kind)) {
      s.gamma = 1.0;  // CyclicLR's default; only exp_range reads it
    }
  }
  if (IsCyclic(s.kind)) {
    if (std::isnan(s.base_momentum)) s.base_momentum = 0.8;
    if (std::isnan(s.max_momentum)) s.max_momentum = 0.9;
    if (s.step_size_down <= 0) s.step_size_down = s.step_size_up;
  } else if (s.kind == ScheduleKind::kOneCycle) {
    if (std::isnan(s.base_momentum)) s.base_momentum = 0.85;
    if (std::isnan(s.max_momentum)) s.max_momentum = 0.95;
  }
  std::sort(s.milestones.begin(), s.milestones.end());
}

absl::Status ValidateMomentum(const FieldNamer& n, const ScheduleSpec& s) {
  if (!s.cycle_momentum) return absl::OkStatus();
  LRTUNE_RETURN_IF_ERROR(RequireFinite(n, "base_momentum", s.base_momentum));
  LRTUNE_RETURN_IF_ERROR(RequireFinite(n, "max_momentum", s.max_momentum));
  if (s.base_momentum < 0 || s.max_momentum >= 1 ||
      s.base_momentum > s.max_momentum) {
    const std::string base = n("base_momentum"), max = n("max_momentum");
    return Invalid(absl::StrFormat(
        "momentum range must satisfy 0 <= %s <= %s < 1, got %s %g, %s %g", base,
        max, base, s.base_momentum, max, s.max_momentum));
  }
  return absl::OkStatus();
}

// One-cycle phase boundaries exactly as PyTorch computes them (doubles).
struct Phase {
  double end_step;
  double start_lr, end_lr;
  double start_m, end_m;
};

std::vector<Phase> OneCyclePhases(const ScheduleSpec& s) {
  const double initial = s.max_lr / s.div_factor;
  const double min_lr = initial / s.final_div_factor;
  const double t = static_cast<double>(s.total_steps);
  const double up_end = s.pct_start * t - 1;
  if (s.three_phase) {
    return {{up_end, initial, s.max_lr, s.max_momentum, s.base_momentum},
            {2 * s.pct_start * t - 2, s.max_lr, initial, s.base_momentum,
             s.max_momentum},
            {t - 1, initial, min_lr, s.max_momentum, s.max_momentum}};
  }
  return {{up_end, initial, s.max_lr, s.max_momentum, s.base_momentum},
          {t - 1, s.max_lr, min_lr, s.base_momentum, s.max_momentum}};
}

// The phase in force at step t and how far into it (PyTorch's walk: the
// first phase whose end is >= t, else the last one, which extrapolates).
struct PhasePos {
  Phase phase;
  double pct;
};

PhasePos OneCyclePosition(const ScheduleSpec& s, int64_t t) {
  const double td = static_cast<double>(t);
  const std::vector<Phase> phases = OneCyclePhases(s);
  double start = 0;
  size_t i = 0;
  while (i + 1 < phases.size() && td > phases[i].end_step) {
    start = phases[i].end_step;
    ++i;
  }
  return {phases[i], (td - start) / (phases[i].end_step - start)};
}

// WSD's cooldown length and the step it starts at.
struct WsdCooldown {
  int64_t length;
  int64_t start;
};

WsdCooldown WsdCooldownOf(const ScheduleSpec& s) {
  const int64_t length =
      s.cooldown_steps > 0
          ? s.cooldown_steps
          : static_cast<int64_t>(std::llround(
                s.cooldown_fraction * static_cast<double>(s.total_steps)));
  return {length, s.total_steps - length};
}

// sigma_n(i), 1-based, of Agarwal et al.'s fractal order: sigma_1 = (1),
// sigma_2n = interleave(sigma_n, 2n + 1 - sigma_n). O(log n).
int64_t FractalIndex(int64_t n, int64_t i) {
  if (n == 1) return 1;
  const int64_t v = FractalIndex(n / 2, (i + 1) / 2);
  return i % 2 == 1 ? v : n + 1 - v;
}

double CooldownValue(Cooldown c, double p) {
  switch (c) {
    case Cooldown::kLinear:
      return DecayShape(ProfileShape::kLinear, p, 0.0);
    case Cooldown::kCosine:
      return DecayShape(ProfileShape::kCosine, p, 0.0);
    case Cooldown::kOneMinusSqrt:
      return 1.0 - std::sqrt(p);
  }
  return 1.0 - p;
}

absl::Status RequireRexBeta(const FieldNamer& n, absl::string_view kind,
                            double beta) {
  LRTUNE_RETURN_IF_ERROR(RequireFinite(n, "rex_beta", beta));
  if (beta < 0 || beta >= 1) {
    return Invalid(absl::StrFormat("%s: %s must be in [0, 1), got %g", kind,
                                   n("rex_beta"), beta));
  }
  return absl::OkStatus();
}

double AnnealValue(Anneal a, double start, double end, double pct) {
  if (a == Anneal::kCos) {
    const double cos_out = std::cos(kPi * pct) + 1;
    return end + (start - end) / 2.0 * cos_out;
  }
  return (end - start) * pct + start;
}

// CyclicLR's position inside the cycle: the scale in [0, 1] and the cycle.
struct CyclePos {
  double scale;
  double cycle;
};

CyclePos CyclicPosition(const ScheduleSpec& s, int64_t t) {
  const double total = static_cast<double>(s.step_size_up + s.step_size_down);
  const double ratio = static_cast<double>(s.step_size_up) / total;
  const double cycle = std::floor(1 + static_cast<double>(t) / total);
  const double x = 1. + static_cast<double>(t) / total - cycle;
  const double scale = x <= ratio ? x / ratio : (x - 1) / (ratio - 1);
  return {scale, cycle};
}

double CyclicAmplitude(const ScheduleSpec& s, int64_t t, double cycle) {
  switch (s.kind) {
    case ScheduleKind::kTriangular2:
      return 1 / std::pow(2.0, cycle - 1);
    case ScheduleKind::kExpRange:
      return std::pow(s.gamma, static_cast<double>(t));
    default:
      return 1.0;
  }
}

absl::Status ValidateKind(const ScheduleSpec& s, const FieldNamer& n) {
  const std::string kind(ScheduleKindName(s.kind));
  LRTUNE_RETURN_IF_ERROR(RequirePositive(n, "base_lr", s.base_lr));
  LRTUNE_RETURN_IF_ERROR(RequireAtLeast(n, "sample_every", s.sample_every, 1));
  LRTUNE_RETURN_IF_ERROR(RequireAtLeast(n, "total_steps", s.total_steps, 0));
  switch (s.kind) {
    case ScheduleKind::kConstant:
      return absl::OkStatus();
    case ScheduleKind::kStep:
      LRTUNE_RETURN_IF_ERROR(RequireAtLeast(n, "step_size", s.step_size, 1));
      return RequirePositive(n, "gamma", s.gamma);
    case ScheduleKind::kMultiStep:
      if (s.milestones.empty()) {
        return Invalid(
            absl::StrCat("multistep: ", n("milestones"), " must not be empty"));
      }
      if (s.milestones.front() < 0) {
        return Invalid(absl::StrFormat("multistep: %s must be >= 0, got %d",
                                       n("milestones"), s.milestones[0]));
      }
      return RequirePositive(n, "gamma", s.gamma);
    case ScheduleKind::kExponential:
      if (std::isnan(s.gamma)) {
        return Invalid(
            absl::StrCat("exponential: ", n("gamma"), " is required"));
      }
      return RequirePositive(n, "gamma", s.gamma);
    case ScheduleKind::kLinear:
      LRTUNE_RETURN_IF_ERROR(RequireFinite(n, "start_factor", s.start_factor));
      LRTUNE_RETURN_IF_ERROR(RequireFinite(n, "end_factor", s.end_factor));
      if (s.start_factor <= 0 || s.start_factor > 1) {
        return Invalid(absl::StrFormat("linear: %s must be in (0, 1], got %g",
                                       n("start_factor"), s.start_factor));
      }
      if (s.end_factor < 0 || s.end_factor > 1) {
        return Invalid(absl::StrFormat("linear: %s must be in [0, 1], got %g",
                                       n("end_factor"), s.end_factor));
      }
      return RequireAtLeast(n, "total_iters", s.total_iters, 1);
    case ScheduleKind::kPolynomial:
      LRTUNE_RETURN_IF_ERROR(
          RequireAtLeast(n, "total_iters", s.total_iters, 1));
      return RequirePositive(n, "power", s.power);
    case ScheduleKind::kCosine:
      LRTUNE_RETURN_IF_ERROR(RequireAtLeast(n, "t_max", s.t_max, 1));
      return RequireFloor(n, kind, s);
    case ScheduleKind::kSgdr:
      LRTUNE_RETURN_IF_ERROR(RequireAtLeast(n, "t0", s.t0, 1));
      LRTUNE_RETURN_IF_ERROR(RequireAtLeast(n, "t_mult", s.t_mult, 1));
      return RequireFloor(n, kind, s);
    case ScheduleKind::kTriangular:
    case ScheduleKind::kTriangular2:
    case ScheduleKind::kExpRange:
      LRTUNE_RETURN_IF_ERROR(RequirePositive(n, "max_lr", s.max_lr));
      if (s.max_lr < s.base_lr) {
        return Invalid(absl::StrFormat("%s: %s (%g) must be >= %s (%g)", kind,
                                       n("max_lr"), s.max_lr, n("base_lr"),
                                       s.base_lr));
      }
      LRTUNE_RETURN_IF_ERROR(
          RequireAtLeast(n, "step_size_up", s.step_size_up, 1));
      LRTUNE_RETURN_IF_ERROR(
          RequireAtLeast(n, "step_size_down", s.step_size_down, 1));
      LRTUNE_RETURN_IF_ERROR(RequirePositive(n, "gamma", s.gamma));
      if (s.gamma > 1) {
        return Invalid(absl::StrFormat(
            "exp_range: %s must be in (0, 1], got %g", n("gamma"), s.gamma));
      }
      return ValidateMomentum(n, s);
    case ScheduleKind::kOneCycle: {
      LRTUNE_RETURN_IF_ERROR(RequirePositive(n, "max_lr", s.max_lr));
      LRTUNE_RETURN_IF_ERROR(
          RequireAtLeast(n, "total_steps", s.total_steps, 1));
      LRTUNE_RETURN_IF_ERROR(RequireFinite(n, "pct_start", s.pct_start));
      if (s.pct_start <= 0 || s.pct_start >= 1) {
        return Invalid(
            absl::StrFormat("one_cycle: %s must be in (0, 1), got %g",
                            n("pct_start"), s.pct_start));
      }
      LRTUNE_RETURN_IF_ERROR(RequirePositive(n, "div_factor", s.div_factor));
      LRTUNE_RETURN_IF_ERROR(
          RequirePositive(n, "final_div_factor", s.final_div_factor));
      double prev = 0;
      for (const Phase& p : OneCyclePhases(s)) {
        if (p.end_step <= prev) {
          return Invalid(absl::StrFormat(
              "one_cycle: %s (%d) x %s (%g) leaves a phase of zero length; "
              "use more steps or another %s",
              n("total_steps"), s.total_steps, n("pct_start"), s.pct_start,
              n("pct_start")));
        }
        prev = p.end_step;
      }
      return ValidateMomentum(n, s);
    }
    case ScheduleKind::kRex:
      LRTUNE_RETURN_IF_ERROR(
          RequireAtLeast(n, "total_steps", s.total_steps, 1));
      LRTUNE_RETURN_IF_ERROR(RequireRexBeta(n, kind, s.rex_beta));
      return RequireFloor(n, kind, s);
    case ScheduleKind::kProfile:
      LRTUNE_RETURN_IF_ERROR(RequireAtLeast(n, "t0", s.t0, 1));
      if (s.t0 > kMaxProfilePeriod) {
        return Invalid(absl::StrFormat("profile: %s must be <= %d, got %d",
                                       n("t0"), kMaxProfilePeriod, s.t0));
      }
      LRTUNE_RETURN_IF_ERROR(RequireAtLeast(n, "t_mult", s.t_mult, 1));
      if (s.profile == ProfileShape::kRex) {
        LRTUNE_RETURN_IF_ERROR(RequireRexBeta(n, kind, s.rex_beta));
      }
      return RequireFloor(n, kind, s);
    case ScheduleKind::kWsd: {
      LRTUNE_RETURN_IF_ERROR(
          RequireAtLeast(n, "total_steps", s.total_steps, 1));
      LRTUNE_RETURN_IF_ERROR(
          RequireAtLeast(n, "cooldown_steps", s.cooldown_steps, 0));
      if (!(s.cooldown_fraction >= 0 && s.cooldown_fraction <= 1)) {
        return Invalid(absl::StrFormat("wsd: %s must be in [0, 1], got %g",
                                       n("cooldown_fraction"),
                                       s.cooldown_fraction));
      }
      if (s.cooldown_steps > s.total_steps) {
        return Invalid(absl::StrFormat("wsd: %s (%d) must be <= %s (%d)",
                                       n("cooldown_steps"), s.cooldown_steps,
                                       n("total_steps"), s.total_steps));
      }
      return RequireFloor(n, kind, s);
    }
    case ScheduleKind::kFractal: {
      const int64_t period = s.fractal_period;
      if (period < 1 || period > (int64_t{1} << 20) ||
          (period & (period - 1)) != 0) {
        return Invalid(absl::StrFormat(
            "fractal: %s must be a power of 2 in [1, 1048576], got %d",
            n("fractal_period"), period));
      }
      LRTUNE_RETURN_IF_ERROR(
          RequireFinite(n, "fractal_kappa", s.fractal_kappa));
      if (s.fractal_kappa < 1 || s.fractal_kappa > 1e6) {
        return Invalid(
            absl::StrFormat("fractal: %s must be in [1, 1e6], got %g",
                            n("fractal_kappa"), s.fractal_kappa));
      }
      return absl::OkStatus();
    }
    case ScheduleKind::kRamp:
      LRTUNE_RETURN_IF_ERROR(RequirePositive(n, "max_lr", s.max_lr));
      if (s.max_lr <= s.base_lr) {
        return Invalid(absl::StrFormat(
            "ramp: the end lr (%s %g) must be > the start lr (%s %g)",
            n("max_lr"), s.max_lr, n("base_lr"), s.base_lr));
      }
      return RequireAtLeast(n, "total_steps", s.total_steps, 2);
    case ScheduleKind::kSequential:
      if (s.children.empty()) {
        return Invalid(
            absl::StrCat("sequential: ", n("children"), " is empty"));
      }
      if (s.boundaries.size() + 1 != s.children.size()) {
        return Invalid(
            absl::StrFormat("sequential: needs %d %s for %d children, got %d",
                            s.children.size() - 1, n("boundaries"),
                            s.children.size(), s.boundaries.size()));
      }
      for (size_t i = 0; i < s.boundaries.size(); ++i) {
        const int64_t prev = i == 0 ? 0 : s.boundaries[i - 1];
        if (s.boundaries[i] <= prev) {
          return Invalid(absl::StrFormat(
              "sequential: %s must be strictly increasing and > 0, got %s",
              n("boundaries"), absl::StrJoin(s.boundaries, ",")));
        }
      }
      return absl::OkStatus();
  }
  return Invalid("unknown schedule kind");
}

}  // namespace

absl::string_view ScheduleKindName(ScheduleKind kind) {
  for (const KindName& k : kKindNames) {
    if (k.kind == kind) return k.name;
  }
  return "unknown";
}

absl::StatusOr<ScheduleKind> ParseScheduleKind(absl::string_view name) {
  std::string n = absl::AsciiStrToLower(name);
  std::replace(n.begin(), n.end(), '-', '_');
  if (n == "onecycle" || n == "1cycle") n = "one_cycle";
  if (n == "exprange") n = "exp_range";
  if (n == "cyclic") n = "triangular";
  for (const KindName& k : kKindNames) {
    if (k.name == n) return k.kind;
  }
  return Invalid(absl::StrFormat("unknown schedule kind '%s'; valid kinds: %s",
                                 name, ScheduleKindNames(", ")));
}

std::string ScheduleKindNames(absl::string_view separator) {
  std::vector<absl::string_view> names;
  for (const KindName& k : kKindNames) names.push_back(k.name);
  return absl::StrJoin(names, separator);
}

ScheduleSpec ScheduleSpec::OneCycle(double max_lr, int64_t total_steps) {
  ScheduleSpec s;
  s.kind = ScheduleKind::kOneCycle;
  s.max_lr = max_lr;
  s.total_steps = total_steps;
  return s;
}

ScheduleSpec ScheduleSpec::Ramp(double start_lr, double end_lr, int64_t steps,
                                RampShape shape) {
  ScheduleSpec s;
  s.kind = ScheduleKind::kRamp;
  s.base_lr = start_lr;
  s.max_lr = end_lr;
  s.total_steps = steps;
  s.ramp = shape;
  return s;
}

ScheduleSpec ScheduleSpec::Warmup(int64_t warmup_steps, double start_factor,
                                  ScheduleSpec after, ProfileShape shape) {
  ScheduleSpec warm;
  warm.base_lr = after.base_lr;
  if (shape == ProfileShape::kLinear) {
    warm.kind = ScheduleKind::kLinear;
    warm.start_factor = start_factor;
    warm.end_factor = 1.0;
    warm.total_iters = warmup_steps;
  } else {
    warm.kind = ScheduleKind::kProfile;
    warm.profile = shape;
    warm.profile_mode = ProfileMode::kGrowth;
    warm.eta_min = start_factor * after.base_lr;
    warm.rex_beta = after.rex_beta;
    warm.t0 = warmup_steps;
    warm.total_steps = warmup_steps;
  }
  ScheduleSpec s;
  s.kind = ScheduleKind::kSequential;
  s.base_lr = after.base_lr;
  s.children = {warm, std::move(after)};
  s.boundaries = {warmup_steps};
  return s;
}

Schedule::Schedule(ScheduleSpec spec) : spec_(std::move(spec)) {}

absl::StatusOr<Schedule> Schedule::Create(const ScheduleSpec& spec) {
  return Create(spec, PrefixNames(""));
}

absl::StatusOr<Schedule> Schedule::Create(const ScheduleSpec& spec,
                                          const FieldNamer& names) {
  if (spec.warmup_steps != 0) {
    LRTUNE_RETURN_IF_ERROR(
        RequireAtLeast(names, "warmup_steps", spec.warmup_steps, 0));
    if (!(spec.warmup_start_factor > 0 && spec.warmup_start_factor <= 1)) {
      return Invalid(absl::StrFormat("%s must be in (0, 1], got %g",
                                     names("warmup_start_factor"),
                                     spec.warmup_start_factor));
    }
    ScheduleSpec after = spec;
    after.warmup_steps = 0;
    // The schedule after the warm-up, its errors named as the user named it.
    LRTUNE_RETURN_IF_ERROR(Create(after, names).status());
    return Create(
        ScheduleSpec::Warmup(spec.warmup_steps, spec.warmup_start_factor,
                             std::move(after), spec.warmup_shape),
        names);
  }
  ScheduleSpec s = spec;
  ResolveDefaults(s);
  absl::Status st = ValidateKind(s, names);
  if (!st.ok()) return st;
  Schedule out(s);
  switch (s.kind) {
    case ScheduleKind::kOneCycle:
    case ScheduleKind::kRex:
    case ScheduleKind::kWsd:
    case ScheduleKind::kRamp:
      out.length_ = s.total_steps;
      break;
    case ScheduleKind::kSequential: {
      for (size_t i = 0; i < s.children.size(); ++i) {
        const std::string child_path = absl::StrCat("children[", i, "]");
        if (s.children[i].kind == ScheduleKind::kSequential) {
          return Invalid(absl::StrCat("sequential: ", names(child_path),
                                      " must not be sequential"));
        }
        absl::StatusOr<Schedule> child =
            Create(s.children[i], Nested(names, child_path + "."));
        if (!child.ok()) return child.status();
        if (i + 1 < s.children.size() && child->length() > 0) {
          const int64_t span =
              s.boundaries[i] - (i == 0 ? 0 : s.boundaries[i - 1]);
          if (span > child->length()) {
            return Invalid(absl::StrFormat(
                "sequential: %s is built for %d steps but runs for %d before "
                "the next boundary",
                names(child_path), child->length(), span));
          }
        }
        out.children_.push_back(*std::move(child));
      }
      const int64_t last = out.children_.back().length();
      out.length_ =
          last > 0 ? s.boundaries.empty() ? last : s.boundaries.back() + last
                   : 0;
      break;
    }
    default:
      out.length_ = s.total_steps;  // 0 (unbounded) unless the user set one
      break;
  }
  // Multistep's LR is constant after the last milestone, so its peak is
  // known whatever the length; a bounded schedule is checked over it.
  if (s.kind == ScheduleKind::kMultiStep) {
    LRTUNE_RETURN_IF_ERROR(out.CheckFinite(
        std::min(s.milestones.back(), std::numeric_limits<int64_t>::max() - 1) +
        1));
  }
  if (out.length_ > 0) LRTUNE_RETURN_IF_ERROR(out.CheckFinite(out.length_));
  return out;
}

absl::Status Schedule::CheckFinite(int64_t steps) const {
  if (steps <= 0) return absl::OkStatus();
  if (spec_.kind == ScheduleKind::kSequential) {
    for (size_t i = 0; i < children_.size(); ++i) {
      const int64_t start = i == 0 ? 0 : spec_.boundaries[i - 1];
      if (start >= steps) break;
      const int64_t end = i < spec_.boundaries.size()
                              ? std::min(steps, spec_.boundaries[i])
                              : steps;
      absl::Status st = children_[i].CheckFinite(end - start);
      if (!st.ok()) {
        return Invalid(
            absl::StrCat("sequential: children[", i, "]: ", st.message()));
      }
    }
    return absl::OkStatus();
  }
  // Only a gamma > 1 makes an LR grow without bound, and then it grows
  // monotonically: the last step is the peak, and the first step past the
  // largest double is found by bisection.
  const bool grows = (spec_.kind == ScheduleKind::kStep ||
                      spec_.kind == ScheduleKind::kMultiStep ||
                      spec_.kind == ScheduleKind::kExponential) &&
                     spec_.gamma > 1;
  if (!grows || std::isfinite(Lr(steps - 1))) return absl::OkStatus();
  int64_t lo = 0, hi = steps - 1;  // Lr(hi) is not finite
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (std::isfinite(Lr(mid))) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return Invalid(absl::StrFormat(
      "%s: the lr is not finite from step %d (base_lr %g, gamma %g); a gamma "
      "> 1 grows it past the largest double, so use a smaller gamma or fewer "
      "steps",
      ScheduleKindName(spec_.kind), hi, spec_.base_lr, spec_.gamma));
}

bool Schedule::has_momentum() const {
  if (spec_.kind == ScheduleKind::kSequential) {
    for (const Schedule& c : children_) {
      if (c.has_momentum()) return true;
    }
    return false;
  }
  return spec_.cycle_momentum &&
         (IsCyclic(spec_.kind) || spec_.kind == ScheduleKind::kOneCycle);
}

std::pair<size_t, int64_t> Schedule::Locate(int64_t t) const {
  const auto it =
      std::upper_bound(spec_.boundaries.begin(), spec_.boundaries.end(), t);
  const size_t idx = static_cast<size_t>(it - spec_.boundaries.begin());
  return {idx, idx == 0 ? t : t - spec_.boundaries[idx - 1]};
}

double Schedule::Lr(int64_t t) const {
  if (spec_.kind == ScheduleKind::kSequential) {
    const auto [idx, local] = Locate(t);
    return children_[idx].Lr(local);
  }
  return ProfileLr(t - t % spec_.sample_every);
}

std::optional<double> Schedule::Momentum(int64_t t) const {
  if (spec_.kind == ScheduleKind::kSequential) {
    const auto [idx, local] = Locate(t);
    return children_[idx].Momentum(local);
  }
  if (!has_momentum()) return std::nullopt;
  return ProfileMomentum(t - t % spec_.sample_every);
}

double Schedule::ProfileLr(int64_t t) const {
  const ScheduleSpec& s = spec_;
  const double base = s.base_lr;
  const double td = static_cast<double>(t);
  switch (s.kind) {
    case ScheduleKind::kConstant:
    case ScheduleKind::kSequential:
      return base;
    case ScheduleKind::kStep:
      return base * std::pow(s.gamma, static_cast<double>(t / s.step_size));
    case ScheduleKind::kMultiStep: {
      const auto n =
          std::upper_bound(s.milestones.begin(), s.milestones.end(), t) -
          s.milestones.begin();
      return base * std::pow(s.gamma, static_cast<double>(n));
    }
    case ScheduleKind::kExponential:
      return base * std::pow(s.gamma, td);
    case ScheduleKind::kLinear: {
      const double n = static_cast<double>(s.total_iters);
      return base * (s.start_factor +
                     (s.end_factor - s.start_factor) * std::min(n, td) / n);
    }
    case ScheduleKind::kPolynomial: {
      const double n = static_cast<double>(s.total_iters);
      return base * std::pow(1.0 - std::min(n, td) / n, s.power);
    }
    case ScheduleKind::kCosine:
      return s.eta_min +
             (base - s.eta_min) * (1 + std::cos(kPi * td / s.t_max)) / 2;
    case ScheduleKind::kSgdr: {
      const RestartPosition pos = RestartAt(t, s.t0, s.t_mult);
      return s.eta_min +
             (base - s.eta_min) *
                 (1 + std::cos(kPi * static_cast<double>(pos.t_cur) /
                               static_cast<double>(pos.period))) /
                 2;
    }
    case ScheduleKind::kProfile: {
      // A cyclic period is two half-cycles: growth, then decay.
      const int64_t halves = s.profile_mode == ProfileMode::kCyclic ? 2 : 1;
      const RestartPosition pos = RestartAt(t, s.t0 * halves, s.t_mult);
      const double half = static_cast<double>(pos.period / halves);
      double shape;
      if (s.profile_mode == ProfileMode::kDecay) {
        shape = DecayShape(s.profile, static_cast<double>(pos.t_cur) / half,
                           s.rex_beta);
      } else if (s.profile_mode == ProfileMode::kGrowth ||
                 static_cast<double>(pos.t_cur) < half) {
        shape = GrowthShape(s.profile, static_cast<double>(pos.t_cur) / half,
                            s.rex_beta);
      } else {
        shape = DecayShape(s.profile,
                           (static_cast<double>(pos.t_cur) - half) / half,
                           s.rex_beta);
      }
      return s.eta_min + (base - s.eta_min) * shape;
    }
    case ScheduleKind::kTriangular:
    case ScheduleKind::kTriangular2:
    case ScheduleKind::kExpRange: {
      const CyclePos pos = CyclicPosition(s, t);
      const double height = (s.max_lr - base) * pos.scale;
      return base + height * CyclicAmplitude(s, t, pos.cycle);
    }
    case ScheduleKind::kOneCycle: {
      const PhasePos pos = OneCyclePosition(s, t);
      return AnnealValue(s.anneal, pos.phase.start_lr, pos.phase.end_lr,
                         pos.pct);
    }
    case ScheduleKind::kRex:
      return s.eta_min + (base - s.eta_min) *
                             DecayShape(ProfileShape::kRex,
                                        td / static_cast<double>(s.total_steps),
                                        s.rex_beta);
    case ScheduleKind::kWsd: {
      const WsdCooldown c = WsdCooldownOf(s);
      if (t < c.start) return base;
      const double p = (td - static_cast<double>(c.start)) /
                       static_cast<double>(std::max<int64_t>(1, c.length));
      return s.eta_min + (base - s.eta_min) * CooldownValue(s.cooldown, p);
    }
    case ScheduleKind::kFractal: {
      const int64_t period = s.fractal_period;
      const double i =
          static_cast<double>(FractalIndex(period, t % period + 1));
      const double inv = 1.0 / s.fractal_kappa;
      const double g =
          (1 + inv) / 2 -
          (1 - inv) / 2 *
              std::cos((2 * i - 1) * kPi / (2 * static_cast<double>(period)));
      return base / g;
    }
    case ScheduleKind::kRamp: {
      const double q = td / static_cast<double>(s.total_steps - 1);
      if (s.ramp == RampShape::kExp) {
        return base * std::pow(s.max_lr / base, q);
      }
      return base + (s.max_lr - base) * q;
    }
  }
  return base;
}

std::optional<double> Schedule::ProfileMomentum(int64_t t) const {
  const ScheduleSpec& s = spec_;
  if (IsCyclic(s.kind)) {
    const CyclePos pos = CyclicPosition(s, t);
    const double height = (s.max_momentum - s.base_momentum) * pos.scale;
    return s.max_momentum - height * CyclicAmplitude(s, t, pos.cycle);
  }
  if (s.kind == ScheduleKind::kOneCycle) {
    const PhasePos pos = OneCyclePosition(s, t);
    return AnnealValue(s.anneal, pos.phase.start_m, pos.phase.end_m, pos.pct);
  }
  return std::nullopt;
}

absl::StatusOr<std::vector<SchedulePoint>> Schedule::Sample(
    int64_t steps) const {
  if (steps < 0) {
    return Invalid(absl::StrFormat("steps must be >= 0, got %d", steps));
  }
  if (length_ > 0 && steps > length_) {
    return Invalid(absl::StrFormat(
        "steps (%d) is beyond the schedule's length: %s was built for %d "
        "steps",
        steps, ScheduleKindName(spec_.kind), length_));
  }
  if (length_ == 0) LRTUNE_RETURN_IF_ERROR(CheckFinite(steps));
  std::vector<SchedulePoint> out;
  out.reserve(static_cast<size_t>(steps));
  for (int64_t t = 0; t < steps; ++t) {
    out.push_back({t, Lr(t), Momentum(t)});
  }
  return out;
}

}  // namespace lrtune
