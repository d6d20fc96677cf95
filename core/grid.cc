#include "core/grid.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
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
         k == ScheduleKind::kRex;
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
  if (*kind == ScheduleKind::kRamp || *kind == ScheduleKind::kSequential) {
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

int64_t CyclicStepSizeUp(int64_t n, int64_t per_epoch) {
  int64_t cycles = 1;
  if (per_epoch > 0) cycles = std::max<int64_t>(1, n / 2 / per_epoch);
  return CeilDiv(n, 2 * cycles);
}

int64_t SgdrT0(int64_t n, int64_t per_epoch, int64_t t_mult) {
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

// Applies bounds (null: none) and the budget of `n` steps to a prepared
// schedule, by the rules in grid.h.
ScheduleSpec Build(const Prepared& p, const GridBounds* bounds, int64_t n,
                   int64_t per_epoch) {
  ScheduleSpec s = p.spec;
  auto given = [&p](const char* name) { return p.given.count(name) > 0; };
  const ScheduleKind k = s.kind;
  if (bounds != nullptr) {
    const double lo = bounds->recommended ? kStandInMin : bounds->min_lr;
    const double hi = bounds->recommended ? kStandInMax : bounds->max_lr;
    if (k == ScheduleKind::kOneCycle) {
      s.max_lr = hi;
      if (!given("div_factor")) s.div_factor = hi / lo;
    } else if (IsCyclic(k)) {
      s.base_lr = lo;
      s.max_lr = hi;
    } else {
      s.base_lr = hi;
      if (FloorsAtMin(k) && !given("eta_min")) s.eta_min = lo;
    }
  }
  if ((k == ScheduleKind::kOneCycle || k == ScheduleKind::kRex) &&
      !given("total_steps")) {
    s.total_steps = n;
  }
  if (IsCyclic(k) && !given("step_size_up")) {
    s.step_size_up = CyclicStepSizeUp(n, per_epoch);
  }
  if (k == ScheduleKind::kCosine && !given("t_max")) s.t_max = n;
  if (k == ScheduleKind::kSgdr && !given("t0")) {
    s.t0 = SgdrT0(n, per_epoch, s.t_mult);
  }
  if ((k == ScheduleKind::kLinear || k == ScheduleKind::kPolynomial) &&
      !given("total_iters")) {
    s.total_iters = n;
  }
  return s;
}

absl::Status Check(const ScheduleSpec& s, int64_t n) {
  LRTUNE_ASSIGN_OR_RETURN(Schedule schedule, Schedule::Create(s));
  LRTUNE_RETURN_IF_ERROR(schedule.CheckFinite(n));
  if ((s.kind == ScheduleKind::kOneCycle || s.kind == ScheduleKind::kRex) &&
      s.total_steps < n) {
    return Invalid(absl::StrFormat(
        "%s: total_steps (%d) is shorter than the budget (%d steps)",
        ScheduleKindName(s.kind), s.total_steps, n));
  }
  return absl::OkStatus();
}

std::string Label(const Trial& t, const Prepared& p, const GridBounds* bounds,
                  const ScheduleSpec& built) {
  const ScheduleKind k = built.kind;
  std::vector<std::string> parts = {std::string(ScheduleKindName(k))};
  for (const auto& [name, value] : p.given) {
    parts.push_back(absl::StrCat(name, "=", value));
  }
  auto given = [&p](const char* name) { return p.given.count(name) > 0; };
  if (bounds != nullptr && t.needs_recommended_bounds) {
    parts.push_back("lr=recommended");
  } else if (bounds != nullptr) {
    if (k == ScheduleKind::kOneCycle) {
      parts.push_back(absl::StrFormat("max_lr=%g", built.max_lr));
      if (!given("div_factor")) {
        parts.push_back(absl::StrFormat("div_factor=%g", built.div_factor));
      }
    } else if (IsCyclic(k)) {
      parts.push_back(
          absl::StrFormat("base_lr=%g max_lr=%g", built.base_lr, built.max_lr));
    } else {
      parts.push_back(absl::StrFormat("base_lr=%g", built.base_lr));
      if (FloorsAtMin(k) && !given("eta_min")) {
        parts.push_back(absl::StrFormat("eta_min=%g", built.eta_min));
      }
    }
  }
  parts.push_back(absl::StrCat(
      t.budget.unit == GridBudget::Unit::kEpochs ? "epochs=" : "steps=",
      t.budget.count));
  for (const auto& [name, value] : t.optimizer) {
    parts.push_back(absl::StrCat(name, "=", value));
  }
  parts.push_back(absl::StrCat("seed=", t.seed));
  return absl::StrJoin(parts, " ");
}

absl::Status ValidateBounds(const std::vector<GridBounds>& axis) {
  for (size_t i = 0; i < axis.size(); ++i) {
    const GridBounds& b = axis[i];
    const std::string where = absl::StrFormat("lr_bounds[%d]", i);
    if (!b.recommended) {
      if (!std::isfinite(b.min_lr) || b.min_lr <= 0 ||
          !std::isfinite(b.max_lr) || b.max_lr <= 0) {
        return Invalid(absl::StrFormat(
            "%s: min_lr and max_lr must be finite and > 0, got %g and %g",
            where, b.min_lr, b.max_lr));
      }
      if (b.min_lr > b.max_lr) {
        return Invalid(absl::StrFormat("%s: min_lr (%g) must be <= max_lr (%g)",
                                       where, b.min_lr, b.max_lr));
      }
    }
    for (size_t j = 0; j < i; ++j) {
      const GridBounds& o = axis[j];
      if (o.recommended == b.recommended &&
          (b.recommended || (o.min_lr == b.min_lr && o.max_lr == b.max_lr))) {
        return Invalid(
            absl::StrFormat("%s: duplicate of lr_bounds[%d]", where, j));
      }
    }
  }
  return absl::OkStatus();
}

// Validates the budgets and returns their lengths in steps.
absl::StatusOr<std::vector<int64_t>> BudgetSteps(const GridSpec& spec) {
  if (spec.budgets.empty()) return Invalid("budgets: at least one is needed");
  std::vector<int64_t> steps;
  for (size_t i = 0; i < spec.budgets.size(); ++i) {
    const GridBudget& b = spec.budgets[i];
    const bool epochs = b.unit == GridBudget::Unit::kEpochs;
    if (b.count < 1) {
      return Invalid(
          absl::StrFormat("budgets[%d]: must be >= 1, got %d", i, b.count));
    }
    int64_t n = b.count;
    if (epochs) {
      if (spec.steps_per_epoch <= 0) {
        return Invalid(absl::StrFormat(
            "budgets[%d]: %d epochs need steps_per_epoch > 0", i, b.count));
      }
      if (b.count >
          std::numeric_limits<int64_t>::max() / spec.steps_per_epoch) {
        return Invalid(
            absl::StrFormat("budgets[%d]: %d epochs of %d steps overflow", i,
                            b.count, spec.steps_per_epoch));
      }
      n = b.count * spec.steps_per_epoch;
    }
    for (size_t j = 0; j < steps.size(); ++j) {
      if (steps[j] == n) {
        return Invalid(absl::StrFormat(
            "budgets[%d]: same length as budgets[%d] (%d steps)", i, j, n));
      }
    }
    steps.push_back(n);
  }
  return steps;
}

absl::Status ValidateOptimizer(const GridSpec& spec) {
  for (const auto& [name, values] : spec.optimizer) {
    const std::string where = absl::StrCat("optimizer.", name);
    if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) {
          return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_';
        })) {
      return Invalid(absl::StrFormat(
          "optimizer: field name '%s' must match [a-z0-9_]+", name));
    }
    if (name == "lr" || name == "learning_rate") {
      return Invalid(absl::StrFormat(
          "%s: the LR comes from the schedule and lr_bounds axes", where));
    }
    if (values.empty()) {
      return Invalid(absl::StrFormat("%s: needs at least one value", where));
    }
    for (size_t i = 0; i < values.size(); ++i) {
      const std::string& v = values[i];
      if (v.empty() || std::any_of(v.begin(), v.end(), absl::ascii_isspace)) {
        return Invalid(absl::StrFormat(
            "%s[%d]: '%s' must be non-empty without whitespace", where, i, v));
      }
      for (size_t j = 0; j < i; ++j) {
        if (values[j] == v) {
          return Invalid(absl::StrFormat("%s[%d]: duplicate of %s[%d] (%s)",
                                         where, i, where, j, v));
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateSeeds(const std::vector<int64_t>& seeds) {
  for (size_t i = 0; i < seeds.size(); ++i) {
    if (seeds[i] < 0) {
      return Invalid(
          absl::StrFormat("seeds[%d]: must be >= 0, got %d", i, seeds[i]));
    }
    for (size_t j = 0; j < i; ++j) {
      if (seeds[j] == seeds[i]) {
        return Invalid(absl::StrFormat("seeds[%d]: duplicate of seeds[%d] (%d)",
                                       i, j, seeds[i]));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ScheduleSpec> CompleteTrialSchedule(const GridSchedule& schedule,
                                                   const GridBounds* bounds,
                                                   int64_t budget_steps,
                                                   int64_t steps_per_epoch) {
  if (budget_steps < 1) {
    return Invalid(
        absl::StrFormat("the budget must be >= 1 step, got %d", budget_steps));
  }
  LRTUNE_ASSIGN_OR_RETURN(Prepared p, Prepare(schedule, bounds != nullptr));
  ScheduleSpec built = Build(p, bounds, budget_steps, steps_per_epoch);
  LRTUNE_RETURN_IF_ERROR(Check(built, budget_steps));
  return built;
}

absl::StatusOr<std::vector<Trial>> ExpandGrid(const GridSpec& spec) {
  if (spec.max_trials < 1 || spec.max_trials > kMaxTrialsCap) {
    return Invalid(absl::StrFormat("max_trials must be in [1, %d], got %d",
                                   kMaxTrialsCap, spec.max_trials));
  }
  if (spec.steps_per_epoch < 0) {
    return Invalid(absl::StrFormat("steps_per_epoch must be >= 0, got %d",
                                   spec.steps_per_epoch));
  }
  if (spec.schedules.empty()) {
    return Invalid("schedules: at least one is needed");
  }
  const bool has_bounds = !spec.lr_bounds.empty();
  std::vector<Prepared> prepared;
  for (size_t i = 0; i < spec.schedules.size(); ++i) {
    const std::string where = absl::StrFormat("schedules[%d]", i);
    absl::StatusOr<Prepared> p = Prepare(spec.schedules[i], has_bounds);
    if (!p.ok())
      return absl::Status(p.status().code(),
                          absl::StrCat(where, ".", p.status().message()));
    for (size_t j = 0; j < prepared.size(); ++j) {
      if (prepared[j].spec.kind == p->spec.kind &&
          prepared[j].given == p->given) {
        return Invalid(
            absl::StrFormat("%s: duplicate of schedules[%d]", where, j));
      }
    }
    prepared.push_back(*std::move(p));
  }
  LRTUNE_RETURN_IF_ERROR(ValidateBounds(spec.lr_bounds));
  LRTUNE_ASSIGN_OR_RETURN(std::vector<int64_t> steps, BudgetSteps(spec));
  LRTUNE_RETURN_IF_ERROR(ValidateOptimizer(spec));
  LRTUNE_RETURN_IF_ERROR(ValidateSeeds(spec.seeds));

  // Radices, outermost first; the optimizer fields in name order.
  std::vector<const std::pair<const std::string, std::vector<std::string>>*>
      fields;
  for (const auto& entry : spec.optimizer) fields.push_back(&entry);
  std::vector<uint64_t> radix = {spec.schedules.size(),
                                 std::max<size_t>(1, spec.lr_bounds.size()),
                                 spec.budgets.size()};
  for (const auto* f : fields) radix.push_back(f->second.size());
  radix.push_back(std::max<size_t>(1, spec.seeds.size()));
  uint64_t count = 1;
  bool overflow = false;
  for (uint64_t r : radix) {
    if (count > std::numeric_limits<uint64_t>::max() / r) overflow = true;
    count *= r;
  }
  if (overflow || count > static_cast<uint64_t>(spec.max_trials)) {
    return Invalid(absl::StrFormat(
        "grid has %s trials, more than max_trials %d",
        overflow ? "more than 2^64" : absl::StrCat(count), spec.max_trials));
  }

  std::vector<Trial> trials;
  trials.reserve(count);
  for (uint64_t index = 0; index < count; ++index) {
    std::vector<uint64_t> pos(radix.size());
    uint64_t rest = index;
    for (size_t a = radix.size(); a-- > 0;) {
      pos[a] = rest % radix[a];
      rest /= radix[a];
    }
    Trial t;
    t.index = static_cast<int64_t>(index);
    t.schedule_index = static_cast<int64_t>(pos[0]);
    t.bounds_index = has_bounds ? static_cast<int64_t>(pos[1]) : -1;
    t.budget_index = static_cast<int64_t>(pos[2]);
    t.schedule_axis = spec.schedules[pos[0]];
    t.steps_per_epoch = spec.steps_per_epoch;
    t.budget = spec.budgets[pos[2]];
    t.total_steps = steps[pos[2]];
    for (size_t f = 0; f < fields.size(); ++f) {
      t.optimizer[fields[f]->first] = fields[f]->second[pos[3 + f]];
    }
    t.seed = spec.seeds.empty() ? 0 : spec.seeds[pos.back()];
    const GridBounds* bounds = has_bounds ? &spec.lr_bounds[pos[1]] : nullptr;
    t.needs_recommended_bounds = bounds != nullptr && bounds->recommended;
    const Prepared& p = prepared[pos[0]];
    t.schedule = Build(p, bounds, t.total_steps, spec.steps_per_epoch);
    absl::Status st = Check(t.schedule, t.total_steps);
    if (!st.ok()) {
      std::string where = absl::StrFormat("schedules[%d]", pos[0]);
      if (has_bounds) {
        absl::StrAppendFormat(
            &where, ", lr_bounds[%d]%s", pos[1],
            t.needs_recommended_bounds ? " (recommended)" : "");
      }
      absl::StrAppendFormat(&where, ", budgets[%d]", pos[2]);
      return At(where, st);
    }
    t.label = Label(t, p, bounds, t.schedule);
    trials.push_back(std::move(t));
  }
  return trials;
}

absl::Status ResolveRecommendedBounds(std::vector<Trial>& trials, double min_lr,
                                      double max_lr) {
  if (!std::isfinite(min_lr) || !std::isfinite(max_lr) || min_lr <= 0 ||
      min_lr > max_lr) {
    return Invalid(absl::StrFormat(
        "recommended bounds must be finite with 0 < min_lr <= max_lr, got "
        "min_lr %g, max_lr %g (did the range test give a recommendation?)",
        min_lr, max_lr));
  }
  const GridBounds bounds = GridBounds::Fixed(min_lr, max_lr);
  std::vector<std::pair<size_t, Trial>> resolved;
  for (size_t i = 0; i < trials.size(); ++i) {
    const Trial& old = trials[i];
    if (!old.needs_recommended_bounds) continue;
    const std::string where =
        absl::StrFormat("trial %d (%s)", old.index, old.label);
    absl::StatusOr<Prepared> p = Prepare(old.schedule_axis, true);
    if (!p.ok()) return At(where, p.status());
    Trial t = old;
    t.needs_recommended_bounds = false;
    t.schedule = Build(*p, &bounds, t.total_steps, t.steps_per_epoch);
    absl::Status st = Check(t.schedule, t.total_steps);
    if (!st.ok()) return At(where, st);
    t.label = Label(t, *p, &bounds, t.schedule);
    resolved.emplace_back(i, std::move(t));
  }
  for (auto& [i, t] : resolved) trials[i] = std::move(t);
  return absl::OkStatus();
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
