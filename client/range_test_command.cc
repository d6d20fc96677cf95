// `lrtune range-test`: flags -> a RangeTestRequest, sent to --server or to
// an embedded coordinator and worker (client/embedded.h); the events become
// a progress line, and the job the recommendation (JSON or text) and CSV.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "client/cli_session.h"
#include "client/commands.h"
#include "client/lrtune_client.h"
#include "client/range_test_report.h"
#include "core/spec.h"
#include "core/status_macros.h"
#include "lrtune/v1/lrtune.pb.h"
#include "proto/core_convert.h"
#ifdef LRTUNE_DATASET_FILES
#include "worker/dataset_files.h"
#endif

namespace lrtune {
namespace {

// The built-in data sets --dataset takes: the classification ones (the CLI
// trains with cross_entropy).
std::string CliDatasetNames(absl::string_view separator) {
  std::vector<std::string> names;
  for (const DatasetInfo& d : Datasets()) {
    if (d.classes >= 0) names.push_back(d.name);
  }
  return absl::StrJoin(names, separator);
}

bool IsCliDataset(const std::string& name) {
  const DatasetInfo* d = FindDataset(name);
  return d != nullptr && d->classes >= 0;
}

absl::Status Invalid(const std::string& message) {
  return absl::InvalidArgumentError(message);
}

absl::Status ReadFile(const std::string& path, const std::string& flag,
                      std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Invalid(absl::StrCat(flag, ": cannot read '", path,
                                "': ", std::strerror(errno)));
  }
  std::ostringstream s;
  s << in.rdbuf();
  *out = s.str();
  return absl::OkStatus();
}

// The spec fields range-test's flags set, by their path in a request: the
// one table behind the CLI's names for the core rules' fields and behind
// the flag a server's error is about.
constexpr std::pair<absl::string_view, absl::string_view> kFlagOfPath[] = {
    {"run.model.kind", "--model"},
    {"run.model.hidden", "--hidden"},
    {"run.model.torchscript", "--model"},
    {"run.data.name", "--dataset"},
    {"run.data.subset", "--subset"},
    {"run.optimizer.kind", "--optimizer"},
    {"run.optimizer.momentum", "--momentum"},
    {"run.optimizer.weight_decay", "--weight-decay"},
    {"run.batch_size", "--batch-size"},
    {"run.grad_accumulation", "--grad-accumulation"},
    {"run.device.precision", "--precision"},
    {"run.device.loss_scale", "--loss-scale"},
    {"run.device.threads", "--threads"},
    {"run.device.device", "--device"},
    {"range_test.start_lr", "--start-lr"},
    {"range_test.end_lr", "--end-lr"},
    {"range_test.steps", "--steps"},
    {"range_test.seeds", "--seeds"},
    {"range_test.shape", "--ramp"},
    {"range_test.analysis.smoothing_beta", "--smoothing"},
    {"range_test.analysis.divergence_factor", "--diverge"},
    {"range_test.metric", "--metric"},
    {"range_test.eval_every", "--eval-every"},
    {"range_test.eval_samples", "--eval-samples"},
    {"range_test.pack_seeds", "--no-pack"},
    {"range_test.budget_epochs", "--budget-epochs"},
};

// A server's message names fields by their path; the user knows the flags.
std::string WithFlag(absl::string_view message) {
  for (const auto& [path, flag] : kFlagOfPath) {
    if (absl::StrContains(message, path)) {
      return absl::StrCat(message, " (", flag, ")");
    }
  }
  return std::string(message);
}

// The CLI's names for a request's fields, `prefix` being the message's
// path ("run.", "range_test."): the flag that sets a field (its elements
// too: seeds[2] is --seeds); an inline --dataset FILE's fields as the
// file's rows and labels; any other field by its request path.
FieldNamer CliNames(const std::string& dataset, std::string prefix) {
  return [dataset, prefix = std::move(prefix)](absl::string_view path) {
    const std::string full = absl::StrCat(prefix, path);
    absl::string_view rest = full;
    if (absl::ConsumePrefix(&rest, "run.data.inline_data")) {
      absl::ConsumePrefix(&rest, ".");
      int64_t row = 0;
      if (absl::ConsumePrefix(&rest, "y_labels[") &&
          absl::ConsumeSuffix(&rest, "]") && absl::SimpleAtoi(rest, &row)) {
        return absl::StrCat("--dataset ", dataset, ": row ", row + 1,
                            "'s label");
      }
      if (rest.empty() || rest == "x_shape[0]") {
        return absl::StrCat("--dataset ", dataset);
      }
      return absl::StrCat("--dataset ", dataset, " (", rest, ")");
    }
    const std::string field = full.substr(0, full.find('['));
    for (const auto& [p, flag] : kFlagOfPath) {
      if (field == p) return std::string(flag);
    }
    return full;
  };
}

// `--dataset` names a file (not a built-in data set) when it has a '/',
// ends in .csv or .csv.gz, or a regular file has that name; otherwise a
// valid name is a data set by reference in the workers' data directory.
bool IsDatasetFile(const std::string& value) {
  struct stat st;
  return absl::StrContains(value, '/') || absl::EndsWith(value, ".csv") ||
         absl::EndsWith(value, ".csv.gz") ||
         (stat(value.c_str(), &st) == 0 && S_ISREG(st.st_mode));
}

// A scikit-learn style CSV file as the request's inline data: x float32
// [N, cols], y int64 class labels.
absl::Status SetInlineDataset(const std::string& path, v1::DataSpec& data) {
#ifdef LRTUNE_DATASET_FILES
  absl::StatusOr<engine::CsvTable> table = engine::ReadSklearnCsv(path);
  if (!table.ok()) {
    return Invalid(
        absl::StrCat("--dataset ", path, ": ", table.status().message()));
  }
  // Its rows, labels and size are checked by core's rules with the
  // request (BuildRangeTestRequest), naming the file.
  v1::InlineData& in = *data.mutable_inline_data();
  in.add_x_shape(table->rows);
  in.add_x_shape(table->cols);
  in.mutable_x()->Assign(table->x.begin(), table->x.end());
  in.mutable_y_labels()->Assign(table->labels.begin(), table->labels.end());
  return absl::OkStatus();
#else
  (void)data;
  return Invalid(absl::StrCat("--dataset ", path,
                              ": this lrtune was built without worker/ "
                              "(the CSV reader); use a named data set"));
#endif
}

// After a refusal of --dataset NAME by the coordinator: the other forms
// the flag takes, and where an embedded worker looks for data sets.
std::string DatasetHint(absl::string_view message, bool embedded) {
  if (!absl::StrContains(message, "run.data.name")) return "";
  std::string hint = "; --dataset also takes a FILE.csv[.gz]";
#ifdef LRTUNE_DATASET_FILES
  if (embedded) {
    absl::StrAppend(&hint, "; the embedded worker reads data sets from ",
                    absl::StrJoin(engine::DataDirs(""), " and "),
                    " ($LRTUNE_DATA_DIR)");
  }
#else
  (void)embedded;
#endif
  return hint;
}

}  // namespace

absl::StatusOr<v1::RangeTestRequest> BuildRangeTestRequest(
    const RangeTestOptions& o, int64_t max_message_bytes) {
  v1::RangeTestRequest request;
  v1::RunSpec& run = *request.mutable_run();
  v1::RangeTestSpec& rt = *request.mutable_range_test();
  const FieldNamer run_names = CliNames(o.dataset, "run.");
  const FieldNamer range_names = CliNames(o.dataset, "range_test.");

  // Flags -> the request, parsing names and files; every range rule is
  // core's (core/spec.h), checked on the whole request below.
  absl::StatusOr<ModelKind> kind = ParseModelKind(o.model, run_names);
  if (kind.ok() && *kind != ModelKind::kTorchScript) {
    run.mutable_model()->set_kind(ModelKindToProto(*kind));
  } else if (absl::EndsWith(o.model, ".pt") ||
             access(o.model.c_str(), F_OK) == 0) {
    run.mutable_model()->set_kind(v1::MODEL_KIND_TORCHSCRIPT);
    std::string bytes;
    absl::Status read = ReadFile(o.model, "--model", &bytes);
    if (!read.ok()) return read;
    run.mutable_model()->set_torchscript(std::move(bytes));
  } else {
    return Invalid(
        absl::StrCat("--model must be mlp, cnn, resnet20 or a "
                     "TorchScript FILE.pt, got '",
                     o.model, "'"));
  }
  if (!o.hidden.empty()) {
    if (run.model().kind() != v1::MODEL_KIND_MLP) {
      return Invalid("--hidden applies to --model mlp only");
    }
    for (absl::string_view part : absl::StrSplit(o.hidden, ',')) {
      int64_t width = 0;
      if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &width)) {
        return Invalid(
            absl::StrCat("--hidden must be integer widths separated by commas "
                         "(e.g. 256,256), got '",
                         o.hidden, "'"));
      }
      run.mutable_model()->add_hidden(width);
    }
  }
  if (IsCliDataset(o.dataset)) {
    run.mutable_data()->set_name(o.dataset);
  } else if (IsDatasetFile(o.dataset)) {
    absl::Status read = SetInlineDataset(o.dataset, *run.mutable_data());
    if (!read.ok()) return read;
  } else if (IsReferencedDataset(o.dataset)) {
    // The coordinator knows whether a worker has it.
    run.mutable_data()->set_name(o.dataset);
  } else {
    return Invalid(absl::StrCat(
        "--dataset must be one of ", CliDatasetNames(", "),
        ", the NAME of a data set in the workers' data directory (1 to ",
        kMaxDatasetNameLength,
        " characters of A-Z a-z 0-9 . _ -), or a FILE.csv[.gz]; got '",
        o.dataset, "'"));
  }
  run.mutable_data()->set_subset(o.subset);

  v1::OptimizerSpec& opt = *run.mutable_optimizer();
  absl::StatusOr<OptimizerKind> optimizer =
      ParseOptimizerKind(o.optimizer, run_names);
  if (!optimizer.ok()) return optimizer.status();
  opt.set_kind(OptimizerKindToProto(*optimizer));
  if (o.momentum) opt.set_momentum(*o.momentum);
  if (o.weight_decay) opt.set_weight_decay(*o.weight_decay);
  if (o.batch_size) run.set_batch_size(*o.batch_size);
  if (o.grad_accumulation) run.set_grad_accumulation(*o.grad_accumulation);
  absl::StatusOr<Precision> precision = ParsePrecision(o.precision, run_names);
  if (!precision.ok()) return precision.status();
  run.mutable_device()->set_precision(PrecisionToProto(*precision));
  if (o.loss_scale) run.mutable_device()->set_loss_scale(*o.loss_scale);
  run.mutable_device()->set_threads(o.threads);
  run.mutable_device()->set_device(o.device);

  if (o.start_lr) rt.set_start_lr(*o.start_lr);
  if (o.end_lr) rt.set_end_lr(*o.end_lr);
  if (o.steps) rt.set_steps(*o.steps);
  absl::StatusOr<RampShape> ramp = ParseRampShape(o.ramp, range_names);
  if (!ramp.ok()) return ramp.status();
  rt.set_shape(RampToProto(*ramp));
  if (o.seeds < 1) {
    return Invalid(absl::StrCat("--seeds must be >= 1, got ", o.seeds));
  }
  // (Bounded so that a huge K costs nothing; core's rule refuses K > 64.)
  for (int s = 0; s < std::min(o.seeds, 100000); ++s) {
    rt.add_seeds(static_cast<uint64_t>(s));
  }
  if (o.no_pack) rt.set_pack_seeds(false);
  absl::StatusOr<RangeMetric> metric = ParseRangeMetric(o.metric, range_names);
  if (!metric.ok()) return metric.status();
  if (*metric != RangeMetric::kTrainLoss) {
    rt.set_metric(RangeMetricToProto(*metric));
    // About 60 evaluations over the ramp unless told otherwise.
    const int64_t steps = rt.has_steps() ? rt.steps() : RangeTestSpec{}.steps;
    rt.set_eval_every(std::max<int64_t>(1, steps / 60));
  }
  if (o.eval_every) rt.set_eval_every(*o.eval_every);
  if (o.eval_samples) rt.set_eval_samples(*o.eval_samples);
  if (o.budget_epochs) rt.set_budget_epochs(*o.budget_epochs);
  if (o.smoothing) rt.mutable_analysis()->set_smoothing_beta(*o.smoothing);
  if (o.diverge) rt.mutable_analysis()->set_divergence_factor(*o.diverge);

  // The rules the coordinator and the engine apply, in the flags' names.
  LRTUNE_RETURN_IF_ERROR(RunSpecFromProto(run, run_names).status());
  LRTUNE_RETURN_IF_ERROR(RangeTestSpecFromProto(rt, range_names).status());

  // Leave room for gRPC's framing under the server's limit.
  const int64_t bytes = static_cast<int64_t>(request.ByteSizeLong());
  if (bytes > max_message_bytes - 4096) {
    const std::string what = run.data().has_inline_data()
                                 ? absl::StrCat("--dataset ", o.dataset)
                                 : absl::StrCat("--model ", o.model);
    return Invalid(absl::StrCat(what, ": the request would be ",
                                bytes / (1 << 20),
                                " MiB, over the server's message limit of ",
                                max_message_bytes / (1 << 20),
                                " MiB (use a smaller file or fewer rows)"));
  }
  return request;
}

void AddRangeTestFlags(CLI::App* cmd, RangeTestOptions& opts) {
  cmd->add_option("--model", opts.model,
                  "mlp|cnn|resnet20, or a TorchScript FILE.pt (default mlp)");
  cmd->add_option("--dataset", opts.dataset,
                  absl::StrCat(CliDatasetNames("|"),
                               "; or NAME, a data set by reference in the "
                               "workers' data directory (DIR/NAME/"
                               "manifest.json and .npy arrays, "
                               "docs/engine.md); or FILE.csv[.gz]: features "
                               "then an integer class label per row, "
                               "optional header, sent with the request "
                               "(default fashion-mnist)"));
  cmd->add_option("--hidden", opts.hidden,
                  "MLP hidden widths, e.g. 256,256 (default 256,256)");
  cmd->add_option("--threads", opts.threads,
                  "CPU threads for training (default 0: all cores)");
  cmd->add_option("--optimizer", opts.optimizer,
                  absl::StrCat(OptimizerKindNames("|"), " (default sgd)"));
  auto optional_double = [&](const char* flag, std::optional<double>& field,
                             const char* help) {
    cmd->add_option_function<double>(
        flag, [&field](const double& v) { field = v; }, help);
  };
  auto optional_int = [&](const char* flag, std::optional<int64_t>& field,
                          const char* help) {
    cmd->add_option_function<int64_t>(
        flag, [&field](const int64_t& v) { field = v; }, help);
  };
  optional_double("--momentum", opts.momentum,
                  "SGD/RMSprop momentum >= 0 (default 0)");
  optional_double("--weight-decay", opts.weight_decay,
                  "L2 penalty >= 0, decoupled for adamw (default 0)");
  optional_int(
      "--batch-size", opts.batch_size,
      "samples per batch, capped at the training set's size (default 128)");
  optional_int("--grad-accumulation", opts.grad_accumulation,
               "batches per optimizer update, their gradients averaged;\n"
               "the LR steps once per update (default 1)");
  cmd->add_option("--precision", opts.precision,
                  "autocast fp32|bf16|fp16; fp16 needs CUDA and scales the "
                  "loss\n(default fp32)");
  optional_double("--loss-scale", opts.loss_scale,
                  "dynamic loss scaling's first scale; an update with\n"
                  "non-finite gradients is skipped and halves it (default: "
                  "65536\nunder fp16, else off)");
  optional_double("--start-lr", opts.start_lr, "first LR (default 1e-7)");
  optional_double("--end-lr", opts.end_lr, "last LR (default 10)");
  optional_int("--steps", opts.steps,
               "steps per seed, 2..1000000 (default 100)");
  cmd->add_option("--ramp", opts.ramp, "LR ramp exp|linear (default exp)");
  cmd->add_option("--seeds", opts.seeds,
                  "K curves with seeds 0..K-1, aggregated (default 1); the "
                  "seeds of a cnn, of an mlp of <= 100k parameters, or of "
                  "any mlp on CUDA train packed into one batched model");
  cmd->add_flag("--no-pack", opts.no_pack,
                "train the seeds one model after another (the curves agree "
                "with packed ones within float tolerance)");
  cmd->add_option("--metric", opts.metric,
                  "the curve the bounds are read from: train_loss (every "
                  "step), or val_loss or val_accuracy of evaluations every "
                  "--eval-every steps (Smith's original test; default "
                  "train_loss)");
  optional_int("--eval-every", opts.eval_every,
               "evaluate every K steps (default: steps/60 with a "
               "validation --metric, else never)");
  optional_int("--eval-samples", opts.eval_samples,
               "validation samples per evaluation (default 512)");
  optional_double("--smoothing", opts.smoothing,
                  "causal EMA beta in [0,1) of the divergence rule and the "
                  "--csv smoothed column; the bounds (and --plot) read a "
                  "zero-lag curve whose width follows the points per "
                  "decade and the noise (default 0.98)");
  optional_double("--diverge", opts.diverge,
                  "stop when smoothed loss > F x best (default 4)");
  cmd->add_option("--subset", opts.subset,
                  "train on the first N samples (default 0: all)");
  cmd->add_option("--device", opts.device,
                  "cpu|cuda|cuda:<i>|auto (default auto)");
  AddServerFlags(cmd, opts.remote, /*embedded_default=*/true);
  cmd->add_option("--db", opts.db_path,
                  "embedded mode's job store (default "
                  "$XDG_DATA_HOME/lrtune/jobs.db)");
}

CLI::App* AddRangeTestCommand(CLI::App& app, RangeTestOptions& opts) {
  CLI::App* cmd = app.add_subcommand(
      "range-test",
      "Run an LR range test and print the recommended LR bounds, stepsize\n"
      "and schedules. Without --server (and LRTUNE_SERVER) a coordinator and\n"
      "a worker run inside this process, with the job store in\n"
      "$XDG_DATA_HOME/lrtune/jobs.db.\n"
      "Example: lrtune range-test --model mlp --dataset fashion-mnist "
      "--seeds 3 --steps 300");
  AddRangeTestFlags(cmd, opts);
  cmd->add_option_function<int64_t>(
      "--budget-epochs", [&opts](const int64_t& v) { opts.budget_epochs = v; },
      "the training budget the advice is for, in epochs: the recommended\n"
      "schedules (--json's schedules) span it in whole cycles (default:\n"
      "four CLR cycles)");
  cmd->add_flag("--json", opts.json,
                "print one JSON object (job_id, points, wall_seconds, "
                "recommendation, ...)");
  cmd->add_option("--csv", opts.csv_path,
                  "write the curve to FILE (seed,step,lr,loss,smoothed)");
  cmd->add_option("--plot", opts.plot_path,
                  "write the curve as an SVG figure to FILE.svg (log lr, raw "
                  "and smoothed loss, the bounds band, the suggestions)");
  cmd->add_flag("--ui", opts.ui,
                "embedded: serve the web dashboard on 127.0.0.1, print its "
                "address, and keep serving after the test until Ctrl-C");
  return cmd;
}

int RunRangeTest(const RangeTestOptions& opts, std::ostream& out,
                 std::ostream& err, bool progress) {
  constexpr const char* kCmd = "lrtune range-test: ";
  absl::StatusOr<v1::RangeTestRequest> request =
      BuildRangeTestRequest(opts, client::ClientOptions().max_message_bytes);
  if (!request.ok()) {
    err << kCmd << request.status().message() << "\n";
    return kExitUsage;
  }
  EmbeddedSettings settings;
  settings.device = opts.device;
  settings.threads = opts.threads;
  settings.db_path = opts.db_path;
  settings.ui = opts.ui;
  absl::StatusOr<std::unique_ptr<Session>> opened =
      Session::Open(opts.remote, settings, err);
  if (!opened.ok()) {
    err << kCmd << opened.status().message() << "\n";
    return ExitCodeOf(opened.status());
  }
  Session& session = **opened;
  client::Client& client = session.client();
  std::ostream* term = &session.term();

  const int64_t steps =
      request->range_test().has_steps() ? request->range_test().steps() : 100;
  RangeTestReport report(steps * request->range_test().seeds_size());
  const absl::Time start = absl::Now();
  absl::StatusOr<v1::Job> job =
      client.RangeTest(*request, [&](const v1::JobEvent& event) {
        if (event.has_accepted()) {
          session.CancelOnInterrupt(event.job_id());
          if (opts.ui) {
            *term << "lrtune range-test: dashboard at "
                  << session.DashboardUrl(event.job_id()) << "\n";
          }
        }
        report.Add(event);
        if (progress) report.DrawProgress(*term);
      });
  // The holder of a store whose service ran the job, gone: said so.
  if (!job.ok()) job = session.Explain(job.status());
  const double wall = absl::ToDoubleSeconds(absl::Now() - start);
  if (progress) report.ClearProgress(*term);
  KeepDashboard keep(
      opts.ui && job.ok() && !session.interrupted() ? &session : nullptr,
      "range-test", out);
  if (!keep.active()) session.Stop();  // fd 2 is the terminal again
  const bool interrupted = session.interrupted();
  const std::string log_hint = session.LogHint();
  const std::string device_hint = session.device_hint();
  if (!job.ok()) {
    err << kCmd
        << (job.status().code() == absl::StatusCode::kInvalidArgument
                ? WithFlag(job.status().message())
                : std::string(job.status().message()))
        << (job.status().code() == absl::StatusCode::kInvalidArgument
                ? DatasetHint(job.status().message(), session.embedded())
                : "")
        << "\n";
    return ExitCodeOf(job.status());
  }
  if (!opts.csv_path.empty()) {
    std::ofstream csv(opts.csv_path);
    csv << report.CurveCsv();
    if (!csv.flush()) {
      err << kCmd << "cannot write --csv " << opts.csv_path << ": "
          << std::strerror(errno) << "\n";
      return kExitUsage;
    }
  }
  if (!opts.plot_path.empty()) {
    const std::string svg =
        report.Svg(job->range_test_result().recommendation(),
                   absl::StrCat("LR range test ", job->job_id()));
    std::ofstream plot(opts.plot_path);
    plot << svg;
    if (svg.empty() || !plot.flush()) {
      err << kCmd << "cannot write --plot " << opts.plot_path << ": "
          << (svg.empty() ? "no points to plot" : std::strerror(errno)) << "\n";
      return kExitUsage;
    }
  }
  if (opts.json) {
    out << RangeTestJson(*job, report.points(), wall, device_hint) << "\n";
  } else if (job->state() == v1::JOB_STATE_SUCCEEDED) {
    out << RangeTestSummary(*job, report.points(), wall, device_hint);
    if (opts.terminal_plot) {
      const v1::Recommendation& rec = job->range_test_result().recommendation();
      out << "\n" << report.TerminalPlot(rec.min_lr(), rec.max_lr());
    }
  }
  if (job->state() != v1::JOB_STATE_SUCCEEDED) {
    if (interrupted) {
      err << kCmd << "interrupted; job " << job->job_id() << " cancelled\n";
      return 130;
    }
    err << kCmd << "job " << job->job_id() << " "
        << (job->state() == v1::JOB_STATE_CANCELLED ? "was cancelled"
                                                    : "failed")
        << ": " << job->failure() << log_hint << "\n";
    return kExitJobFailed;
  }
  return kExitOk;
}

}  // namespace lrtune
