// PlanGrid and what it needs; see grid_plan.h. The planning is core's
// (core/grid.h PlanGrid); this file converts the job's protos to core's
// GridPlan and the planned trials back, checks what only the protos can
// say, and ranks finished trials.
#include "server/grid_plan.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/grid.h"
#include "core/status_macros.h"
#include "proto/core_convert.h"

namespace lrtune::server {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

constexpr int kDefaultMaxTrials = 64;

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

// An enum's value prefix: "ANNEAL_" for Anneal, "RAMP_SHAPE_" for
// RampShape.
std::string EnumPrefix(const google::protobuf::EnumDescriptor& type) {
  std::string prefix;
  for (char c : type.name()) {
    if (absl::ascii_isupper(c) && !prefix.empty()) prefix += '_';
    prefix += absl::ascii_toupper(c);
  }
  return prefix + "_";
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
        case FieldDescriptor::CPPTYPE_ENUM:
          text = EnumSuffix(r->GetEnum(m, f), EnumPrefix(*f->enum_type()));
          break;
        default:
          text = "?";
      }
    }
    out[f->name()] = text;
  }
  return out;
}

// Writes fields as SetFields gives them (name -> text) into `m`: the
// inverse of SetFields, for the fields that function writes.
absl::Status SetFromFields(const std::map<std::string, std::string>& fields,
                           Message& m) {
  const auto* d = m.GetDescriptor();
  const auto* r = m.GetReflection();
  for (const auto& [name, text] : fields) {
    const FieldDescriptor* f = d->FindFieldByName(name);
    bool ok = f != nullptr;
    if (ok && f->is_repeated()) {
      for (absl::string_view item : absl::StrSplit(text, ',')) {
        int64_t v = 0;
        ok = ok && f->cpp_type() == FieldDescriptor::CPPTYPE_INT64 &&
             absl::SimpleAtoi(item, &v);
        if (ok) r->AddInt64(&m, f, v);
      }
    } else if (ok) {
      switch (f->cpp_type()) {
        case FieldDescriptor::CPPTYPE_DOUBLE: {
          double v = 0;
          ok = absl::SimpleAtod(text, &v);
          if (ok) r->SetDouble(&m, f, v);
          break;
        }
        case FieldDescriptor::CPPTYPE_INT64: {
          int64_t v = 0;
          ok = absl::SimpleAtoi(text, &v);
          if (ok) r->SetInt64(&m, f, v);
          break;
        }
        case FieldDescriptor::CPPTYPE_INT32: {
          int32_t v = 0;
          ok = absl::SimpleAtoi(text, &v);
          if (ok) r->SetInt32(&m, f, v);
          break;
        }
        case FieldDescriptor::CPPTYPE_BOOL:
          ok = text == "true" || text == "false";
          if (ok) r->SetBool(&m, f, text == "true");
          break;
        case FieldDescriptor::CPPTYPE_ENUM: {
          const auto* v = f->enum_type()->FindValueByName(
              EnumPrefix(*f->enum_type()) + absl::AsciiStrToUpper(text));
          ok = v != nullptr;
          if (ok) r->SetEnum(&m, f, v);
          break;
        }
        default:
          ok = false;
      }
    }
    if (!ok) {
      return absl::InternalError(
          absl::StrCat(m.GetDescriptor()->name(), ".", name, ": '", text,
                       "' does not go back into the message"));
    }
  }
  return absl::OkStatus();
}

// A schedule message as core's AxisValue (its kind by core's name, "" when
// unset). `where` names it in errors.
absl::StatusOr<AxisValue> ScheduleValue(const v1::ScheduleSpec& s,
                                        const std::string& where) {
  AxisValue v;
  if (s.kind() != v1::SCHEDULE_KIND_UNSPECIFIED) {
    LRTUNE_ASSIGN_OR_RETURN(
        ScheduleKind kind,
        ScheduleKindFromProto(s.kind(), absl::StrCat(where, ".kind")));
    v.kind = std::string(ScheduleKindName(kind));
  }
  if (s.children_size() > 0 || s.boundaries_size() > 0) {
    return Invalid(where,
                   "children/boundaries: a trial trains under one profile, "
                   "not a sequential schedule");
  }
  v.params = SetFields(s, {"kind"});
  return v;
}

AxisValue OptimizerValue(const v1::OptimizerSpec& o) {
  AxisValue v;
  if (o.kind() != v1::OPTIMIZER_KIND_UNSPECIFIED) {
    v.kind =
        EnumSuffix(v1::OptimizerKind_descriptor()->FindValueByNumber(o.kind()),
                   "OPTIMIZER_KIND_");
  }
  v.params = SetFields(o, {"kind"});
  return v;
}

// The job's grid as core's GridPlan; checks what only the protos can say
// (an axis or a value that sets nothing).
absl::StatusOr<GridPlan> ToGridPlan(const v1::GridSearchJob& grid) {
  GridPlan plan;
  LRTUNE_ASSIGN_OR_RETURN(plan.run, RunSpecFromProto(grid.run()));
  plan.optimizer = OptimizerValue(grid.run().optimizer());
  LRTUNE_ASSIGN_OR_RETURN(plan.schedule, ScheduleValue(grid.train().schedule(),
                                                       "grid.train.schedule"));
  if (grid.train().has_epochs()) {
    plan.budget = GridBudget::Epochs(grid.train().epochs());
    plan.has_budget = true;
  } else if (grid.train().has_steps()) {
    plan.budget = GridBudget::Steps(grid.train().steps());
    plan.has_budget = true;
  }
  plan.has_range_test = grid.has_range_test();
  const v1::GridSpec& spec = grid.grid();
  plan.max_trials =
      spec.has_max_trials() ? spec.max_trials() : kDefaultMaxTrials;
  for (int i = 0; i < spec.axes_size(); ++i) {
    const v1::GridAxis& a = spec.axes(i);
    const std::string path = absl::StrCat("grid.grid.axes[", i, "]");
    GridAxis axis;
    axis.name = a.name();
    switch (a.axis_case()) {
      case v1::GridAxis::kSchedules:
        axis.kind = GridAxis::Kind::kSchedules;
        for (int j = 0; j < a.schedules().values_size(); ++j) {
          LRTUNE_ASSIGN_OR_RETURN(
              AxisValue v,
              ScheduleValue(a.schedules().values(j),
                            absl::StrCat(path, ".values[", j, "]")));
          axis.schedules.push_back(std::move(v));
        }
        break;
      case v1::GridAxis::kLrBounds:
        axis.kind = GridAxis::Kind::kLrBounds;
        for (int j = 0; j < a.lr_bounds().values_size(); ++j) {
          const v1::LrBounds& b = a.lr_bounds().values(j);
          if (b.has_recommended()) {
            axis.lr_bounds.push_back(GridBounds::Recommended(
                b.recommended().has_scale() ? b.recommended().scale() : 1.0));
          } else if (b.has_explicit_bounds()) {
            axis.lr_bounds.push_back(GridBounds::Fixed(
                b.explicit_bounds().min_lr(), b.explicit_bounds().max_lr()));
          } else {
            return Invalid(absl::StrCat(path, ".values[", j, "]"),
                           "must set explicit_bounds or recommended");
          }
        }
        break;
      case v1::GridAxis::kBudgets:
        axis.kind = GridAxis::Kind::kBudgets;
        for (int j = 0; j < a.budgets().values_size(); ++j) {
          const v1::Budget& b = a.budgets().values(j);
          if (b.value_case() == v1::Budget::VALUE_NOT_SET) {
            return Invalid(absl::StrCat(path, ".values[", j, "]"),
                           "must set epochs or steps");
          }
          axis.budgets.push_back(b.has_epochs() ? GridBudget::Epochs(b.epochs())
                                                : GridBudget::Steps(b.steps()));
        }
        break;
      case v1::GridAxis::kSeeds:
        axis.kind = GridAxis::Kind::kSeeds;
        axis.seeds.assign(a.seeds().values().begin(), a.seeds().values().end());
        break;
      case v1::GridAxis::kOptimizers:
        axis.kind = GridAxis::Kind::kOptimizers;
        for (const v1::OptimizerSpec& o : a.optimizers().values()) {
          axis.optimizers.push_back(OptimizerValue(o));
        }
        break;
      case v1::GridAxis::kBatchSizes:
        axis.kind = GridAxis::Kind::kBatchSizes;
        axis.batch_sizes.assign(a.batch_sizes().values().begin(),
                                a.batch_sizes().values().end());
        break;
      case v1::GridAxis::AXIS_NOT_SET:
        return Invalid(path,
                       "must set one of schedules, lr_bounds, budgets, seeds, "
                       "optimizers, batch_sizes");
    }
    plan.axes.push_back(std::move(axis));
  }
  return plan;
}

// The base's own fields (point_every, the evaluation cadence, early
// stopping, snapshots, ...) by core's rules, in the request's names. Its
// schedule and budget are for the axes to complete: a stand-in fills them
// here (a budget that is set is checked as it is).
absl::Status CheckTrainSpec(const v1::TrainSpec& t) {
  v1::TrainSpec base = t;
  base.mutable_schedule()->Clear();
  base.mutable_schedule()->set_kind(v1::SCHEDULE_KIND_CONSTANT);
  if (base.budget_case() == v1::TrainSpec::BUDGET_NOT_SET) base.set_steps(1);
  return TrainSpecFromProto(base, PrefixNames("grid.train.")).status();
}

// Completes `trial.train.schedule` from `merged` (the trial's schedule as it
// sets it) with `bounds` over the trial's budget, by core's rule.
absl::Status CompleteSchedule(const v1::ScheduleSpec& merged,
                              const GridBounds* bounds, int64_t budget_steps,
                              int64_t steps_per_epoch, v1::Trial& trial) {
  LRTUNE_ASSIGN_OR_RETURN(GridSchedule schedule,
                          ScheduleValue(merged, "train.schedule"));
  if (schedule.kind.empty()) {
    return Invalid("train.schedule.kind", "must be set");
  }
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

absl::StatusOr<std::optional<PruningOptions>> PruningOf(
    const v1::GridSpec& spec) {
  const v1::Pruning& p = spec.pruning();
  switch (p.kind()) {
    case v1::PRUNING_KIND_UNSPECIFIED:
      if (p.has_reduction_factor() || p.has_min_fraction() ||
          p.has_min_steps()) {
        return Invalid("grid.grid.pruning.kind",
                       "must be set (successive_halving) when the pruning's "
                       "options are");
      }
      return std::nullopt;
    case v1::PRUNING_KIND_SUCCESSIVE_HALVING:
      break;
    default:
      return Invalid("grid.grid.pruning.kind",
                     absl::StrCat("is not a known value: ", p.kind()));
  }
  PruningOptions options;
  if (p.has_reduction_factor()) options.reduction_factor = p.reduction_factor();
  options.min_fraction =
      p.has_min_fraction()
          ? p.min_fraction()
          : 1.0 / (options.reduction_factor * options.reduction_factor);
  if (p.has_min_steps()) options.min_steps = p.min_steps();
  LRTUNE_RETURN_IF_ERROR(
      ValidatePruning(options, PrefixNames("grid.grid.pruning.")));
  return options;
}

bool IsPruned(const v1::Trial& trial) {
  return std::any_of(trial.rungs().begin(), trial.rungs().end(),
                     [](const v1::RungResult& r) { return !r.promoted(); });
}

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
  if (spec.has_max_trials() && spec.max_trials() > limits.max_trials) {
    return absl::ResourceExhaustedError(
        absl::StrCat("grid.grid.max_trials ", spec.max_trials(),
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
  LRTUNE_ASSIGN_OR_RETURN(std::optional<PruningOptions> pruning,
                          PruningOf(spec));
  LRTUNE_ASSIGN_OR_RETURN(GridPlan plan, ToGridPlan(grid));
  GridNames names;
  names.grid = "grid.grid.";
  names.train = "grid.train.";
  names.range_test = "grid.range_test";
  names.run = "run.";
  names.trial = "grid: ";
  LRTUNE_ASSIGN_OR_RETURN(std::vector<lrtune::PlannedTrial> planned,
                          lrtune::PlanGrid(plan, names));
  std::vector<PlannedTrial> trials;
  trials.reserve(planned.size());
  for (lrtune::PlannedTrial& p : planned) {
    PlannedTrial out;
    out.needs_bounds = p.needs_bounds;
    v1::Trial& t = out.trial;
    t.set_trial_index(static_cast<int32_t>(p.index));
    t.set_state(v1::TRIAL_STATE_PENDING);
    for (int j : p.choice) t.mutable_choice()->add_value_index(j);
    t.set_label(p.label);
    *t.mutable_run() = grid.run();
    t.mutable_run()->set_seed(p.run.seed);
    t.mutable_run()->set_batch_size(p.run.batch_size);
    v1::OptimizerSpec& optimizer = *t.mutable_run()->mutable_optimizer();
    optimizer.Clear();
    if (!p.optimizer.kind.empty()) {
      optimizer.set_kind(OptimizerKindToProto(p.run.optimizer.kind));
    }
    LRTUNE_RETURN_IF_ERROR(SetFromFields(p.optimizer.params, optimizer));
    *t.mutable_train() = grid.train();
    t.mutable_train()->set_steps(p.steps);
    v1::ScheduleSpec& schedule = *t.mutable_train()->mutable_schedule();
    if (p.needs_bounds) {
      // The schedule as the trial sets it; FillRecommendedBounds completes
      // it once the range test is done.
      schedule.Clear();
      absl::StatusOr<ScheduleKind> kind = ParseScheduleKind(p.schedule.kind);
      if (kind.ok()) schedule.set_kind(ScheduleKindToProto(*kind));
      LRTUNE_RETURN_IF_ERROR(SetFromFields(p.schedule.params, schedule));
    } else {
      schedule = ScheduleSpecToProto(p.completed);
    }
    if (pruning.has_value()) {
      // The rungs follow the schedule's cycles, which the bounds do not
      // move: the stand-in bounds' schedule gives them too.
      LRTUNE_ASSIGN_OR_RETURN(Schedule built, Schedule::Create(p.completed));
      t.set_pruning_group(PruningGroup(built, p.steps));
      t.mutable_train()->clear_rung_steps();
      for (int64_t step : RungSteps(built, p.steps, *pruning)) {
        t.mutable_train()->add_rung_steps(step);
      }
    }
    trials.push_back(std::move(out));
  }
  return trials;
}

std::vector<int> PrunedLeaseOrder(const v1::GridSearchJob& grid,
                                  const std::vector<PlannedTrial>& trials) {
  const v1::GridSpec& spec = grid.grid();
  std::vector<double> distance(trials.size(), 0.0);
  for (size_t t = 0; t < trials.size(); ++t) {
    const v1::TrialChoice& choice = trials[t].trial.choice();
    for (int a = 0; a < spec.axes_size() && a < choice.value_index_size();
         ++a) {
      if (!spec.axes(a).has_lr_bounds()) continue;
      const auto& values = spec.axes(a).lr_bounds().values();
      const int j = choice.value_index(a);
      if (j < 0 || j >= values.size()) continue;
      const v1::LrBounds& b = values.Get(j);
      if (b.has_recommended()) {
        const double scale =
            b.recommended().has_scale() ? b.recommended().scale() : 1.0;
        if (scale > 0.0) distance[t] += std::abs(std::log2(scale));
      } else {
        distance[t] += std::abs(j - (values.size() - 1) / 2.0);
      }
    }
  }
  std::vector<int> order(trials.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int x, int y) { return distance[x] < distance[y]; });
  return order;
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
