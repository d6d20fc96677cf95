#include "core/grid.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "core/field_names.h"
#include "core/schedule_params.h"
#include "core/status_macros.h"

namespace lrtune {
namespace {

// Stand-in bounds for checking a trial that waits for the range test: wide
// enough that only errors independent of the bounds' values show.
constexpr double kStandInMin = 1e-12;
constexpr double kStandInMax = 1e12;

absl::Status Invalid(absl::string_view msg) {
  return absl::InvalidArgumentError(msg);
}

// Prefixes a status's message with where the error is.
absl::Status At(absl::string_view where, const absl::Status& st) {
  if (st.ok()) return st;
  return absl::Status(st.code(), absl::StrCat(where, ": ", st.message()));
}

// The same normalization SetScheduleParam applies, so that "max-lr" and
// "max_lr" are one parameter.
std::string NormalizeParamName(absl::string_view name) {
  std::string key = absl::AsciiStrToLower(absl::StripAsciiWhitespace(name));
  std::replace(key.begin(), key.end(), '-', '_');
  if (key == "t_0") key = "t0";
  return key;
}

bool IsCyclic(ScheduleKind k) {
  return k == ScheduleKind::kTriangular || k == ScheduleKind::kTriangular2 ||
         k == ScheduleKind::kExpRange;
}

bool FloorsAtMin(ScheduleKind k) {
  return k == ScheduleKind::kCosine || k == ScheduleKind::kSgdr ||
         k == ScheduleKind::kRex || k == ScheduleKind::kProfile;
}

// The LR fields the lr_bounds axis sets for a kind.
std::vector<std::string> BoundFields(ScheduleKind k) {
  if (k == ScheduleKind::kOneCycle) return {"max_lr"};
  if (IsCyclic(k)) return {"base_lr", "max_lr"};
  return {"base_lr"};
}

// A schedules-axis value with its kind parsed and its parameters applied.
struct Prepared {
  ScheduleSpec spec;
  std::map<std::string, std::string> given;  // normalized name -> text
};

absl::StatusOr<Prepared> Prepare(const GridSchedule& axis, bool has_bounds) {
  Prepared p;
  absl::StatusOr<ScheduleKind> kind = ParseScheduleKind(axis.kind);
  if (!kind.ok()) return At("kind", kind.status());
  if (*kind == ScheduleKind::kRamp || *kind == ScheduleKind::kSequential ||
      *kind == ScheduleKind::kFractal) {
    return Invalid(absl::StrFormat(
        "kind: '%s' cannot be a trial's schedule; use one of the profile "
        "kinds (one_cycle, triangular, cosine, sgdr, rex, ...)",
        axis.kind));
  }
  p.spec.kind = *kind;
  for (const auto& [name, value] : axis.params) {
    const std::string key = NormalizeParamName(name);
    if (key == "kind" || key == "mode") {
      return Invalid(absl::StrFormat(
          "params.%s: the kind is set by the schedule's kind field", key));
    }
    if (!p.given.emplace(key, std::string(absl::StripAsciiWhitespace(value)))
             .second) {
      return Invalid(absl::StrFormat("params.%s: given twice", key));
    }
    LRTUNE_RETURN_IF_ERROR(At("params", SetScheduleParam(p.spec, key, value)));
  }
  if (has_bounds) {
    for (const std::string& field : BoundFields(*kind)) {
      if (p.given.count(field) > 0) {
        return Invalid(absl::StrFormat(
            "params.%s: the lr_bounds axis sets %s for %s; remove it here or "
            "leave lr_bounds empty",
            field, field, ScheduleKindName(*kind)));
      }
    }
  }
  return p;
}

int64_t CeilDiv(int64_t a, int64_t b) { return a / b + (a % b != 0); }

// Applies bounds (null: none) and the budget of `n` steps to a prepared
// schedule, by the rules in grid.h.
ScheduleSpec Build(const Prepared& p, const GridBounds* bounds, int64_t budget,
                   int64_t per_epoch) {
  ScheduleSpec s = p.spec;
  // A warm-up comes out of the budget: the profile gets what is left.
  const int64_t n = budget - s.warmup_steps;
  auto given = [&p](const char* name) { return p.given.count(name) > 0; };
  const ScheduleKind k = s.kind;
  if (bounds != nullptr) {
    const double lo = bounds->recommended ? kStandInMin : bounds->min_lr;
    const double hi = bounds->recommended ? kStandInMax : bounds->max_lr;
    if (k == ScheduleKind::kOneCycle) {
      s.max_lr = hi;
      if (!given("div_factor")) s.div_factor = BoundsRatio(hi, lo);
    } else if (IsCyclic(k)) {
      s.base_lr = lo;
      s.max_lr = hi;
    } else {
      s.base_lr = hi;
      if (FloorsAtMin(k) && !given("eta_min")) s.eta_min = lo;
    }
  }
  if ((k == ScheduleKind::kOneCycle || k == ScheduleKind::kRex ||
       k == ScheduleKind::kWsd) &&
      !given("total_steps")) {
    s.total_steps = n;
  }
  if (IsCyclic(k) && !given("step_size_up")) {
    s.step_size_up = CyclicStepSizeUp(n, per_epoch);
  }
  if (k == ScheduleKind::kCosine && !given("t_max")) s.t_max = n;
  if (k == ScheduleKind::kSgdr && !given("t0")) {
    s.t0 = SgdrFirstPeriod(n, per_epoch, s.t_mult);
  }
  if (k == ScheduleKind::kProfile && !given("t0")) {
    // One decay or growth over the budget; cyclic: CyclicLR's half-cycles.
    s.t0 = s.profile_mode == ProfileMode::kCyclic
               ? CyclicStepSizeUp(n, per_epoch)
               : std::max<int64_t>(n, 1);
  }
  if ((k == ScheduleKind::kLinear || k == ScheduleKind::kPolynomial) &&
      !given("total_iters")) {
    s.total_iters = n;
  }
  return s;
}

absl::Status Check(const ScheduleSpec& s, int64_t budget) {
  LRTUNE_ASSIGN_OR_RETURN(Schedule schedule, Schedule::Create(s));
  LRTUNE_RETURN_IF_ERROR(schedule.CheckFinite(budget));
  const int64_t n = budget - s.warmup_steps;  // the profile's steps
  if ((s.kind == ScheduleKind::kOneCycle || s.kind == ScheduleKind::kRex ||
       s.kind == ScheduleKind::kWsd) &&
      s.total_steps < n) {
    return Invalid(absl::StrFormat(
        "%s: total_steps (%d) is shorter than the budget (%d steps)",
        ScheduleKindName(s.kind), s.total_steps, n));
  }
  return absl::OkStatus();
}

absl::Status InvalidAt(absl::string_view where, absl::string_view rule) {
  return Invalid(absl::StrCat(where, " ", rule));
}

std::string BoundsText(const GridBounds& b) {
  if (b.recommended) {
    if (b.scale != 1.0) return absl::StrFormat("recommended*%g", b.scale);
    return "recommended";
  }
  return absl::StrFormat("%g..%g", b.min_lr, b.max_lr);
}

std::string WithParams(absl::string_view name,
                       const std::map<std::string, std::string>& params) {
  if (params.empty()) return std::string(name);
  std::vector<std::string> parts;
  for (const auto& [k, v] : params) parts.push_back(absl::StrCat(k, "=", v));
  return absl::StrCat(name, "(", absl::StrJoin(parts, ","), ")");
}

// A value's identity on its axis: two equal keys would run the same trials.
std::string ValueKey(const GridAxis& axis, size_t j) {
  auto fields = [](const AxisValue& v) {
    std::string key = v.kind;
    for (const auto& [k, t] : v.params) absl::StrAppend(&key, "\n", k, "=", t);
    return key;
  };
  switch (axis.kind) {
    case GridAxis::Kind::kSchedules:
      return fields(axis.schedules[j]);
    case GridAxis::Kind::kLrBounds:
      return absl::StrFormat("%d %.17g %.17g %.17g",
                             axis.lr_bounds[j].recommended,
                             axis.lr_bounds[j].min_lr, axis.lr_bounds[j].max_lr,
                             axis.lr_bounds[j].scale);
    case GridAxis::Kind::kBudgets:
      return absl::StrCat(
          axis.budgets[j].unit == GridBudget::Unit::kEpochs ? "e" : "s",
          axis.budgets[j].count);
    case GridAxis::Kind::kSeeds:
      return absl::StrCat(axis.seeds[j]);
    case GridAxis::Kind::kOptimizers:
      return fields(axis.optimizers[j]);
    case GridAxis::Kind::kBatchSizes:
      return absl::StrCat(axis.batch_sizes[j]);
  }
  return "";
}

// The checks of one axis value that do not depend on other axes.
absl::Status CheckAxisValue(const GridAxis& axis, size_t j,
                            const std::string& where, const GridPlan& plan,
                            const GridNames& names) {
  switch (axis.kind) {
    case GridAxis::Kind::kLrBounds: {
      const GridBounds& b = axis.lr_bounds[j];
      if (b.recommended) {
        if (!std::isfinite(b.scale) || b.scale <= 0) {
          return InvalidAt(
              absl::StrCat(where, ".recommended.scale"),
              absl::StrCat("must be finite and > 0, got ", b.scale));
        }
        if (!plan.has_range_test) {
          return InvalidAt(
              absl::StrCat(where, ".recommended"),
              absl::StrCat("needs ", names.range_test,
                           ": the recommended bounds come from a range test "
                           "run first in the same job"));
        }
      } else if (!std::isfinite(b.min_lr) || !std::isfinite(b.max_lr) ||
                 b.min_lr <= 0 || b.min_lr > b.max_lr) {
        return InvalidAt(
            absl::StrCat(where, ".explicit_bounds"),
            absl::StrFormat("must be finite with 0 < min_lr <= max_lr, got "
                            "min_lr %g, max_lr %g",
                            b.min_lr, b.max_lr));
      }
      return absl::OkStatus();
    }
    case GridAxis::Kind::kBudgets: {
      const GridBudget& b = axis.budgets[j];
      if (b.count < 1) {
        return InvalidAt(
            absl::StrCat(where, b.unit == GridBudget::Unit::kEpochs ? ".epochs"
                                                                    : ".steps"),
            absl::StrCat("must be >= 1, got ", b.count));
      }
      return absl::OkStatus();
    }
    case GridAxis::Kind::kBatchSizes:
      if (axis.batch_sizes[j] < 1) {
        return InvalidAt(
            where, absl::StrCat("must be >= 1, got ", axis.batch_sizes[j]));
      }
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

// Sets OptimizerSpec fields from their text, as the proto's fields read.
absl::Status ApplyOptimizer(const AxisValue& v, OptimizerSpec& o,
                            const std::string& prefix) {
  o = OptimizerSpec{};
  if (!v.kind.empty()) {
    LRTUNE_ASSIGN_OR_RETURN(o.kind,
                            ParseOptimizerKind(v.kind, PrefixNames(prefix)));
  }
  for (const auto& [name, text] : v.params) {
    const std::string where = absl::StrCat(prefix, "optimizer.", name);
    if (name == "nesterov") {
      if (text != "true" && text != "false") {
        return InvalidAt(
            where, absl::StrCat("must be true or false, got '", text, "'"));
      }
      o.nesterov = text == "true";
      continue;
    }
    double* field = name == "momentum"       ? &o.momentum
                    : name == "weight_decay" ? &o.weight_decay
                    : name == "beta1"        ? &o.beta1
                    : name == "beta2"        ? &o.beta2
                    : name == "eps"          ? &o.eps
                    : name == "alpha"        ? &o.alpha
                                             : nullptr;
    if (field == nullptr) return InvalidAt(where, "is not an optimizer field");
    if (!absl::SimpleAtod(text, field)) {
      return InvalidAt(where,
                       absl::StrCat("must be a number, got '", text, "'"));
    }
  }
  return absl::OkStatus();
}

// Trial `index` of a checked plan.
absl::StatusOr<PlannedTrial> PlanTrial(const GridPlan& plan, int64_t index,
                                       const GridNames& names) {
  PlannedTrial t;
  t.index = index;
  t.choice.resize(plan.axes.size());
  int64_t rest = index;
  for (size_t a = plan.axes.size(); a-- > 0;) {
    const int64_t n = static_cast<int64_t>(plan.axes[a].size());
    t.choice[a] = static_cast<int>(rest % n);
    rest /= n;
  }
  t.run = plan.run;
  t.optimizer = plan.optimizer;
  t.schedule = plan.schedule;
  std::optional<GridBudget> budget;
  if (plan.has_budget) budget = plan.budget;
  std::optional<GridBounds> bounds;
  std::vector<std::string> label;
  for (size_t a = 0; a < plan.axes.size(); ++a) {
    const GridAxis& axis = plan.axes[a];
    const size_t j = static_cast<size_t>(t.choice[a]);
    std::string text;
    switch (axis.kind) {
      case GridAxis::Kind::kSchedules: {
        const AxisValue& v = axis.schedules[j];
        if (!v.kind.empty() && v.kind != t.schedule.kind) {
          t.schedule = v;  // another kind: the base's parameters do not apply
        } else {
          for (const auto& [k, p] : v.params) t.schedule.params[k] = p;
        }
        text = WithParams(t.schedule.kind.empty() ? "?" : t.schedule.kind,
                          v.params);
        break;
      }
      case GridAxis::Kind::kLrBounds:
        bounds = axis.lr_bounds[j];
        t.needs_bounds = bounds->recommended;
        text = BoundsText(*bounds);
        break;
      case GridAxis::Kind::kBudgets:
        budget = axis.budgets[j];
        text = absl::StrCat(
            budget->count,
            budget->unit == GridBudget::Unit::kEpochs ? "epochs" : "steps");
        break;
      case GridAxis::Kind::kSeeds:
        t.run.seed = axis.seeds[j];
        text = absl::StrCat(axis.seeds[j]);
        break;
      case GridAxis::Kind::kOptimizers: {
        const AxisValue& v = axis.optimizers[j];
        if (!v.kind.empty()) t.optimizer.kind = v.kind;
        for (const auto& [k, p] : v.params) t.optimizer.params[k] = p;
        text = WithParams(t.optimizer.kind.empty() ? "sgd" : t.optimizer.kind,
                          v.params);
        break;
      }
      case GridAxis::Kind::kBatchSizes:
        t.run.batch_size = axis.batch_sizes[j];
        text = absl::StrCat(axis.batch_sizes[j]);
        break;
    }
    label.push_back(absl::StrCat(axis.label_name(), "=", text));
  }
  t.label = absl::StrJoin(label, " ");
  const std::string where =
      absl::StrCat(names.trial, "trial ", index, " (", t.label, ")");
  LRTUNE_RETURN_IF_ERROR(
      At(where, ApplyOptimizer(t.optimizer, t.run.optimizer, names.run)));
  LRTUNE_RETURN_IF_ERROR(At(where, ValidateJob(t.run, PrefixNames(names.run))));
  const int64_t per_epoch = StepsPerEpoch(t.run);
  if (!budget.has_value()) {
    return Invalid(absl::StrCat(where, " has no budget: set ", names.train,
                                "epochs or steps, or a budgets axis"));
  }
  if (budget->unit == GridBudget::Unit::kEpochs) {
    if (per_epoch < 1) {
      return InvalidAt(where,
                       "an epoch budget needs a data set of known size; give "
                       "the budget in steps");
    }
    if (budget->count > kMaxTrialSteps / per_epoch) {
      return InvalidAt(where, absl::StrCat("budget: ", budget->count,
                                           " epochs are more than ",
                                           kMaxTrialSteps, " steps"));
    }
    t.epochs = budget->count;
    t.steps = budget->count * per_epoch;
  } else {
    t.steps = budget->count;
  }
  if (t.steps > kMaxTrialSteps) {
    return InvalidAt(where, absl::StrCat("budget: ", t.steps,
                                         " steps, more than ", kMaxTrialSteps));
  }
  if (t.schedule.kind.empty()) {
    return InvalidAt(
        where, absl::StrCat(names.train, "schedule.kind must be set (in ",
                            names.train, "schedule or by a schedules axis)"));
  }
  absl::StatusOr<ScheduleSpec> completed = CompleteTrialSchedule(
      t.schedule, bounds ? &*bounds : nullptr, t.steps, per_epoch);
  LRTUNE_RETURN_IF_ERROR(At(where, completed.status()));
  t.completed = *std::move(completed);
  return t;
}

}  // namespace

int64_t CyclicStepSizeUp(int64_t n, int64_t per_epoch) {
  int64_t cycles = 1;
  if (per_epoch > 0) cycles = std::max<int64_t>(1, n / 2 / per_epoch);
  return CeilDiv(n, 2 * cycles);
}

double BoundsRatio(double hi, double lo) {
  const double ratio = hi / lo;
  if (!std::isfinite(ratio) || ratio == 0.0) return ratio;
  const double scale =
      std::pow(10.0, 11 - static_cast<int>(std::floor(std::log10(ratio))));
  return std::round(ratio * scale) / scale;
}

int64_t SgdrFirstPeriod(int64_t n, int64_t per_epoch, int64_t t_mult) {
  if (per_epoch <= 0 || t_mult < 1) return n;
  if (t_mult == 1) return CeilDiv(n, std::max<int64_t>(1, n / per_epoch));
  // P(k) = 1 + t_mult + ... + t_mult^(k-1); grow k while P(k+1) E <= N.
  const int64_t most = n / per_epoch;  // P(k) E <= N  <=>  P(k) <= most
  int64_t periods = 1, power = 1;      // P(k) and t_mult^(k-1)
  while (power <= n / t_mult && power * t_mult <= most - periods) {
    power *= t_mult;
    periods += power;
  }
  return CeilDiv(n, periods);
}

size_t GridAxis::size() const {
  switch (kind) {
    case Kind::kSchedules:
      return schedules.size();
    case Kind::kLrBounds:
      return lr_bounds.size();
    case Kind::kBudgets:
      return budgets.size();
    case Kind::kSeeds:
      return seeds.size();
    case Kind::kOptimizers:
      return optimizers.size();
    case Kind::kBatchSizes:
      return batch_sizes.size();
  }
  return 0;
}

std::string GridAxis::label_name() const {
  if (!name.empty()) return name;
  switch (kind) {
    case Kind::kSchedules:
      return "schedule";
    case Kind::kLrBounds:
      return "lr_bounds";
    case Kind::kBudgets:
      return "budget";
    case Kind::kSeeds:
      return "seed";
    case Kind::kOptimizers:
      return "optimizer";
    case Kind::kBatchSizes:
      return "batch_size";
  }
  return "axis";
}

absl::StatusOr<std::vector<PlannedTrial>> PlanGrid(const GridPlan& plan,
                                                   const GridNames& names) {
  const int axes = static_cast<int>(plan.axes.size());
  if (axes < 1 || axes > kMaxAxes) {
    return InvalidAt(
        absl::StrCat(names.grid, "axes"),
        absl::StrCat("must hold 1..", kMaxAxes, " axes, got ", axes));
  }
  if (plan.max_trials < 1) {
    return InvalidAt(absl::StrCat(names.grid, "max_trials"),
                     absl::StrCat("must be >= 1, got ", plan.max_trials));
  }
  std::set<std::string> labels;
  int64_t count = 1;
  int lr_axes = 0;
  for (int i = 0; i < axes; ++i) {
    const GridAxis& axis = plan.axes[static_cast<size_t>(i)];
    const std::string path =
        absl::StrCat(names.grid, absl::StrCat("axes[", i, "]"));
    const std::string name = axis.label_name();
    if (name.size() > 64) {
      return InvalidAt(absl::StrCat(path, ".name"), "must be 1..64 characters");
    }
    if (!labels.insert(name).second) {
      return InvalidAt(
          absl::StrCat(path, ".name"),
          absl::StrCat("\"", name, "\" names two axes; give one a name"));
    }
    const int64_t n = static_cast<int64_t>(axis.size());
    if (n < 1 || n > kMaxAxisValues) {
      return InvalidAt(path, absl::StrCat("must hold 1..", kMaxAxisValues,
                                          " values, got ", n));
    }
    std::vector<std::string> keys;
    for (size_t j = 0; j < axis.size(); ++j) {
      const std::string where = absl::StrCat(path, ".values[", j, "]");
      LRTUNE_RETURN_IF_ERROR(CheckAxisValue(axis, j, where, plan, names));
      std::string key = ValueKey(axis, j);
      for (size_t k = 0; k < j; ++k) {
        if (keys[k] == key) {
          return InvalidAt(where, absl::StrCat("repeats values[", k,
                                               "] (it would run the same "
                                               "trials twice)"));
        }
      }
      keys.push_back(std::move(key));
    }
    lr_axes += axis.kind == GridAxis::Kind::kLrBounds;
    count *= n;
    if (count > plan.max_trials) {
      int64_t total = 1;
      for (const GridAxis& a : plan.axes) {
        total *= static_cast<int64_t>(a.size());
      }
      return InvalidAt(
          absl::StrCat(names.grid, "max_trials"),
          absl::StrCat("is ", plan.max_trials, ", but the grid has ", total,
                       " trials (the product of its axes' sizes); raise it "
                       "or drop values"));
    }
  }
  if (lr_axes > 1) {
    return InvalidAt(absl::StrCat(names.grid, "axes"),
                     "at most one lr_bounds axis");
  }
  std::vector<PlannedTrial> trials;
  trials.reserve(static_cast<size_t>(count));
  for (int64_t index = 0; index < count; ++index) {
    LRTUNE_ASSIGN_OR_RETURN(PlannedTrial t, PlanTrial(plan, index, names));
    trials.push_back(std::move(t));
  }
  return trials;
}

absl::StatusOr<ScheduleSpec> CompleteTrialSchedule(const GridSchedule& schedule,
                                                   const GridBounds* bounds,
                                                   int64_t budget_steps,
                                                   int64_t steps_per_epoch) {
  if (budget_steps < 1) {
    return Invalid(
        absl::StrFormat("the budget must be >= 1 step, got %d", budget_steps));
  }
  LRTUNE_ASSIGN_OR_RETURN(Prepared p, Prepare(schedule, bounds != nullptr));
  if (p.spec.warmup_steps < 0 || p.spec.warmup_steps >= budget_steps) {
    return Invalid(absl::StrFormat(
        "params.warmup_steps (%d) must be in [0, the budget (%d steps))",
        p.spec.warmup_steps, budget_steps));
  }
  ScheduleSpec built = Build(p, bounds, budget_steps, steps_per_epoch);
  LRTUNE_RETURN_IF_ERROR(Check(built, budget_steps));
  return built;
}

absl::StatusOr<Objective> ParseObjective(absl::string_view name) {
  const std::string n = absl::AsciiStrToLower(absl::StripAsciiWhitespace(name));
  if (n == "val_accuracy") return Objective::kValAccuracy;
  if (n == "val_loss") return Objective::kValLoss;
  return Invalid(absl::StrFormat(
      "objective: '%s' is not one of val_accuracy, val_loss", name));
}

absl::string_view ObjectiveName(Objective objective) {
  return objective == Objective::kValAccuracy ? "val_accuracy" : "val_loss";
}

std::vector<int64_t> RankTrials(const std::vector<TrialResult>& results,
                                Objective objective) {
  // Group 0: finite value; 1: succeeded without a finite value; 2: failed.
  // Within group 0, `key` is smaller for better values.
  struct Entry {
    int group;
    double key;
    int64_t trial_index;
    size_t pos;
  };
  std::vector<Entry> entries;
  entries.reserve(results.size());
  for (size_t i = 0; i < results.size(); ++i) {
    const TrialResult& r = results[i];
    const double v =
        objective == Objective::kValAccuracy ? -r.val_accuracy : r.val_loss;
    const int group = !r.succeeded ? 2 : (std::isfinite(v) ? 0 : 1);
    entries.push_back({group, group == 0 ? v : 0.0, r.trial_index, i});
  }
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) {
                     if (a.group != b.group) return a.group < b.group;
                     if (a.key != b.key) return a.key < b.key;
                     return a.trial_index < b.trial_index;
                   });
  std::vector<int64_t> ranks(results.size());
  for (size_t r = 0; r < entries.size(); ++r) {
    ranks[entries[r].pos] = static_cast<int64_t>(r) + 1;
  }
  return ranks;
}

}  // namespace lrtune
