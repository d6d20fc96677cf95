#include "server/spec_convert.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace lrtune::server {
namespace {

absl::Status Invalid(absl::string_view path, absl::string_view field,
                     absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(path, ".", field, " ", rule));
}

bool Finite(double v) { return std::isfinite(v); }

absl::Status ValidateData(const v1::DataSpec& data, std::string path,
                          const SpecLimits& limits) {
  if (data.subset() < 0) {
    return Invalid(path, "subset",
                   absl::StrCat("must be >= 0, got ", data.subset()));
  }
  if (data.validation_subset() < 0) {
    return Invalid(
        path, "validation_subset",
        absl::StrCat("must be >= 0, got ", data.validation_subset()));
  }
  if (data.has_validation_fraction() &&
      !(data.validation_fraction() >= 0 && data.validation_fraction() <= 0.9)) {
    return Invalid(
        path, "validation_fraction",
        absl::StrCat("must be in [0, 0.9], got ", data.validation_fraction()));
  }
  if (data.has_synthetic_samples() && data.synthetic_samples() < 10) {
    return Invalid(
        path, "synthetic_samples",
        absl::StrCat("must be >= 10, got ", data.synthetic_samples()));
  }
  if (data.has_synthetic_classes() && data.synthetic_classes() < 2) {
    return Invalid(
        path, "synthetic_classes",
        absl::StrCat("must be >= 2, got ", data.synthetic_classes()));
  }
  if (data.has_synthetic_features() && data.synthetic_features() < 1) {
    return Invalid(
        path, "synthetic_features",
        absl::StrCat("must be >= 1, got ", data.synthetic_features()));
  }
  if (data.source_case() == v1::DataSpec::kName) {
    // The built-in sets (worker/data.cc); anything else would fail on the
    // worker after a lease, so it is refused here.
    static constexpr absl::string_view kNames[] = {
        "fashion-mnist", "digits",  "iris",  "wine",
        "breast-cancer", "spirals", "blobs", "linear"};
    bool known = false;
    for (absl::string_view n : kNames) known |= data.name() == n;
    if (!known) {
      return Invalid(path, "name",
                     absl::StrCat("must be one of fashion-mnist, digits, "
                                  "iris, wine, breast-cancer, spirals, "
                                  "blobs, linear; got \"",
                                  data.name(), "\""));
    }
  }
  if (data.source_case() != v1::DataSpec::kInlineData) return absl::OkStatus();
  const v1::InlineData& in = data.inline_data();
  const std::string ipath = absl::StrCat(path, ".inline_data");
  if (in.x_shape_size() < 2 || in.x_shape_size() > 5) {
    return Invalid(
        ipath, "x_shape",
        absl::StrCat("must have 2..5 dims, got ", in.x_shape_size()));
  }
  int64_t product = 1;
  for (int i = 0; i < in.x_shape_size(); ++i) {
    if (in.x_shape(i) < 1) {
      return Invalid(ipath, absl::StrCat("x_shape[", i, "]"),
                     absl::StrCat("must be >= 1, got ", in.x_shape(i)));
    }
    if (product > limits.max_inline_floats / in.x_shape(i)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          ipath, " holds more than ", limits.max_inline_floats, " values"));
    }
    product *= in.x_shape(i);
  }
  const int64_t n = in.x_shape(0);
  if (n < 10) {
    return Invalid(ipath, "x_shape[0]",
                   absl::StrCat("(samples) must be >= 10, got ", n));
  }
  if (n > limits.max_inline_samples) {
    return absl::ResourceExhaustedError(absl::StrCat(
        ipath, " holds more than ", limits.max_inline_samples, " samples"));
  }
  if (in.x_size() != product) {
    return Invalid(ipath, "x",
                   absl::StrCat("must hold product(x_shape) = ", product,
                                " values, got ", in.x_size()));
  }
  if ((in.y_labels_size() > 0) == (in.y_targets_size() > 0)) {
    return Invalid(ipath, "y_labels",
                   "and y_targets: exactly one must be non-empty");
  }
  if (in.y_labels_size() > 0) {
    if (in.y_labels_size() != n) {
      return Invalid(
          ipath, "y_labels",
          absl::StrCat("must hold ", n, " labels, got ", in.y_labels_size()));
    }
    for (int i = 0; i < in.y_labels_size(); ++i) {
      if (in.y_labels(i) < 0) {
        return Invalid(ipath, absl::StrCat("y_labels[", i, "]"),
                       absl::StrCat("must be >= 0, got ", in.y_labels(i)));
      }
    }
  } else {
    const int64_t width = in.has_y_target_width() ? in.y_target_width() : 1;
    if (width < 1) {
      return Invalid(ipath, "y_target_width",
                     absl::StrCat("must be >= 1, got ", width));
    }
    if (in.y_targets_size() / width != n || in.y_targets_size() % width != 0) {
      return Invalid(ipath, "y_targets",
                     absl::StrCat("must hold N x y_target_width = ", n * width,
                                  " values, got ", in.y_targets_size()));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateOptimizer(const v1::OptimizerSpec& opt,
                               absl::string_view path) {
  if (!v1::OptimizerKind_IsValid(opt.kind())) {
    return Invalid(path, "kind",
                   absl::StrCat("is not a known optimizer kind: ", opt.kind()));
  }
  if (opt.has_momentum() && !(opt.momentum() >= 0 && Finite(opt.momentum()))) {
    return Invalid(
        path, "momentum",
        absl::StrCat("must be finite and >= 0, got ", opt.momentum()));
  }
  if (opt.has_nesterov() && opt.nesterov() &&
      !(opt.has_momentum() && opt.momentum() > 0)) {
    return Invalid(path, "nesterov", "requires momentum > 0");
  }
  if (opt.has_weight_decay() &&
      !(opt.weight_decay() >= 0 && Finite(opt.weight_decay()))) {
    return Invalid(
        path, "weight_decay",
        absl::StrCat("must be finite and >= 0, got ", opt.weight_decay()));
  }
  for (auto [name, has, value] :
       {std::make_tuple("beta1", opt.has_beta1(), opt.beta1()),
        std::make_tuple("beta2", opt.has_beta2(), opt.beta2()),
        std::make_tuple("alpha", opt.has_alpha(), opt.alpha())}) {
    if (has && !(value >= 0 && value < 1)) {
      return Invalid(path, name,
                     absl::StrCat("must be in [0, 1), got ", value));
    }
  }
  if (opt.has_eps() && !(opt.eps() > 0 && Finite(opt.eps()))) {
    return Invalid(path, "eps",
                   absl::StrCat("must be finite and > 0, got ", opt.eps()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateRunSpec(const v1::RunSpec& run, absl::string_view path,
                             const SpecLimits& limits) {
  const v1::ModelSpec& model = run.model();
  const std::string mpath = absl::StrCat(path, ".model");
  if (model.hidden_size() > 16) {
    return Invalid(
        mpath, "hidden",
        absl::StrCat("must have at most 16 layers, got ", model.hidden_size()));
  }
  for (int i = 0; i < model.hidden_size(); ++i) {
    if (model.hidden(i) < 1 || model.hidden(i) > 65536) {
      return Invalid(
          mpath, absl::StrCat("hidden[", i, "]"),
          absl::StrCat("must be in [1, 65536], got ", model.hidden(i)));
    }
  }
  if (static_cast<int64_t>(model.torchscript().size()) >
      limits.max_torchscript_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        mpath, ".torchscript is ", model.torchscript().size(),
        " bytes, over the limit of ", limits.max_torchscript_bytes));
  }
  const bool is_script = model.kind() == v1::MODEL_KIND_TORCHSCRIPT;
  if (is_script && model.torchscript().empty()) {
    return Invalid(mpath, "torchscript", "is required for kind torchscript");
  }
  if (!is_script && !model.torchscript().empty()) {
    return Invalid(mpath, "torchscript",
                   "must be empty unless kind is torchscript");
  }
  if (!v1::ModelKind_IsValid(model.kind())) {
    return Invalid(mpath, "kind", "is not a known model kind");
  }
  if (!v1::LossKind_IsValid(run.loss())) {
    return Invalid(path, "loss", "is not a known loss kind");
  }
  if (run.has_batch_size() && run.batch_size() < 1) {
    return Invalid(path, "batch_size",
                   absl::StrCat("must be >= 1, got ", run.batch_size()));
  }
  absl::Status s =
      ValidateData(run.data(), absl::StrCat(path, ".data"), limits);
  if (!s.ok()) return s;
  s = ValidateOptimizer(run.optimizer(), absl::StrCat(path, ".optimizer"));
  if (!s.ok()) return s;
  const v1::DeviceOptions& dev = run.device();
  const std::string dpath = absl::StrCat(path, ".device");
  if (dev.threads() < 0 || dev.threads() > 256) {
    return Invalid(dpath, "threads",
                   absl::StrCat("must be in [0, 256], got ", dev.threads()));
  }
  if (dev.min_device_memory_bytes() < 0) {
    return Invalid(
        dpath, "min_device_memory_bytes",
        absl::StrCat("must be >= 0, got ", dev.min_device_memory_bytes()));
  }
  const std::string& d = dev.device();
  const bool cuda_index =
      d.rfind("cuda:", 0) == 0 && d.size() > 5 &&
      d.find_first_not_of("0123456789", 5) == std::string::npos;
  if (!(d.empty() || d == "cpu" || d == "cuda" || d == "auto" || cuda_index)) {
    return Invalid(
        dpath, "device",
        absl::StrCat("must be cpu, cuda, cuda:<i> or auto, got \"", d, "\""));
  }
  return absl::OkStatus();
}

absl::Status ValidateRangeTestSpec(const v1::RangeTestSpec& spec,
                                   absl::string_view path,
                                   const SpecLimits& limits) {
  const double start = spec.has_start_lr() ? spec.start_lr() : 1e-7;
  const double end = spec.has_end_lr() ? spec.end_lr() : 10.0;
  if (!(Finite(start) && start > 0)) {
    return Invalid(path, "start_lr",
                   absl::StrCat("must be finite and > 0, got ", start));
  }
  if (!Finite(end) || !(end > start)) {
    return Invalid(
        path, "end_lr",
        absl::StrCat("(", end, ") must be > start_lr (", start, ")"));
  }
  if (spec.has_steps() && (spec.steps() < 2 || spec.steps() > 1000000)) {
    return Invalid(path, "steps",
                   absl::StrCat("must be in [2, 1000000], got ", spec.steps()));
  }
  if (!v1::RampShape_IsValid(spec.shape())) {
    return Invalid(path, "shape", "is not a known ramp shape");
  }
  const v1::AnalysisOptions& a = spec.analysis();
  const std::string apath = absl::StrCat(path, ".analysis");
  if (a.has_smoothing_beta() &&
      !(a.smoothing_beta() >= 0 && a.smoothing_beta() < 1)) {
    return Invalid(apath, "smoothing_beta",
                   absl::StrCat("must be in [0, 1), got ", a.smoothing_beta()));
  }
  if (a.has_divergence_factor() &&
      !(a.divergence_factor() > 1 && Finite(a.divergence_factor()))) {
    return Invalid(
        apath, "divergence_factor",
        absl::StrCat("must be finite and > 1, got ", a.divergence_factor()));
  }
  if (a.has_skip_head_fraction() &&
      !(a.skip_head_fraction() >= 0 && a.skip_head_fraction() < 0.5)) {
    return Invalid(
        apath, "skip_head_fraction",
        absl::StrCat("must be in [0, 0.5), got ", a.skip_head_fraction()));
  }
  if (a.has_iters_per_epoch() && a.iters_per_epoch() < 0) {
    return Invalid(apath, "iters_per_epoch",
                   absl::StrCat("must be >= 0, got ", a.iters_per_epoch()));
  }
  if (a.has_stepsize_k() && (a.stepsize_k() < 2 || a.stepsize_k() > 10)) {
    return Invalid(apath, "stepsize_k",
                   absl::StrCat("must be in [2, 10], got ", a.stepsize_k()));
  }
  if (spec.seeds_size() > limits.max_seeds) {
    return Invalid(path, "seeds",
                   absl::StrCat("must hold at most ", limits.max_seeds,
                                " seeds, got ", spec.seeds_size()));
  }
  std::set<uint64_t> seen;
  for (int i = 0; i < spec.seeds_size(); ++i) {
    if (!seen.insert(spec.seeds(i)).second) {
      return Invalid(
          path, absl::StrCat("seeds[", i, "]"),
          absl::StrCat("must be distinct; ", spec.seeds(i), " repeats"));
    }
  }
  if (spec.eval_every() < 0) {
    return Invalid(path, "eval_every",
                   absl::StrCat("must be >= 0, got ", spec.eval_every()));
  }
  if (spec.has_eval_samples() && spec.eval_samples() < 1) {
    return Invalid(path, "eval_samples",
                   absl::StrCat("must be >= 1, got ", spec.eval_samples()));
  }
  return absl::OkStatus();
}

absl::Status ValidateSubmitJob(const v1::SubmitJobRequest& request,
                               const SpecLimits& limits) {
  if (request.has_max_attempts() &&
      (request.max_attempts() < 1 ||
       request.max_attempts() > limits.max_attempts_limit)) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_attempts must be in [1, ", limits.max_attempts_limit,
                     "], got ", request.max_attempts()));
  }
  switch (request.spec_case()) {
    case v1::SubmitJobRequest::kRangeTest: {
      absl::Status s =
          ValidateRunSpec(request.range_test().run(), "run", limits);
      if (!s.ok()) return s;
      return ValidateRangeTestSpec(request.range_test().range_test(),
                                   "range_test", limits);
    }
    case v1::SubmitJobRequest::kGrid:
      return absl::OkStatus();  // PlanGrid (grid_plan.h) checks the rest
    case v1::SubmitJobRequest::SPEC_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("spec is required: set range_test or grid");
}

std::vector<uint64_t> RangeTestSeeds(const v1::RangeTestJob& job) {
  if (job.range_test().seeds_size() == 0) return {job.run().seed()};
  return {job.range_test().seeds().begin(), job.range_test().seeds().end()};
}

namespace {

// An MLP's parameter count on its data: the input width and classes of the
// built-in data sets and of inline tensors; nullopt where unknown.
std::optional<int64_t> MlpParameters(const v1::RunSpec& run) {
  const v1::DataSpec& d = run.data();
  int64_t in = 0, out = 0;
  if (d.has_inline_data()) {
    in = 1;
    for (int i = 1; i < d.inline_data().x_shape_size(); ++i) {
      in *= std::max<int64_t>(1, d.inline_data().x_shape(i));
    }
    out = 10;  // labels unknown here: a typical head
  } else {
    const std::string name = d.name().empty() ? "fashion-mnist" : d.name();
    const int64_t classes =
        d.has_synthetic_classes() ? d.synthetic_classes() : 3;
    const int64_t features =
        d.has_synthetic_features() ? d.synthetic_features() : 8;
    if (name == "fashion-mnist") {
      in = 784, out = 10;
    } else if (name == "digits") {
      in = 64, out = 10;
    } else if (name == "iris") {
      in = 4, out = 3;
    } else if (name == "wine") {
      in = 13, out = 3;
    } else if (name == "breast-cancer") {
      in = 30, out = 2;
    } else if (name == "spirals") {
      in = 2, out = classes;
    } else if (name == "blobs") {
      in = features, out = classes;
    } else if (name == "linear") {
      in = features, out = 1;
    } else {
      return std::nullopt;
    }
  }
  std::vector<int64_t> widths = {in};
  if (run.model().hidden_size() == 0) {
    widths.insert(widths.end(), {256, 256});
  } else {
    widths.insert(widths.end(), run.model().hidden().begin(),
                  run.model().hidden().end());
  }
  widths.push_back(out);
  int64_t n = 0;
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    n += widths[i] * widths[i + 1] + widths[i + 1];
  }
  return n;
}

}  // namespace

bool PacksSeeds(const v1::RangeTestJob& job) {
  const v1::RangeTestSpec& rt = job.range_test();
  const v1::ModelKind kind = job.run().model().kind();
  if (rt.seeds_size() < 2 || rt.eval_every() > 0 ||
      (rt.has_pack_seeds() && !rt.pack_seeds())) {
    return false;
  }
  if (kind == v1::MODEL_KIND_CNN) return true;  // ~30k parameters
  if (kind != v1::MODEL_KIND_UNSPECIFIED && kind != v1::MODEL_KIND_MLP) {
    return false;
  }
  // A worker's CPU packs only small models (the engine's PackSeeds): a big
  // MLP not bound to CUDA keeps one task per seed, which several workers
  // run at once.
  const std::string& device = job.run().device().device();
  if (absl::StartsWith(device, "cuda")) return true;
  const std::optional<int64_t> n = MlpParameters(job.run());
  return n.has_value() && *n <= kCpuMaxPackedMlpParameters;
}

int RangeTestTaskCount(const v1::RangeTestJob& job) {
  return PacksSeeds(job) ? 1 : static_cast<int>(RangeTestSeeds(job).size());
}

std::vector<std::string> RangeTestTaskSpecs(const v1::RangeTestJob& job) {
  std::vector<std::string> specs;
  const std::vector<uint64_t> seeds = RangeTestSeeds(job);
  if (PacksSeeds(job)) {
    v1::RangeTestTask task;
    *task.mutable_run() = job.run();
    task.mutable_run()->set_seed(seeds[0]);
    *task.mutable_range_test() = job.range_test();
    task.set_seed_index(0);
    specs.push_back(task.SerializeAsString());
    return specs;
  }
  for (size_t i = 0; i < seeds.size(); ++i) {
    v1::RangeTestTask task;
    *task.mutable_run() = job.run();
    task.mutable_run()->set_seed(seeds[i]);
    *task.mutable_range_test() = job.range_test();
    task.mutable_range_test()->clear_seeds();
    task.mutable_range_test()->add_seeds(seeds[i]);
    task.set_seed_index(static_cast<int>(i));
    specs.push_back(task.SerializeAsString());
  }
  return specs;
}

v1::JobState JobStateToProto(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return v1::JOB_STATE_QUEUED;
    case JobState::kRunning:
      return v1::JOB_STATE_RUNNING;
    case JobState::kSucceeded:
      return v1::JOB_STATE_SUCCEEDED;
    case JobState::kFailed:
      return v1::JOB_STATE_FAILED;
    case JobState::kCancelled:
      return v1::JOB_STATE_CANCELLED;
  }
  return v1::JOB_STATE_UNSPECIFIED;
}

absl::StatusOr<JobState> JobStateFromProto(v1::JobState state) {
  switch (state) {
    case v1::JOB_STATE_QUEUED:
      return JobState::kQueued;
    case v1::JOB_STATE_RUNNING:
      return JobState::kRunning;
    case v1::JOB_STATE_SUCCEEDED:
      return JobState::kSucceeded;
    case v1::JOB_STATE_FAILED:
      return JobState::kFailed;
    case v1::JOB_STATE_CANCELLED:
      return JobState::kCancelled;
    default:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("states: ", static_cast<int>(state), " is not a job state"));
}

std::optional<v1::RecommendedSchedules> RecommendedSchedulesFor(
    const v1::Recommendation& rec) {
  const int64_t stepsize = rec.stepsize_iterations();
  if (!(rec.min_lr() > 0) || !(rec.max_lr() >= rec.min_lr()) || stepsize < 1) {
    return std::nullopt;
  }
  v1::RecommendedSchedules out;
  out.set_total_steps(8 * stepsize);
  v1::ScheduleSpec* tri = out.mutable_triangular();
  tri->set_kind(v1::SCHEDULE_KIND_TRIANGULAR);
  tri->set_base_lr(rec.min_lr());
  tri->set_max_lr(rec.max_lr());
  tri->set_step_size_up(stepsize);
  v1::ScheduleSpec* oc = out.mutable_one_cycle();
  const v1::OneCycleSettings& s = rec.one_cycle();
  oc->set_kind(v1::SCHEDULE_KIND_ONE_CYCLE);
  oc->set_max_lr(s.max_lr() > 0 ? s.max_lr() : rec.max_lr());
  oc->set_total_steps(8 * stepsize);
  if (s.div_factor() > 0) oc->set_div_factor(s.div_factor());
  if (s.final_div_factor() > 0) oc->set_final_div_factor(s.final_div_factor());
  if (s.pct_start() > 0 && s.pct_start() < 1) oc->set_pct_start(s.pct_start());
  if (s.max_momentum() > 0 && s.max_momentum() >= s.base_momentum()) {
    oc->set_base_momentum(s.base_momentum());
    oc->set_max_momentum(s.max_momentum());
  }
  v1::ScheduleSpec* sgdr = out.mutable_sgdr();
  sgdr->set_kind(v1::SCHEDULE_KIND_SGDR);
  sgdr->set_base_lr(rec.max_lr());
  sgdr->set_eta_min(rec.min_lr());
  sgdr->set_t0(2 * stepsize);
  sgdr->set_t_mult(2);
  v1::ScheduleSpec* rex = out.mutable_rex();
  rex->set_kind(v1::SCHEDULE_KIND_REX);
  rex->set_base_lr(rec.max_lr());
  rex->set_eta_min(0);
  rex->set_total_steps(8 * stepsize);
  return out;
}

std::string EventType(const v1::JobEvent& event) {
  switch (event.event_case()) {
    case v1::JobEvent::kPoint:
      return "point";
    case v1::JobEvent::kEvaluation:
      return "evaluation";
    case v1::JobEvent::kTrialStarted:
      return "trial_started";
    case v1::JobEvent::kTrialFinished:
      return "trial_finished";
    case v1::JobEvent::kAttemptEnded:
      return "attempt_ended";
    case v1::JobEvent::kRecommendation:
      return "recommendation";
    case v1::JobEvent::kRanking:
      return "ranking";
    case v1::JobEvent::kAccepted:
      return std::string(kAcceptedEventType);
    case v1::JobEvent::kStateChanged:
      return std::string(kStateEventType);
    case v1::JobEvent::EVENT_NOT_SET:
      break;
  }
  return "unknown";
}

absl::StatusOr<v1::JobEvent> StoredEventToProto(const StoredEvent& event,
                                                const v1::Job& job) {
  v1::JobEvent out;
  if (event.type == kAcceptedEventType) {
    v1::Job* accepted = out.mutable_accepted()->mutable_job();
    *accepted = job;
    accepted->set_state(v1::JOB_STATE_QUEUED);
  } else if (event.type == kStateEventType) {
    static const JobState kStates[] = {JobState::kQueued, JobState::kRunning,
                                       JobState::kSucceeded, JobState::kFailed,
                                       JobState::kCancelled};
    v1::StateChanged* changed = out.mutable_state_changed();
    for (JobState s : kStates) {
      if (JobStateName(s) == event.payload) {
        changed->set_state(JobStateToProto(s));
      }
    }
    if (changed->state() == v1::JOB_STATE_UNSPECIFIED) {
      return absl::DataLossError(absl::StrCat(
          "event ", event.seq, ": unknown state \"", event.payload, "\""));
    }
    if (changed->state() == v1::JOB_STATE_FAILED ||
        changed->state() == v1::JOB_STATE_CANCELLED) {
      changed->set_reason(job.failure());
    }
  } else if (event.type == kAttemptEndedEventType) {
    LRTUNE_ASSIGN_OR_RETURN(auto ended, DecodeAttemptEnded(event.payload));
    v1::AttemptEnded* a = out.mutable_attempt_ended();
    *a->mutable_attempt() = AttemptToProto(ended.first);
    a->set_will_retry(ended.second);
  } else if (!out.ParseFromString(event.payload)) {
    return absl::DataLossError(absl::StrCat("event ", event.seq, " (",
                                            event.type, ") does not parse"));
  }
  out.set_seq(static_cast<uint64_t>(event.seq));
  out.set_job_id(event.job_id);
  const int64_t micros = absl::ToUnixMicros(event.time);
  out.mutable_time()->set_seconds(micros / 1000000);
  out.mutable_time()->set_nanos(static_cast<int32_t>(micros % 1000000) * 1000);
  return out;
}

v1::TaskAttempt AttemptToProto(const AttemptRecord& a) {
  v1::TaskAttempt out;
  out.set_task_id(a.task_id);
  out.set_attempt_id(static_cast<uint64_t>(a.attempt));
  out.set_attempt_number(a.attempt);
  out.set_worker_id(a.worker);
  out.set_device(a.device);
  auto stamp = [](absl::Time t, google::protobuf::Timestamp* ts) {
    const int64_t micros = absl::ToUnixMicros(t);
    ts->set_seconds(micros / 1000000);
    ts->set_nanos(static_cast<int32_t>(micros % 1000000) * 1000);
  };
  if (a.started != absl::UnixEpoch())
    stamp(a.started, out.mutable_start_time());
  switch (a.outcome) {
    case AttemptOutcome::kRunning:
      out.set_outcome(v1::ATTEMPT_OUTCOME_UNSPECIFIED);
      return out;  // no end time
    case AttemptOutcome::kSucceeded:
      out.set_outcome(v1::ATTEMPT_OUTCOME_SUCCEEDED);
      break;
    case AttemptOutcome::kFailed:
      out.set_outcome(v1::ATTEMPT_OUTCOME_FAILED);
      break;
    case AttemptOutcome::kLeaseExpired:
      out.set_outcome(v1::ATTEMPT_OUTCOME_LEASE_EXPIRED);
      break;
    case AttemptOutcome::kReleased:
      out.set_outcome(v1::ATTEMPT_OUTCOME_RELEASED);
      break;
    case AttemptOutcome::kCancelled:
      out.set_outcome(v1::ATTEMPT_OUTCOME_CANCELLED);
      break;
  }
  stamp(a.ended, out.mutable_end_time());
  out.set_reason(a.reason);
  return out;
}

bool IsTerminalEvent(const v1::JobEvent& event) {
  if (!event.has_state_changed()) return false;
  const v1::JobState s = event.state_changed().state();
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED ||
         s == v1::JOB_STATE_CANCELLED;
}

}  // namespace lrtune::server
