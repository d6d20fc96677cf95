// PlanGrid and what it needs; see grid_plan.h. At ~670 lines it is over the
// house's ~600 because it still expands a grid's axes itself, beside
// core/grid.cc's ExpandGrid: moving every axis into core's planner (issue
// 14, part 2) leaves this file the persistence side only.
#include "server/grid_plan.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/grid.h"
#include "core/status_macros.h"
#include "proto/core_convert.h"

namespace lrtune::server {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

constexpr int kMaxAxes = 8;
constexpr int kMaxAxisValues = 64;
constexpr int kDefaultMaxTrials = 64;
// A trial's length in steps: far beyond any real budget, and small enough
// that schedule arithmetic on it cannot overflow.
constexpr int64_t kMaxTrialSteps = 1'000'000'000;

absl::Status Invalid(absl::string_view where, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(where, " ", rule));
}

absl::Status Prefixed(absl::string_view where, const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(),
                      absl::StrCat(where, ": ", status.message()));
}

// "%.17g": a parameter's text must give back the same double.
std::string Exact(double v) { return absl::StrFormat("%.17g", v); }

// The enum value's name without its prefix, lower-cased: "cos", "linear".
// An unknown number (proto3 enums are open) has no descriptor: "unknown";
// validation then names the field.
std::string EnumSuffix(const google::protobuf::EnumValueDescriptor* v,
                       absl::string_view prefix) {
  if (v == nullptr) return "unknown";
  std::string name = v->name();
  if (absl::StartsWith(name, prefix)) name = name.substr(prefix.size());
  return absl::AsciiStrToLower(name);
}

// The fields a message sets (proto3 presence: optional fields when set,
// plain scalars when non-zero, repeated ones when non-empty), as
// name -> text. `skip` names fields handled by the caller.
std::map<std::string, std::string> SetFields(
    const Message& m, const std::set<std::string>& skip) {
  std::map<std::string, std::string> out;
  std::vector<const FieldDescriptor*> fields;
  m.GetReflection()->ListFields(m, &fields);
  const auto* r = m.GetReflection();
  for (const FieldDescriptor* f : fields) {
    if (skip.count(f->name()) > 0) continue;
    std::string text;
    if (f->is_repeated()) {
      std::vector<std::string> items;
      for (int i = 0; i < r->FieldSize(m, f); ++i) {
        if (f->cpp_type() == FieldDescriptor::CPPTYPE_INT64) {
          items.push_back(absl::StrCat(r->GetRepeatedInt64(m, f, i)));
        } else {
          items.push_back("?");  // only messages: refused by the caller
        }
      }
      text = absl::StrJoin(items, ",");
    } else {
      switch (f->cpp_type()) {
        case FieldDescriptor::CPPTYPE_DOUBLE:
          text = Exact(r->GetDouble(m, f));
          break;
        case FieldDescriptor::CPPTYPE_INT64:
          text = absl::StrCat(r->GetInt64(m, f));
          break;
        case FieldDescriptor::CPPTYPE_INT32:
          text = absl::StrCat(r->GetInt32(m, f));
          break;
        case FieldDescriptor::CPPTYPE_BOOL:
          text = r->GetBool(m, f) ? "true" : "false";
          break;
        case FieldDescriptor::CPPTYPE_ENUM: {
          const std::string type = f->enum_type()->name();  // "Anneal"
          std::string prefix;
          for (char c : type) {
            if (absl::ascii_isupper(c) && !prefix.empty()) prefix += '_';
            prefix += absl::ascii_toupper(c);
          }
          text = EnumSuffix(r->GetEnum(m, f), prefix + "_");
          break;
        }
        default:
          text = "?";
      }
    }
    out[f->name()] = text;
  }
  return out;
}

// Applies `value` over `base`: the fields it sets replace the base's (a
// repeated field replaces, not appends).
template <typename M>
void Override(M& base, const M& value) {
  std::vector<const FieldDescriptor*> fields;
  value.GetReflection()->ListFields(value, &fields);
  for (const FieldDescriptor* f : fields) {
    if (f->is_repeated()) base.GetReflection()->ClearField(&base, f);
  }
  base.MergeFrom(value);
}

absl::StatusOr<GridSchedule> ToGridSchedule(const v1::ScheduleSpec& s,
                                            absl::string_view where) {
  if (s.kind() == v1::SCHEDULE_KIND_UNSPECIFIED) {
    return Invalid(absl::StrCat(where, ".kind"),
                   "must be set (in train.schedule or by a schedules axis)");
  }
  if (s.kind() < v1::SCHEDULE_KIND_CONSTANT ||
      s.kind() > v1::SCHEDULE_KIND_SEQUENTIAL) {
    return Invalid(absl::StrCat(where, ".kind"),
                   absl::StrCat("unknown value ", s.kind()));
  }
  if (s.children_size() > 0 || s.boundaries_size() > 0) {
    return Invalid(where,
                   "children/boundaries: a trial trains under one profile, "
                   "not a sequential schedule");
  }
  GridSchedule g;
  // Proto kind n is core's enumerator n - 1 (schedule.proto, core/schedule.h).
  g.kind = std::string(ScheduleKindName(
      static_cast<ScheduleKind>(static_cast<int>(s.kind()) - 1)));
  g.params = SetFields(s, {"kind"});
  return g;
}

std::string BoundsText(const v1::LrBounds& b) {
  if (b.has_recommended()) {
    if (b.recommended().has_scale() && b.recommended().scale() != 1.0) {
      return absl::StrFormat("recommended*%g", b.recommended().scale());
    }
    return "recommended";
  }
  return absl::StrFormat("%g..%g", b.explicit_bounds().min_lr(),
                         b.explicit_bounds().max_lr());
}

std::string WithParams(absl::string_view name,
                       const std::map<std::string, std::string>& params) {
  if (params.empty()) return std::string(name);
  std::vector<std::string> parts;
  for (const auto& [k, v] : params) parts.push_back(absl::StrCat(k, "=", v));
  return absl::StrCat(name, "(", absl::StrJoin(parts, ","), ")");
}

std::string AxisName(const v1::GridAxis& axis) {
  if (!axis.name().empty()) return axis.name();
  switch (axis.axis_case()) {
    case v1::GridAxis::kSchedules:
      return "schedule";
    case v1::GridAxis::kLrBounds:
      return "lr_bounds";
    case v1::GridAxis::kBudgets:
      return "budget";
    case v1::GridAxis::kSeeds:
      return "seed";
    case v1::GridAxis::kOptimizers:
      return "optimizer";
    case v1::GridAxis::kBatchSizes:
      return "batch_size";
    case v1::GridAxis::AXIS_NOT_SET:
      break;
  }
  return "axis";
}

int AxisSize(const v1::GridAxis& axis) {
  switch (axis.axis_case()) {
    case v1::GridAxis::kSchedules:
      return axis.schedules().values_size();
    case v1::GridAxis::kLrBounds:
      return axis.lr_bounds().values_size();
    case v1::GridAxis::kBudgets:
      return axis.budgets().values_size();
    case v1::GridAxis::kSeeds:
      return axis.seeds().values_size();
    case v1::GridAxis::kOptimizers:
      return axis.optimizers().values_size();
    case v1::GridAxis::kBatchSizes:
      return axis.batch_sizes().values_size();
    case v1::GridAxis::AXIS_NOT_SET:
      break;
  }
  return 0;
}

// The axis value's own checks (those that do not depend on other axes).
absl::Status CheckAxisValue(const v1::GridAxis& axis, int j,
                            const std::string& where) {
  switch (axis.axis_case()) {
    case v1::GridAxis::kLrBounds: {
      const v1::LrBounds& b = axis.lr_bounds().values(j);
      if (b.has_recommended()) {
        const double scale =
            b.recommended().has_scale() ? b.recommended().scale() : 1.0;
        if (!std::isfinite(scale) || scale <= 0) {
          return Invalid(absl::StrCat(where, ".recommended.scale"),
                         absl::StrCat("must be finite and > 0, got ", scale));
        }
      } else if (b.has_explicit_bounds()) {
        const double lo = b.explicit_bounds().min_lr();
        const double hi = b.explicit_bounds().max_lr();
        if (!std::isfinite(lo) || !std::isfinite(hi) || lo <= 0 || lo > hi) {
          return Invalid(
              absl::StrCat(where, ".explicit_bounds"),
              absl::StrFormat("must be finite with 0 < min_lr <= max_lr, got "
                              "min_lr %g, max_lr %g",
                              lo, hi));
        }
      } else {
        return Invalid(where, "must set explicit_bounds or recommended");
      }
      return absl::OkStatus();
    }
    case v1::GridAxis::kBudgets: {
      const v1::Budget& b = axis.budgets().values(j);
      if (b.value_case() == v1::Budget::VALUE_NOT_SET) {
        return Invalid(where, "must set epochs or steps");
      }
      const int64_t n = b.has_epochs() ? b.epochs() : b.steps();
      if (n < 1) {
        return Invalid(
            absl::StrCat(where, b.has_epochs() ? ".epochs" : ".steps"),
            absl::StrCat("must be >= 1, got ", n));
      }
      return absl::OkStatus();
    }
    case v1::GridAxis::kBatchSizes:
      if (axis.batch_sizes().values(j) < 1) {
        return Invalid(where, absl::StrCat("must be >= 1, got ",
                                           axis.batch_sizes().values(j)));
      }
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

// Two values of one axis that are the same would run the same trial twice.
absl::Status CheckDistinct(const v1::GridAxis& axis, const std::string& path) {
  const int n = AxisSize(axis);
  std::vector<std::string> keys;
  for (int j = 0; j < n; ++j) {
    std::string key;
    switch (axis.axis_case()) {
      case v1::GridAxis::kSchedules:
        key = axis.schedules().values(j).SerializeAsString();
        break;
      case v1::GridAxis::kLrBounds:
        key = axis.lr_bounds().values(j).SerializeAsString();
        break;
      case v1::GridAxis::kBudgets:
        key = axis.budgets().values(j).SerializeAsString();
        break;
      case v1::GridAxis::kSeeds:
        key = absl::StrCat(axis.seeds().values(j));
        break;
      case v1::GridAxis::kOptimizers:
        key = axis.optimizers().values(j).SerializeAsString();
        break;
      case v1::GridAxis::kBatchSizes:
        key = absl::StrCat(axis.batch_sizes().values(j));
        break;
      default:
        break;
    }
    for (int k = 0; k < j; ++k) {
      if (keys[k] == key) {
        return Invalid(absl::StrCat(path, ".values[", j, "]"),
                       absl::StrCat("repeats values[", k,
                                    "] (it would run the same trials twice)"));
      }
    }
    keys.push_back(std::move(key));
  }
  return absl::OkStatus();
}

absl::Status CheckTrainSpec(const v1::TrainSpec& t) {
  if (t.has_point_every() && t.point_every() < 1) {
    return Invalid("grid.train.point_every",
                   absl::StrCat("must be >= 1, got ", t.point_every()));
  }
  if (t.eval_every_steps() != 0) {
    return Invalid("grid.train.eval_every_steps",
                   absl::StrCat("must be 0 (evaluate at every epoch end and "
                                "at the end; other cadences are reserved), "
                                "got ",
                                t.eval_every_steps()));
  }
  if (t.checkpoint_every() < 0) {
    return Invalid("grid.train.checkpoint_every",
                   absl::StrCat("must be >= 0, got ", t.checkpoint_every()));
  }
  if (t.has_epochs() && t.epochs() < 1) {
    return Invalid("grid.train.epochs",
                   absl::StrCat("must be >= 1, got ", t.epochs()));
  }
  if (t.has_steps() && t.steps() < 1) {
    return Invalid("grid.train.steps",
                   absl::StrCat("must be >= 1, got ", t.steps()));
  }
  return absl::OkStatus();
}

// Fills `trial.train.schedule` (core's rules) for `bounds` (null: the
// schedule's own LRs) over the trial's budget, and sets train.steps.
absl::Status CompleteSchedule(const v1::ScheduleSpec& merged,
                              const GridBounds* bounds, int64_t budget_steps,
                              int64_t steps_per_epoch, v1::Trial& trial) {
  LRTUNE_ASSIGN_OR_RETURN(GridSchedule schedule,
                          ToGridSchedule(merged, "train.schedule"));
  LRTUNE_ASSIGN_OR_RETURN(
      ScheduleSpec built,
      CompleteTrialSchedule(schedule, bounds, budget_steps, steps_per_epoch));
  if (bounds != nullptr && bounds->recommended) {
    return absl::OkStatus();  // checked with stand-in bounds; filled later
  }
  *trial.mutable_train()->mutable_schedule() = ScheduleSpecToProto(built);
  return absl::OkStatus();
}

}  // namespace

int64_t StepsPerEpoch(const v1::RunSpec& run) {
  absl::StatusOr<JobSpec> job = RunSpecFromProto(run);
  return job.ok() ? ::lrtune::StepsPerEpoch(*job) : 0;
}

absl::StatusOr<std::vector<PlannedTrial>> PlanGrid(
    const v1::GridSearchJob& grid, const SpecLimits& limits) {
  LRTUNE_RETURN_IF_ERROR(ValidateRunSpec(grid.run(), "grid.run"));
  LRTUNE_RETURN_IF_ERROR(CheckTrainSpec(grid.train()));
  if (grid.has_range_test()) {
    LRTUNE_RETURN_IF_ERROR(
        ValidateRangeTestSpec(grid.range_test(), "grid.range_test"));
  }
  const v1::GridSpec& spec = grid.grid();
  if (spec.axes_size() < 1 || spec.axes_size() > kMaxAxes) {
    return Invalid("grid.grid.axes",
                   absl::StrCat("must hold 1..", kMaxAxes, " axes, got ",
                                spec.axes_size()));
  }
  const int64_t max_trials =
      spec.has_max_trials() ? spec.max_trials() : kDefaultMaxTrials;
  if (max_trials < 1) {
    return Invalid("grid.grid.max_trials",
                   absl::StrCat("must be >= 1, got ", max_trials));
  }
  if (max_trials > limits.max_trials) {
    return absl::ResourceExhaustedError(
        absl::StrCat("grid.grid.max_trials ", max_trials,
                     " is above this server's limit of ", limits.max_trials));
  }
  if (spec.has_max_parallel() && spec.max_parallel() < 1) {
    return Invalid("grid.grid.max_parallel",
                   absl::StrCat("must be >= 1, got ", spec.max_parallel()));
  }
  const bool mse = grid.run().loss() == v1::LOSS_KIND_MSE;
  if (mse && spec.objective().metric() == v1::OBJECTIVE_METRIC_VAL_ACCURACY) {
    return Invalid("grid.grid.objective.metric",
                   "val_accuracy needs a classification loss; an mse run "
                   "ranks by val_loss");
  }
  std::set<std::string> names;
  int64_t count = 1;
  for (int i = 0; i < spec.axes_size(); ++i) {
    const v1::GridAxis& axis = spec.axes(i);
    const std::string path = absl::StrCat("grid.grid.axes[", i, "]");
    if (axis.axis_case() == v1::GridAxis::AXIS_NOT_SET) {
      return Invalid(path,
                     "must set one of schedules, lr_bounds, budgets, seeds, "
                     "optimizers, batch_sizes");
    }
    const std::string name = AxisName(axis);
    if (name.size() > 64) {
      return Invalid(absl::StrCat(path, ".name"), "must be 1..64 characters");
    }
    if (!names.insert(name).second) {
      return Invalid(
          absl::StrCat(path, ".name"),
          absl::StrCat("\"", name, "\" names two axes; give one a name"));
    }
    const int n = AxisSize(axis);
    if (n < 1 || n > kMaxAxisValues) {
      return Invalid(path, absl::StrCat("must hold 1..", kMaxAxisValues,
                                        " values, got ", n));
    }
    std::string values_path = path;
    for (int j = 0; j < n; ++j) {
      LRTUNE_RETURN_IF_ERROR(
          CheckAxisValue(axis, j, absl::StrCat(path, ".values[", j, "]")));
      if (axis.has_lr_bounds() &&
          axis.lr_bounds().values(j).has_recommended() &&
          !grid.has_range_test()) {
        return Invalid(absl::StrCat(path, ".values[", j, "].recommended"),
                       "needs grid.range_test: the recommended bounds come "
                       "from a range test run first in the same job");
      }
    }
    LRTUNE_RETURN_IF_ERROR(CheckDistinct(axis, path));
    count *= n;
    if (count > max_trials) {
      int64_t total = 1;
      for (const v1::GridAxis& a : spec.axes()) total *= AxisSize(a);
      return Invalid(
          "grid.grid.max_trials",
          absl::StrCat("is ", max_trials, ", but the grid has ", total,
                       " trials (the product of its axes' "
                       "sizes); raise it or drop values"));
    }
  }

  int lr_axes = 0;
  for (const v1::GridAxis& a : spec.axes()) lr_axes += a.has_lr_bounds();
  if (lr_axes > 1) {
    return Invalid("grid.grid.axes", "at most one lr_bounds axis");
  }

  std::vector<PlannedTrial> trials;
  trials.reserve(static_cast<size_t>(count));
  for (int64_t index = 0; index < count; ++index) {
    std::vector<int> pos(spec.axes_size());
    int64_t rest = index;
    for (int a = spec.axes_size(); a-- > 0;) {
      pos[a] = static_cast<int>(rest % AxisSize(spec.axes(a)));
      rest /= AxisSize(spec.axes(a));
    }
    PlannedTrial planned;
    v1::Trial& t = planned.trial;
    t.set_trial_index(static_cast<int32_t>(index));
    t.set_state(v1::TRIAL_STATE_PENDING);
    *t.mutable_run() = grid.run();
    *t.mutable_train() = grid.train();
    v1::ScheduleSpec schedule = grid.train().schedule();
    std::optional<GridBounds> bounds;
    std::vector<std::string> label;
    for (int a = 0; a < spec.axes_size(); ++a) {
      const v1::GridAxis& axis = spec.axes(a);
      const int j = pos[a];
      t.mutable_choice()->add_value_index(j);
      std::string text;
      switch (axis.axis_case()) {
        case v1::GridAxis::kSchedules: {
          const v1::ScheduleSpec& v = axis.schedules().values(j);
          if (v.kind() != v1::SCHEDULE_KIND_UNSPECIFIED &&
              v.kind() != schedule.kind()) {
            schedule = v;  // another kind: the base's parameters do not apply
          } else {
            Override(schedule, v);
          }
          std::string kind = "?";
          if (schedule.kind() > v1::SCHEDULE_KIND_UNSPECIFIED &&
              schedule.kind() <= v1::SCHEDULE_KIND_SEQUENTIAL) {
            kind = std::string(ScheduleKindName(static_cast<ScheduleKind>(
                static_cast<int>(schedule.kind()) - 1)));
          }
          text = WithParams(kind, SetFields(v, {"kind"}));
          break;
        }
        case v1::GridAxis::kLrBounds: {
          const v1::LrBounds& b = axis.lr_bounds().values(j);
          if (b.has_recommended()) {
            bounds = GridBounds::Recommended();
            planned.needs_bounds = true;
          } else {
            bounds = GridBounds::Fixed(b.explicit_bounds().min_lr(),
                                       b.explicit_bounds().max_lr());
          }
          text = BoundsText(b);
          break;
        }
        case v1::GridAxis::kBudgets: {
          const v1::Budget& b = axis.budgets().values(j);
          if (b.has_epochs()) {
            t.mutable_train()->set_epochs(b.epochs());
            text = absl::StrCat(b.epochs(), "epochs");
          } else {
            t.mutable_train()->set_steps(b.steps());
            text = absl::StrCat(b.steps(), "steps");
          }
          break;
        }
        case v1::GridAxis::kSeeds:
          t.mutable_run()->set_seed(axis.seeds().values(j));
          text = absl::StrCat(axis.seeds().values(j));
          break;
        case v1::GridAxis::kOptimizers: {
          const v1::OptimizerSpec& v = axis.optimizers().values(j);
          Override(*t.mutable_run()->mutable_optimizer(), v);
          const v1::OptimizerKind k = t.run().optimizer().kind();
          const std::string kind =
              k == v1::OPTIMIZER_KIND_UNSPECIFIED
                  ? "sgd"
                  : EnumSuffix(
                        v1::OptimizerKind_descriptor()->FindValueByNumber(k),
                        "OPTIMIZER_KIND_");
          text = WithParams(kind, SetFields(v, {"kind"}));
          break;
        }
        case v1::GridAxis::kBatchSizes:
          t.mutable_run()->set_batch_size(axis.batch_sizes().values(j));
          text = absl::StrCat(axis.batch_sizes().values(j));
          break;
        case v1::GridAxis::AXIS_NOT_SET:
          break;
      }
      label.push_back(absl::StrCat(AxisName(axis), "=", text));
    }
    t.set_label(absl::StrJoin(label, " "));
    const std::string where =
        absl::StrCat("grid: trial ", index, " (", t.label(), ")");
    LRTUNE_RETURN_IF_ERROR(Prefixed(where, ValidateRunSpec(t.run(), "run")));
    const int64_t per_epoch = StepsPerEpoch(t.run());
    int64_t steps = 0;
    if (t.train().has_steps()) {
      steps = t.train().steps();
    } else if (t.train().has_epochs()) {
      if (per_epoch < 1) {
        return Invalid(where,
                       "an epoch budget needs a data set of known size; "
                       "give the budget in steps");
      }
      if (t.train().epochs() > kMaxTrialSteps / per_epoch) {
        return Invalid(where, absl::StrCat("budget: ", t.train().epochs(),
                                           " epochs are more than ",
                                           kMaxTrialSteps, " steps"));
      }
      steps = t.train().epochs() * per_epoch;
    } else {
      return Invalid(where,
                     "has no budget: set grid.train.epochs or steps, or a "
                     "budgets axis");
    }
    if (steps > kMaxTrialSteps) {
      return Invalid(where, absl::StrCat("budget: ", steps,
                                         " steps, more than ", kMaxTrialSteps));
    }
    t.mutable_train()->set_steps(steps);
    *t.mutable_train()->mutable_schedule() = schedule;
    LRTUNE_RETURN_IF_ERROR(
        Prefixed(where, CompleteSchedule(schedule, bounds ? &*bounds : nullptr,
                                         steps, per_epoch, t)));
    trials.push_back(std::move(planned));
  }
  return trials;
}

absl::Status FillRecommendedBounds(const v1::GridSearchJob& grid,
                                   const v1::Recommendation& recommendation,
                                   v1::Trial& trial) {
  double scale = 1.0;
  bool found = false;
  const v1::GridSpec& spec = grid.grid();
  for (int a = 0; a < spec.axes_size() && a < trial.choice().value_index_size();
       ++a) {
    if (!spec.axes(a).has_lr_bounds()) continue;
    const int j = trial.choice().value_index(a);
    if (j < 0 || j >= spec.axes(a).lr_bounds().values_size()) break;
    const v1::LrBounds& b = spec.axes(a).lr_bounds().values(j);
    if (b.has_recommended()) {
      found = true;
      if (b.recommended().has_scale()) scale = b.recommended().scale();
    }
  }
  const std::string where =
      absl::StrCat("trial ", trial.trial_index(), " (", trial.label(), ")");
  if (!found) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, " does not use the recommended bounds"));
  }
  const double lo = recommendation.min_lr() * scale;
  const double hi = recommendation.max_lr() * scale;
  if (!(lo > 0) || !(hi >= lo) || !std::isfinite(hi)) {
    return Invalid(
        where,
        absl::StrFormat("cannot run: the range test gave no "
                        "recommended bounds (min_lr %g, max_lr %g)",
                        recommendation.min_lr(), recommendation.max_lr()));
  }
  const GridBounds bounds = GridBounds::Fixed(lo, hi);
  v1::Trial filled = trial;
  LRTUNE_RETURN_IF_ERROR(Prefixed(
      where,
      CompleteSchedule(trial.train().schedule(), &bounds, trial.train().steps(),
                       StepsPerEpoch(trial.run()), filled)));
  trial = std::move(filled);
  return absl::OkStatus();
}

v1::ObjectiveMetric EffectiveMetric(const v1::GridSearchJob& grid) {
  const v1::ObjectiveMetric m = grid.grid().objective().metric();
  if (m != v1::OBJECTIVE_METRIC_UNSPECIFIED) return m;
  return grid.run().loss() == v1::LOSS_KIND_MSE
             ? v1::OBJECTIVE_METRIC_VAL_LOSS
             : v1::OBJECTIVE_METRIC_VAL_ACCURACY;
}

std::optional<double> ObjectiveValue(const v1::GridSearchJob& grid,
                                     const v1::TrialTaskResult& result) {
  const v1::Evaluation& e = grid.grid().objective().use_best()
                                ? result.best_eval()
                                : result.final_eval();
  if (EffectiveMetric(grid) == v1::OBJECTIVE_METRIC_VAL_LOSS) {
    return e.val_loss();
  }
  if (!e.has_val_accuracy()) return std::nullopt;
  return e.val_accuracy();
}

std::vector<int32_t> RankByObjective(
    const v1::GridSearchJob& grid,
    const std::vector<std::pair<int32_t, double>>& values) {
  std::vector<TrialResult> results;
  const bool loss = EffectiveMetric(grid) == v1::OBJECTIVE_METRIC_VAL_LOSS;
  for (const auto& [index, value] : values) {
    TrialResult r;
    r.trial_index = index;
    r.succeeded = true;
    (loss ? r.val_loss : r.val_accuracy) = value;
    results.push_back(r);
  }
  const std::vector<int64_t> ranks =
      RankTrials(results, loss ? Objective::kValLoss : Objective::kValAccuracy);
  std::vector<int32_t> order(values.size());
  for (size_t i = 0; i < ranks.size(); ++i) {
    order[static_cast<size_t>(ranks[i] - 1)] = values[i].first;
  }
  return order;
}

}  // namespace lrtune::server
