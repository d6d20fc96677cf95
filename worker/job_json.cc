#include "worker/job_json.h"

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "core/recommendation_format.h"
#include "core/schedule_params.h"
#include "core/status_macros.h"
#include "nlohmann/json.hpp"

namespace lrtune::engine {
namespace {

using json = nlohmann::json;

// Reads the keys of one JSON object, remembering which were used so that
// Finish() can reject unknown ones. Errors name the full key path.
class ObjectReader {
 public:
  ObjectReader(const json& obj, std::string path)
      : obj_(obj), path_(std::move(path)) {}

  absl::Status Check() const {
    if (!obj_.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Name(""), ": expected an object"));
    }
    return absl::OkStatus();
  }

  const json* Find(const std::string& key) {
    used_.insert(key);
    auto it = obj_.find(key);
    return it == obj_.end() ? nullptr : &*it;
  }

  template <typename T>
  absl::Status Get(const std::string& key, T* out) {
    const json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if constexpr (std::is_same_v<T, bool>) {
      if (!v->is_boolean()) return TypeError(key, "a boolean");
    } else if constexpr (std::is_integral_v<T>) {
      if (!v->is_number_integer()) return TypeError(key, "an integer");
      if (std::is_unsigned_v<T> && v->is_number_unsigned() == false &&
          v->get<int64_t>() < 0) {
        return TypeError(key, "a non-negative integer");
      }
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!v->is_number()) return TypeError(key, "a number");
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!v->is_string()) return TypeError(key, "a string");
    } else {  // std::vector<...>
      if (!v->is_array()) return TypeError(key, "an array");
      using E = typename T::value_type;
      for (const json& e : *v) {
        if (std::is_integral_v<E> ? !e.is_number_integer() : !e.is_number()) {
          return TypeError(key, std::is_integral_v<E> ? "an array of integers"
                                                      : "an array of numbers");
        }
      }
    }
    *out = v->get<T>();
    return absl::OkStatus();
  }

  absl::Status Finish() const {
    for (auto it = obj_.begin(); it != obj_.end(); ++it) {
      if (used_.count(it.key()) == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(Name(it.key()), ": unknown key"));
      }
    }
    return absl::OkStatus();
  }

  std::string Name(const std::string& key) const {
    if (path_.empty()) return key;
    return key.empty() ? path_ : absl::StrCat(path_, ".", key);
  }

 private:
  absl::Status TypeError(const std::string& key, const char* what) const {
    return absl::InvalidArgumentError(
        absl::StrCat(Name(key), ": expected ", what));
  }

  const json& obj_;
  std::string path_;
  std::set<std::string> used_;
};

absl::Status ParseSchedule(const json& j, const std::string& path,
                           ScheduleSpec* spec) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": expected an object"));
  }
  // "kind" first: later keys may depend on it (e.g. "mode").
  std::vector<std::string> keys;
  if (j.contains("kind")) keys.push_back("kind");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() != "kind") keys.push_back(it.key());
  }
  for (const std::string& key : keys) {
    const json& v = j.at(key);
    if (key == "children") {
      if (!v.is_array()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ".children: expected an array"));
      }
      spec->children.clear();
      for (size_t i = 0; i < v.size(); ++i) {
        ScheduleSpec child;
        LRTUNE_RETURN_IF_ERROR(ParseSchedule(
            v[i], absl::StrCat(path, ".children[", i, "]"), &child));
        spec->children.push_back(std::move(child));
      }
      continue;
    }
    std::string text;
    if (v.is_string()) {
      text = v.get<std::string>();
    } else if (v.is_boolean()) {
      text = v.get<bool>() ? "true" : "false";
    } else if (v.is_number()) {
      text = v.dump();
    } else if (v.is_array()) {
      std::vector<std::string> parts;
      for (const json& e : v) parts.push_back(e.dump());
      text = absl::StrJoin(parts, ",");
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ".", key, ": unsupported value ", v.dump()));
    }
    absl::Status st = SetScheduleParam(*spec, key, text);
    if (!st.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", st.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseModel(const json& j, const std::string& base_dir,
                        ModelSpec* m) {
  ObjectReader r(j, "model");
  LRTUNE_RETURN_IF_ERROR(r.Check());
  std::string kind = ModelKindName(m->kind);
  LRTUNE_RETURN_IF_ERROR(r.Get("kind", &kind));
  LRTUNE_ASSIGN_OR_RETURN(m->kind, ParseModelKind(kind, PrefixNames("")));
  LRTUNE_RETURN_IF_ERROR(r.Get("hidden", &m->hidden));
  std::string path;
  LRTUNE_RETURN_IF_ERROR(r.Get("torchscript_path", &path));
  if (!path.empty()) {
    if (path[0] != '/') path = absl::StrCat(base_dir, "/", path);
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      return absl::NotFoundError(
          absl::StrCat("model.torchscript_path: cannot read ", path));
    }
    std::ostringstream bytes;
    bytes << in.rdbuf();
    m->torchscript = bytes.str();
  }
  return r.Finish();
}

absl::Status ParseData(const json& j, DataSpec* d) {
  ObjectReader r(j, "data");
  LRTUNE_RETURN_IF_ERROR(r.Check());
  LRTUNE_RETURN_IF_ERROR(r.Get("name", &d->name));
  LRTUNE_RETURN_IF_ERROR(r.Get("subset", &d->subset));
  LRTUNE_RETURN_IF_ERROR(r.Get("validation_subset", &d->validation_subset));
  LRTUNE_RETURN_IF_ERROR(r.Get("validation_fraction", &d->validation_fraction));
  LRTUNE_RETURN_IF_ERROR(r.Get("split_seed", &d->split_seed));
  LRTUNE_RETURN_IF_ERROR(r.Get("samples", &d->synthetic_samples));
  LRTUNE_RETURN_IF_ERROR(r.Get("classes", &d->synthetic_classes));
  LRTUNE_RETURN_IF_ERROR(r.Get("features", &d->synthetic_features));
  LRTUNE_RETURN_IF_ERROR(r.Get("data_dir", &d->data_dir));
  LRTUNE_RETURN_IF_ERROR(r.Get("x_shape", &d->x_shape));
  LRTUNE_RETURN_IF_ERROR(r.Get("x", &d->x));
  LRTUNE_RETURN_IF_ERROR(r.Get("y_labels", &d->y_labels));
  LRTUNE_RETURN_IF_ERROR(r.Get("y_targets", &d->y_targets));
  LRTUNE_RETURN_IF_ERROR(r.Get("y_target_width", &d->y_target_width));
  return r.Finish();
}

absl::Status ParseOptimizer(const json& j, OptimizerSpec* o) {
  ObjectReader r(j, "optimizer");
  LRTUNE_RETURN_IF_ERROR(r.Check());
  std::string kind = OptimizerKindName(o->kind);
  LRTUNE_RETURN_IF_ERROR(r.Get("kind", &kind));
  LRTUNE_ASSIGN_OR_RETURN(o->kind, ParseOptimizerKind(kind, PrefixNames("")));
  LRTUNE_RETURN_IF_ERROR(r.Get("momentum", &o->momentum));
  LRTUNE_RETURN_IF_ERROR(r.Get("nesterov", &o->nesterov));
  LRTUNE_RETURN_IF_ERROR(r.Get("weight_decay", &o->weight_decay));
  LRTUNE_RETURN_IF_ERROR(r.Get("beta1", &o->beta1));
  LRTUNE_RETURN_IF_ERROR(r.Get("beta2", &o->beta2));
  LRTUNE_RETURN_IF_ERROR(r.Get("eps", &o->eps));
  LRTUNE_RETURN_IF_ERROR(r.Get("alpha", &o->alpha));
  return r.Finish();
}

absl::Status ParseDevice(const json& j, DeviceOptions* d) {
  ObjectReader r(j, "device");
  LRTUNE_RETURN_IF_ERROR(r.Check());
  LRTUNE_RETURN_IF_ERROR(r.Get("device", &d->device));
  LRTUNE_RETURN_IF_ERROR(r.Get("threads", &d->threads));
  LRTUNE_RETURN_IF_ERROR(r.Get("cuda_graph", &d->cuda_graph));
  bool bf16 = false;  // the older spelling of "precision": "bf16"
  LRTUNE_RETURN_IF_ERROR(r.Get("bf16", &bf16));
  std::string precision = PrecisionName(bf16 ? Precision::kBf16 : d->precision);
  LRTUNE_RETURN_IF_ERROR(r.Get("precision", &precision));
  LRTUNE_ASSIGN_OR_RETURN(d->precision,
                          ParsePrecision(precision, PrefixNames("")));
  if (bf16 && d->precision != Precision::kBf16) {
    return absl::InvalidArgumentError(absl::StrCat(
        "device.bf16 is true but device.precision is ", precision));
  }
  LRTUNE_RETURN_IF_ERROR(r.Get("loss_scale", &d->loss_scale));
  return r.Finish();
}

absl::Status ParseRangeTest(const json& j, RangeTestSpec* s) {
  ObjectReader r(j, "range_test");
  LRTUNE_RETURN_IF_ERROR(r.Check());
  LRTUNE_RETURN_IF_ERROR(r.Get("start_lr", &s->start_lr));
  LRTUNE_RETURN_IF_ERROR(r.Get("end_lr", &s->end_lr));
  LRTUNE_RETURN_IF_ERROR(r.Get("steps", &s->steps));
  std::string shape = RampShapeName(s->shape);
  LRTUNE_RETURN_IF_ERROR(r.Get("shape", &shape));
  LRTUNE_ASSIGN_OR_RETURN(s->shape,
                          ParseRampShape(shape, PrefixNames("range_test.")));
  LRTUNE_RETURN_IF_ERROR(r.Get("smoothing_beta", &s->analysis.smoothing_beta));
  LRTUNE_RETURN_IF_ERROR(
      r.Get("divergence_factor", &s->analysis.divergence_factor));
  LRTUNE_RETURN_IF_ERROR(r.Get("seeds", &s->seeds));
  LRTUNE_RETURN_IF_ERROR(r.Get("eval_every", &s->eval_every));
  LRTUNE_RETURN_IF_ERROR(r.Get("eval_samples", &s->eval_samples));
  LRTUNE_RETURN_IF_ERROR(r.Get("pack_seeds", &s->pack_seeds));
  std::string metric = RangeMetricName(s->metric);
  LRTUNE_RETURN_IF_ERROR(r.Get("metric", &metric));
  LRTUNE_ASSIGN_OR_RETURN(s->metric,
                          ParseRangeMetric(metric, PrefixNames("range_test.")));
  return r.Finish();
}

absl::Status ParseTrain(const json& j, TrainSpec* s) {
  ObjectReader r(j, "train");
  LRTUNE_RETURN_IF_ERROR(r.Check());
  if (const json* sched = r.Find("schedule")) {
    LRTUNE_RETURN_IF_ERROR(
        ParseSchedule(*sched, "train.schedule", &s->schedule));
  }
  LRTUNE_RETURN_IF_ERROR(r.Get("epochs", &s->epochs));
  LRTUNE_RETURN_IF_ERROR(r.Get("steps", &s->steps));
  LRTUNE_RETURN_IF_ERROR(r.Get("point_every", &s->point_every));
  LRTUNE_RETURN_IF_ERROR(r.Get("checkpoint_path", &s->checkpoint_path));
  LRTUNE_RETURN_IF_ERROR(r.Get("checkpoint_every", &s->checkpoint_every));
  LRTUNE_RETURN_IF_ERROR(r.Get("eval_every_steps", &s->eval_every_steps));
  LRTUNE_RETURN_IF_ERROR(r.Get("snapshot_ensemble", &s->snapshot_ensemble));
  LRTUNE_RETURN_IF_ERROR(r.Get("snapshot_dir", &s->snapshot_dir));
  LRTUNE_RETURN_IF_ERROR(r.Get("rung_steps", &s->rung_steps));
  if (const json* stop = r.Find("early_stopping")) {
    EarlyStoppingOptions& e = s->early_stopping;
    ObjectReader er(*stop, "train.early_stopping");
    LRTUNE_RETURN_IF_ERROR(er.Check());
    LRTUNE_RETURN_IF_ERROR(er.Get("patience", &e.patience));
    LRTUNE_RETURN_IF_ERROR(er.Get("min_delta", &e.min_delta));
    LRTUNE_RETURN_IF_ERROR(er.Get("restore_best", &e.restore_best));
    std::string metric = StopMetricName(e.metric);
    LRTUNE_RETURN_IF_ERROR(er.Get("metric", &metric));
    LRTUNE_ASSIGN_OR_RETURN(e.metric,
                            ParseStopMetric(metric, PrefixNames("train.")));
    LRTUNE_RETURN_IF_ERROR(er.Finish());
  }
  return r.Finish();
}

// Finite numbers as numbers, the rest as null.
json Num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

// core renders recommendations for every front end; embed its object.
json RecommendationJson(const Recommendation& r) {
  return json::parse(RecommendationToJson(r));
}

json EvaluationJson(const Evaluation& e) {
  return {{"seed", e.seed_index},
          {"step", e.step},
          {"epoch", e.epoch},
          {"lr", Num(e.lr)},
          {"train_loss", Num(e.train_loss)},
          {"val_loss", Num(e.val_loss)},
          {"val_accuracy", Num(e.val_accuracy)}};
}

}  // namespace

absl::StatusOr<EngineJob> ParseJobJson(const std::string& text,
                                       const std::string& base_dir) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError("job: not valid JSON");
  }
  EngineJob job;
  ObjectReader r(j, "");
  LRTUNE_RETURN_IF_ERROR(r.Check());
  std::string kind;
  LRTUNE_RETURN_IF_ERROR(r.Get("kind", &kind));
  if (kind == "range_test") {
    job.kind = EngineJob::Kind::kRangeTest;
  } else if (kind == "train") {
    job.kind = EngineJob::Kind::kTrain;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("kind must be range_test or train, got \"", kind, "\""));
  }
  JobSpec& s = job.job;
  if (const json* v = r.Find("model")) {
    LRTUNE_RETURN_IF_ERROR(ParseModel(*v, base_dir, &s.model));
  }
  if (const json* v = r.Find("data"))
    LRTUNE_RETURN_IF_ERROR(ParseData(*v, &s.data));
  if (const json* v = r.Find("optimizer")) {
    LRTUNE_RETURN_IF_ERROR(ParseOptimizer(*v, &s.optimizer));
  }
  std::string loss = LossKindName(s.loss);
  LRTUNE_RETURN_IF_ERROR(r.Get("loss", &loss));
  LRTUNE_ASSIGN_OR_RETURN(s.loss, ParseLossKind(loss, PrefixNames("")));
  LRTUNE_RETURN_IF_ERROR(r.Get("batch_size", &s.batch_size));
  LRTUNE_RETURN_IF_ERROR(r.Get("grad_accumulation", &s.grad_accumulation));
  LRTUNE_RETURN_IF_ERROR(r.Get("seed", &s.seed));
  if (const json* v = r.Find("device")) {
    LRTUNE_RETURN_IF_ERROR(ParseDevice(*v, &s.device));
  }
  if (const json* v = r.Find("range_test")) {
    LRTUNE_RETURN_IF_ERROR(ParseRangeTest(*v, &job.range_test));
  }
  if (const json* v = r.Find("train")) {
    LRTUNE_RETURN_IF_ERROR(ParseTrain(*v, &job.train));
  }
  LRTUNE_RETURN_IF_ERROR(r.Finish());
  LRTUNE_RETURN_IF_ERROR(ValidateJob(s));
  if (job.kind == EngineJob::Kind::kRangeTest) {
    // The file holds the analysis options on range_test itself.
    LRTUNE_RETURN_IF_ERROR(
        ValidateRangeTest(job.range_test, [](absl::string_view path) {
          absl::ConsumePrefix(&path, "analysis.");
          return absl::StrCat("range_test.", path);
        }));
  } else {
    LRTUNE_RETURN_IF_ERROR(ValidateTrain(job.train));
  }
  return job;
}

std::string PointToJsonLine(const StepPoint& p) {
  json j = {{"type", "point"},
            {"seed", p.seed_index},
            {"step", p.step},
            {"lr", Num(p.lr)},
            {"loss", Num(p.loss)},
            {"smoothed", Num(p.smoothed)},
            {"elapsed_s", Num(p.elapsed_s)}};
  if (p.momentum) j["momentum"] = Num(*p.momentum);
  if (p.skipped_updates > 0) j["skipped_updates"] = p.skipped_updates;
  return j.dump();
}

std::string EvaluationToJsonLine(const Evaluation& e) {
  json j = EvaluationJson(e);
  j["type"] = "evaluation";
  return j.dump();
}

std::string ProgressToJsonLine(const std::string& message) {
  return json{{"type", "progress"}, {"message", message}}.dump();
}

std::string RangeTestResultToJsonLine(const RangeTestResult& r) {
  json per_seed = json::array();
  for (const Recommendation& rec : r.per_seed) {
    per_seed.push_back(RecommendationJson(rec));
  }
  json evals = json::array();
  for (const Evaluation& e : r.evaluations) evals.push_back(EvaluationJson(e));
  return json{{"type", "result"},
              {"kind", "range_test"},
              {"recommendation", RecommendationJson(r.recommendation)},
              {"per_seed", per_seed},
              {"evaluations", evals},
              {"steps_run", r.steps_run},
              {"train_seconds", Num(r.train_seconds)},
              {"steps_per_s",
               Num(r.train_seconds > 0 ? r.steps_run / r.train_seconds : 0.0)},
              {"device", r.device}}
      .dump();
}

std::string TrainResultToJsonLine(const TrainResult& r) {
  const double done = static_cast<double>(r.steps - r.resumed_from);
  json j{
      {"type", "result"},
      {"kind", "train"},
      {"final", EvaluationJson(r.final_eval)},
      {"best", EvaluationJson(r.best_eval)},
      {"steps", r.steps},
      {"resumed_from", r.resumed_from},
      {"train_seconds", Num(r.train_seconds)},
      {"steps_per_s", Num(r.train_seconds > 0 ? done / r.train_seconds : 0.0)},
      {"device", r.device},
      {"stopped_early", r.stopped_early},
      {"restored_best", r.restored_best},
      {"skipped_updates", r.skipped_updates}};
  if (r.pruned_at_step >= 0) j["pruned_at_step"] = r.pruned_at_step;
  if (r.early_stopping_best) {
    j["early_stopping_best"] = EvaluationJson(*r.early_stopping_best);
  }
  if (!r.snapshots.empty()) {
    json snapshots = json::array();
    for (const SnapshotInfo& s : r.snapshots) {
      snapshots.push_back({{"step", s.step},
                           {"eval", EvaluationJson(s.eval)},
                           {"path", s.path}});
    }
    j["snapshots"] = snapshots;
    j["ensemble"] = EvaluationJson(r.ensemble_eval);
    j["ensemble_size"] = r.ensemble_size;
  }
  return j.dump();
}

std::string ErrorToJsonLine(const absl::Status& status) {
  return json{{"type", "error"},
              {"code", absl::StatusCodeToString(status.code())},
              {"message", std::string(status.message())}}
      .dump();
}

}  // namespace lrtune::engine
