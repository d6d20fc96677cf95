// `lrtune range-test`: flags -> a RangeTestRequest, sent to --server or to
// an embedded coordinator and worker (client/embedded.h); the events become
// a progress line, and the job the recommendation (JSON or text) and CSV.
#include <signal.h>
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
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "client/commands.h"
#include "client/lrtune_client.h"
#include "client/range_test_report.h"
#include "client/stderr_redirect.h"
#include "core/sync.h"
#include "lrtune/v1/lrtune.pb.h"
#ifdef LRTUNE_EMBEDDED
#include "client/embedded.h"
#endif

namespace lrtune {
namespace {

const std::vector<std::string>& Datasets() {
  static const auto* names =
      new std::vector<std::string>{"fashion-mnist", "digits",  "iris", "wine",
                                   "breast-cancer", "spirals", "blobs"};
  return *names;
}

bool OneOf(const std::string& v, const std::vector<std::string>& names) {
  return std::find(names.begin(), names.end(), v) != names.end();
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

template <typename T>
std::string Got(const T& v) {
  return absl::StrCat(", got ", v);
}

// The server names fields by their path; the user knows the flags.
std::string WithFlag(absl::string_view message) {
  static const auto* flags =
      new std::vector<std::pair<std::string, std::string>>{
          {"run.model.hidden", "--hidden"},
          {"run.model.torchscript", "--model"},
          {"run.model", "--model"},
          {"run.data.subset", "--subset"},
          {"run.data", "--dataset"},
          {"run.optimizer.momentum", "--momentum"},
          {"run.optimizer.weight_decay", "--weight-decay"},
          {"run.optimizer", "--optimizer"},
          {"run.batch_size", "--batch-size"},
          {"run.device.threads", "--threads"},
          {"run.device", "--device"},
          {"range_test.start_lr", "--start-lr"},
          {"range_test.end_lr", "--end-lr"},
          {"range_test.steps", "--steps"},
          {"range_test.seeds", "--seeds"},
          {"range_test.shape", "--ramp"},
          {"range_test.analysis.smoothing_beta", "--smoothing"},
          {"range_test.analysis.divergence_factor", "--diverge"},
      };
  for (const auto& [path, flag] : *flags) {
    if (absl::StrContains(message, path)) {
      return absl::StrCat(message, " (", flag, ")");
    }
  }
  return std::string(message);
}

int ExitCode(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
      return kExitUsage;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kResourceExhausted:
      return kExitUnreachable;
    default:
      return kExitInternal;
  }
}

// Ctrl-C while an embedded job runs cancels it (nobody else would). The
// handler only writes to a pipe; a thread of ours does the rest, as in
// lrtune-worker (LibTorch may own threads that would take a sigwait).
class Interrupts {
 public:
  Interrupts() {
    if (pipe(fds_) != 0) return;
    write_fd_ = fds_[1];
    struct sigaction action = {};
    action.sa_handler = [](int) {
      static volatile sig_atomic_t count = 0;
      if (++count > 1) _exit(130);  // a second Ctrl-C: leave at once
      const char byte = 's';
      (void)!write(write_fd_, &byte, 1);
    };
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
    thread_ = std::thread([this] {
      char byte = 0;
      while (read(fds_[0], &byte, 1) < 0 && errno == EINTR) {
      }
      if (byte != 's') return;
      lrtune::MutexLock lock(&mu_);
      interrupted_ = true;
      if (on_interrupt_) on_interrupt_();
    });
  }
  ~Interrupts() {
    if (!thread_.joinable()) return;
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
    const char done = 'x';
    (void)!write(fds_[1], &done, 1);
    thread_.join();
    close(fds_[0]);
    close(fds_[1]);
  }
  // Runs `f` on an interrupt (now, if one came already).
  void OnInterrupt(std::function<void()> f) {
    lrtune::MutexLock lock(&mu_);
    on_interrupt_ = std::move(f);
    if (interrupted_) on_interrupt_();
  }
  bool interrupted() {
    lrtune::MutexLock lock(&mu_);
    return interrupted_;
  }

 private:
  static inline int write_fd_ = -1;
  int fds_[2] = {-1, -1};
  struct sigaction old_int_ = {};
  struct sigaction old_term_ = {};
  std::thread thread_;
  lrtune::Mutex mu_;
  bool interrupted_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> on_interrupt_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<v1::RangeTestRequest> BuildRangeTestRequest(
    const RangeTestOptions& o) {
  v1::RangeTestRequest request;
  v1::RunSpec& run = *request.mutable_run();
  v1::RangeTestSpec& rt = *request.mutable_range_test();

  if (o.model == "mlp") {
    run.mutable_model()->set_kind(v1::MODEL_KIND_MLP);
  } else if (o.model == "cnn") {
    run.mutable_model()->set_kind(v1::MODEL_KIND_CNN);
  } else if (o.model == "resnet20") {
    run.mutable_model()->set_kind(v1::MODEL_KIND_RESNET20);
  } else if (absl::EndsWith(o.model, ".pt") ||
             access(o.model.c_str(), F_OK) == 0) {
    run.mutable_model()->set_kind(v1::MODEL_KIND_TORCHSCRIPT);
    std::string bytes;
    absl::Status read = ReadFile(o.model, "--model", &bytes);
    if (!read.ok()) return read;
    run.mutable_model()->set_torchscript(std::move(bytes));
  } else {
    return Invalid(absl::StrCat(
        "--model must be mlp, cnn, resnet20 or a TorchScript FILE.pt, got '",
        o.model, "'"));
  }
  if (!o.hidden.empty()) {
    if (run.model().kind() != v1::MODEL_KIND_MLP) {
      return Invalid("--hidden applies to --model mlp only");
    }
    for (absl::string_view part : absl::StrSplit(o.hidden, ',')) {
      int64_t width = 0;
      if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &width) ||
          width < 1 || width > 65536) {
        return Invalid(absl::StrCat(
            "--hidden must be widths in [1, 65536] separated by commas "
            "(e.g. 256,256), got '",
            o.hidden, "'"));
      }
      run.mutable_model()->add_hidden(width);
    }
    if (run.model().hidden_size() > 16) {
      return Invalid("--hidden: at most 16 layers");
    }
  }
  if (!OneOf(o.dataset, Datasets())) {
    return Invalid(absl::StrCat("--dataset must be one of ",
                                absl::StrJoin(Datasets(), ", "), "; got '",
                                o.dataset, "'"));
  }
  run.mutable_data()->set_name(o.dataset);
  if (o.subset < 0) return Invalid("--subset must be >= 0" + Got(o.subset));
  run.mutable_data()->set_subset(o.subset);

  v1::OptimizerSpec& opt = *run.mutable_optimizer();
  if (o.optimizer == "sgd") {
    opt.set_kind(v1::OPTIMIZER_KIND_SGD);
  } else if (o.optimizer == "adam") {
    opt.set_kind(v1::OPTIMIZER_KIND_ADAM);
  } else if (o.optimizer == "adamw") {
    opt.set_kind(v1::OPTIMIZER_KIND_ADAMW);
  } else if (o.optimizer == "rmsprop") {
    opt.set_kind(v1::OPTIMIZER_KIND_RMSPROP);
  } else {
    return Invalid(
        absl::StrCat("--optimizer must be sgd, adam, adamw or rmsprop, got '",
                     o.optimizer, "'"));
  }
  if (o.momentum) {
    if (!(*o.momentum >= 0) || !std::isfinite(*o.momentum)) {
      return Invalid("--momentum must be >= 0" + Got(*o.momentum));
    }
    opt.set_momentum(*o.momentum);
  }
  if (o.weight_decay) {
    if (!(*o.weight_decay >= 0) || !std::isfinite(*o.weight_decay)) {
      return Invalid("--weight-decay must be >= 0" + Got(*o.weight_decay));
    }
    opt.set_weight_decay(*o.weight_decay);
  }
  if (o.batch_size) {
    if (*o.batch_size < 1) {
      return Invalid("--batch-size must be >= 1" + Got(*o.batch_size));
    }
    run.set_batch_size(*o.batch_size);
  }
  if (o.threads < 0 || o.threads > 256) {
    return Invalid("--threads must be in [0, 256]" + Got(o.threads));
  }
  run.mutable_device()->set_threads(o.threads);
  if (!(o.device == "cpu" || o.device == "cuda" || o.device == "auto" ||
        absl::StartsWith(o.device, "cuda:"))) {
    return Invalid(absl::StrCat(
        "--device must be cpu, cuda, cuda:<i> or auto, got '", o.device, "'"));
  }
  run.mutable_device()->set_device(o.device);

  if (o.start_lr) {
    if (!(*o.start_lr > 0) || !std::isfinite(*o.start_lr)) {
      return Invalid("--start-lr must be finite and > 0" + Got(*o.start_lr));
    }
    rt.set_start_lr(*o.start_lr);
  }
  if (o.end_lr) {
    const double start = o.start_lr.value_or(1e-7);
    if (!(*o.end_lr > start) || !std::isfinite(*o.end_lr)) {
      return Invalid(absl::StrCat("--end-lr must be finite and > the start LR ",
                                  start, Got(*o.end_lr)));
    }
    rt.set_end_lr(*o.end_lr);
  }
  if (o.steps) {
    if (*o.steps < 2 || *o.steps > 1000000) {
      return Invalid("--steps must be in [2, 1000000]" + Got(*o.steps));
    }
    rt.set_steps(*o.steps);
  }
  if (o.ramp == "exp") {
    rt.set_shape(v1::RAMP_SHAPE_EXP);
  } else if (o.ramp == "linear") {
    rt.set_shape(v1::RAMP_SHAPE_LINEAR);
  } else {
    return Invalid(
        absl::StrCat("--ramp must be exp or linear, got '", o.ramp, "'"));
  }
  if (o.seeds < 1 || o.seeds > 64) {
    return Invalid("--seeds must be in [1, 64]" + Got(o.seeds));
  }
  for (int s = 0; s < o.seeds; ++s) rt.add_seeds(static_cast<uint64_t>(s));
  if (o.smoothing) {
    if (!(*o.smoothing >= 0 && *o.smoothing < 1)) {
      return Invalid("--smoothing must be in [0, 1)" + Got(*o.smoothing));
    }
    rt.mutable_analysis()->set_smoothing_beta(*o.smoothing);
  }
  if (o.diverge) {
    if (!(*o.diverge > 1) || !std::isfinite(*o.diverge)) {
      return Invalid("--diverge must be > 1" + Got(*o.diverge));
    }
    rt.mutable_analysis()->set_divergence_factor(*o.diverge);
  }
  return request;
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
  cmd->add_option("--model", opts.model,
                  "mlp|cnn|resnet20, or a TorchScript FILE.pt (default mlp)");
  cmd->add_option("--dataset", opts.dataset,
                  "fashion-mnist|digits|iris|wine|breast-cancer|spirals|blobs "
                  "(default fashion-mnist)");
  cmd->add_option("--hidden", opts.hidden,
                  "MLP hidden widths, e.g. 256,256 (default 256,256)");
  cmd->add_option("--threads", opts.threads,
                  "CPU threads for training (default 0: all cores)");
  cmd->add_option("--optimizer", opts.optimizer,
                  "sgd|adam|adamw|rmsprop (default sgd)");
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
  optional_int("--batch-size", opts.batch_size,
               "samples per batch (default 128)");
  optional_double("--start-lr", opts.start_lr, "first LR (default 1e-7)");
  optional_double("--end-lr", opts.end_lr, "last LR (default 10)");
  optional_int("--steps", opts.steps,
               "steps per seed, 2..1000000 (default 100)");
  cmd->add_option("--ramp", opts.ramp, "LR ramp exp|linear (default exp)");
  cmd->add_option("--seeds", opts.seeds,
                  "K curves with seeds 0..K-1, aggregated (default 1)");
  optional_double("--smoothing", opts.smoothing,
                  "EMA beta of the loss smoothing in [0,1) (default 0.98)");
  optional_double("--diverge", opts.diverge,
                  "stop when smoothed loss > F x best (default 4)");
  cmd->add_option("--subset", opts.subset,
                  "train on the first N samples (default 0: all)");
  cmd->add_option("--device", opts.device,
                  "cpu|cuda|cuda:<i>|auto (default auto)");
  cmd->add_flag("--json", opts.json,
                "print one JSON object (job_id, points, wall_seconds, "
                "recommendation, ...)");
  cmd->add_option("--csv", opts.csv_path,
                  "write the curve to FILE (seed,step,lr,loss,smoothed)");
  cmd->add_option("--plot", opts.plot_path,
                  "write the curve as an SVG figure to FILE.svg (log lr, raw "
                  "and smoothed loss, the bounds band, the suggestions)");
  cmd->add_option("--server", opts.server,
                  "coordinator HOST:PORT (default $LRTUNE_SERVER; unset: "
                  "embedded)");
  cmd->add_option("--token-file", opts.token_file,
                  "file whose first line is the bearer token (with --server)");
  cmd->add_option("--db", opts.db_path,
                  "embedded mode's job store (default "
                  "$XDG_DATA_HOME/lrtune/jobs.db)");
  return cmd;
}

int RunRangeTest(const RangeTestOptions& opts, std::ostream& out,
                 std::ostream& err, bool progress) {
  constexpr const char* kCmd = "lrtune range-test: ";
  absl::StatusOr<v1::RangeTestRequest> request = BuildRangeTestRequest(opts);
  if (!request.ok()) {
    err << kCmd << request.status().message() << "\n";
    return kExitUsage;
  }
  client::ClientOptions copts;
  if (!opts.token_file.empty()) {
    std::string token;
    if (absl::Status st = ReadFile(opts.token_file, "--token-file", &token);
        !st.ok()) {
      err << kCmd << st.message() << "\n";
      return kExitUsage;
    }
    copts.token = std::string(
        absl::StripAsciiWhitespace(token.substr(0, token.find('\n'))));
  }

  std::string server = opts.server;
  if (server.empty()) {
    const char* env = std::getenv("LRTUNE_SERVER");
    if (env != nullptr) server = env;
  }
  bool embedded_mode = false;
  std::string device_hint;  // where the embedded worker trains
  // While the embedded service runs, fd 2 goes to its log file (the
  // worker, gRPC and LibTorch write there) and `term` is the terminal.
  std::unique_ptr<client::StderrRedirect> redirect;
  std::ostream* term = &err;
#ifdef LRTUNE_EMBEDDED
  std::unique_ptr<client::EmbeddedService> embedded;
  if (server.empty()) {
    embedded_mode = true;
    absl::StatusOr<std::vector<std::string>> devices =
        client::EmbeddedDevices(opts.device);
    if (!devices.ok()) {
      err << kCmd << devices.status().message() << "\n";
      return kExitUsage;
    }
    client::EmbeddedOptions eopts;
    eopts.db_path =
        opts.db_path.empty() ? client::DefaultDbPath() : opts.db_path;
    eopts.devices = *devices;
    device_hint = devices->front();
    eopts.threads = opts.threads;
    if (&err == &std::cerr && client::CreateParentDirs(eopts.db_path).ok()) {
      absl::StatusOr<std::unique_ptr<client::StderrRedirect>> r =
          client::StderrRedirect::To(client::EmbeddedLogPath(eopts.db_path));
      if (r.ok()) {
        redirect = std::move(*r);
        term = &redirect->original();
      }
    }
    eopts.log = term;
    absl::StatusOr<std::unique_ptr<client::EmbeddedService>> started =
        client::EmbeddedService::Start(eopts);
    if (!started.ok()) {
      redirect.reset();
      err << kCmd
          << "cannot start the embedded service: " << started.status().message()
          << "\n";
      return kExitInternal;
    }
    embedded = std::move(*started);
    server = embedded->target();
  }
#else
  if (server.empty()) {
    err << kCmd
        << "this lrtune was built without the training engine: give "
           "--server HOST:PORT (or LRTUNE_SERVER)\n";
    return kExitUsage;
  }
#endif
  absl::StatusOr<std::unique_ptr<client::Client>> connected =
      client::Client::Connect(server, copts);
  if (!connected.ok()) {
    redirect.reset();
    err << kCmd << connected.status().message() << "\n";
    return ExitCode(connected.status());
  }
  client::Client& client = **connected;

  const int64_t steps =
      request->range_test().has_steps() ? request->range_test().steps() : 100;
  RangeTestReport report(steps * request->range_test().seeds_size());
  std::unique_ptr<Interrupts> interrupts;
  if (embedded_mode) interrupts = std::make_unique<Interrupts>();

  const absl::Time start = absl::Now();
  absl::StatusOr<v1::Job> job =
      client.RangeTest(*request, [&](const v1::JobEvent& event) {
        if (event.has_accepted() && interrupts != nullptr) {
          const std::string job_id = event.job_id();
          interrupts->OnInterrupt([&client, job_id] {
            (void)client.CancelJob(job_id, "interrupted (Ctrl-C)");
          });
        }
        report.Add(event);
        if (progress) report.DrawProgress(*term);
      });
  const double wall = absl::ToDoubleSeconds(absl::Now() - start);
  if (progress) report.ClearProgress(*term);
  const bool interrupted = interrupts != nullptr && interrupts->interrupted();
  interrupts.reset();
#ifdef LRTUNE_EMBEDDED
  if (embedded != nullptr) embedded->Shutdown();
#endif
  const std::string log_hint =
      redirect != nullptr ? " (log: " + redirect->path() + ")" : "";
  redirect.reset();  // fd 2 is the terminal again
  if (!job.ok()) {
    err << kCmd
        << (job.status().code() == absl::StatusCode::kInvalidArgument
                ? WithFlag(job.status().message())
                : std::string(job.status().message()))
        << "\n";
    return ExitCode(job.status());
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
