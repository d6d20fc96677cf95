// The `lrtune` subcommands: `schedule` and `analyze` (no server),
// `range-test`, `grid` and `submit` (a coordinator at --server, or an
// embedded one), `jobs`, `get`, `watch`, `cancel` (--server), and `serve`
// (the embedded coordinator alone, for client-driven range tests).
//
// Each command registers its flags on the CLI11 app (read once, in main,
// into an Options struct) and runs from the filled struct:
//
//   ScheduleOptions opts;
//   CLI::App* cmd = AddScheduleCommand(app, opts);
//   ...  if (cmd->parsed()) return RunSchedule(opts, std::cout, std::cerr);
//
// Run functions return the process exit code (kExitOk, kExitUsage, ...) and
// write errors as one line on `err`.
#ifndef LRTUNE_CLIENT_COMMANDS_H_
#define LRTUNE_CLIENT_COMMANDS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "core/flag_errors.h"
#include "lrtune/v1/lrtune.pb.h"

namespace lrtune {

// Exit codes of every lrtune command.
inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = kFlagUsageExit;  // bad flags, bad input files
inline constexpr int kExitJobFailed = 3;           // a job ran and failed
inline constexpr int kExitUnreachable = 4;  // server unreachable or refused
inline constexpr int kExitInternal = 1;     // anything else (a bug, disk)

struct ScheduleOptions {
  // Parameter name (snake_case, see core/schedule_params.h) -> text value,
  // for every flag the user gave.
  std::map<std::string, std::string> params;
  // Unset (kStepsUnset): the schedule's length, if it is bounded.
  static constexpr int64_t kStepsUnset = -(int64_t{1} << 62);
  int64_t steps = kStepsUnset;
  bool csv = false;  // CSV with a header instead of a table
  // A lrtune.v1.ScheduleSpec in protobuf JSON ("-": stdin) instead of the
  // parameter flags (the Python package's lrtune.torch.scheduler sends a
  // recommendation's schedules so); empty: the flags.
  std::string spec_json;
};

struct AnalyzeOptions {
  std::string csv_path;            // "-" reads stdin
  int64_t iters_per_epoch = 0;     // 0: unknown
  int stepsize_k = 4;              // stepsize = k x iters_per_epoch
  double smoothing = 0.98;         // EMA beta
  double diverge = 4.0;            // divergence factor
  std::optional<double> momentum;  // the optimizer's; unset: unknown
  int64_t planned_steps = 0;       // fastai's num_it; 0: the curve's rows
  std::string optimizer;           // sgd, adam, adamw, rmsprop; "": unknown
  int64_t batch_size = 0;          // one update's samples; 0: unknown
  bool json = false;
};

// How a command reaches a coordinator (client/cli_session.h reads them).
struct ServerFlags {
  std::string server;      // HOST:PORT; empty: $LRTUNE_SERVER, else embedded
  std::string token_file;  // bearer token file; empty: no token
  std::string tls_ca;      // PEM CA bundle; empty: $LRTUNE_TLS_CA, else
                           // plaintext
  std::string tls_server_name;  // certificate name override; empty: the host
};

// `lrtune range-test`. Unset optionals take the server's defaults (written
// in proto/lrtune/v1/spec.proto).
struct RangeTestOptions {
  std::string model = "mlp";  // mlp|cnn|resnet20 or a TorchScript FILE.pt
  // A built-in name, the name of a data set by reference in the workers'
  // data directory, or a scikit-learn style CSV file (plain or .gz) sent
  // inline with the request.
  std::string dataset = "fashion-mnist";
  std::string hidden;  // MLP widths "256,256"; empty: 256,256
  int threads = 0;     // CPU threads; 0: all cores (worker's setting)
  std::string optimizer = "sgd";
  std::optional<double> momentum;            // unset: 0
  std::optional<double> weight_decay;        // unset: 0
  std::optional<int64_t> batch_size;         // unset: 128
  std::optional<int64_t> grad_accumulation;  // batches per update; unset 1
  std::string precision = "fp32";            // fp32|bf16|fp16
  std::optional<double> loss_scale;          // unset: fp16's 65536, or off
  std::optional<double> start_lr;            // unset: 1e-7
  std::optional<double> end_lr;              // unset: 10
  std::optional<int64_t> steps;              // per seed; unset: 100
  std::string ramp = "exp";                  // exp|linear
  int seeds = 1;                             // seeds 0..K-1
  bool no_pack = false;                      // one model per seed, not packed
  std::string metric = "train_loss";         // train_loss|val_loss|val_accuracy
  std::optional<int64_t> eval_every;  // unset: steps / 60 for a val metric
  std::optional<int64_t> eval_samples;
  std::optional<int64_t> budget_epochs;  // schedules for it; unset: none
  std::optional<double> smoothing;       // EMA beta; unset 0.98
  std::optional<double> diverge;         // unset: 4
  int64_t subset = 0;                    // training samples; 0: all
  std::string device = "auto";           // cpu|cuda|cuda:<i>|auto
  bool json = false;                     // one JSON object on stdout
  std::string csv_path;                  // curve CSV; empty: none
  std::string plot_path;                 // SVG figure; empty: none
  bool ui = false;  // embedded: serve the web dashboard until Ctrl-C
  ServerFlags remote;
  std::string db_path;  // embedded store; empty: DefaultDbPath()
  // Not a flag: main sets it when stdout is a terminal (a text plot of the
  // curve follows the summary).
  bool terminal_plot = false;
};

// The run's and the range test's flags (model, data, optimizer, ramp,
// seeds, device, server, store), shared by range-test and advise.
void AddRangeTestFlags(CLI::App* cmd, RangeTestOptions& opts);

// `lrtune serve`: the embedded coordinator for client-driven range tests.
struct ServeOptions {
  std::string db_path;  // empty: client::DefaultDbPath()
  bool ui = false;      // the dashboard on 127.0.0.1, its URL on line 2
  // `lrtune dashboard`: ui, the URL alone on stdout, and only a signal
  // ends it (not stdin's end).
  bool dashboard = false;
};

CLI::App* AddScheduleCommand(CLI::App& app, ScheduleOptions& opts);
int RunSchedule(const ScheduleOptions& opts, std::ostream& out,
                std::ostream& err);

CLI::App* AddServeCommand(CLI::App& app, ServeOptions& opts);
CLI::App* AddDashboardCommand(CLI::App& app, ServeOptions& opts);
int RunServe(const ServeOptions& opts, std::ostream& out, std::ostream& err);

CLI::App* AddAnalyzeCommand(CLI::App& app, AnalyzeOptions& opts);
int RunAnalyze(const AnalyzeOptions& opts, std::ostream& out,
               std::ostream& err);

// The request the flags describe; InvalidArgument naming the flag and the
// rule ("--steps must be in [2, 1000000], got 0"). Reads --model FILE.pt
// and --dataset FILE.csv[.gz] (a file over `max_message_bytes` once in the
// request is InvalidArgument saying the limit).
absl::StatusOr<v1::RangeTestRequest> BuildRangeTestRequest(
    const RangeTestOptions& opts, int64_t max_message_bytes = 64 << 20);
CLI::App* AddRangeTestCommand(CLI::App& app, RangeTestOptions& opts);
// `progress`: draw a progress line on `err` (a terminal).
int RunRangeTest(const RangeTestOptions& opts, std::ostream& out,
                 std::ostream& err, bool progress);

// `lrtune jobs | get JOB | watch JOB | cancel JOB` against --server;
// `submit` and `grid` against --server or the embedded service.
struct JobCommandOptions {
  std::string job_id;
  ServerFlags remote;      // jobs..cancel: none is the embedded store
  bool json = false;       // protobuf JSON (watch: one event per line)
  uint64_t after_seq = 0;  // watch: events after this seq
  std::string reason;      // cancel: recorded on the job
  int limit = 20;          // jobs: at most this many, 1..500
  std::string spec_path;   // submit, grid: the job spec file
  // submit, grid: a data set's name replacing the spec's run.data (a
  // built-in one or one by reference); empty: the spec's
  std::string dataset;
  bool detach = false;    // submit, grid: print the id, do not follow
  std::string plot_path;  // grid, submit, get: SVG of a grid; empty: none
  std::string db_path;    // embedded: the job store; empty: the default
  bool ui = false;        // grid, submit, advise embedded: the dashboard
};
struct JobCommands {
  CLI::App* jobs = nullptr;
  CLI::App* get = nullptr;
  CLI::App* watch = nullptr;
  CLI::App* cancel = nullptr;
  CLI::App* submit = nullptr;
  CLI::App* grid = nullptr;
};
JobCommands AddJobCommands(CLI::App& app, JobCommandOptions& opts);
// `cmd` is "jobs", "get", "watch", "cancel", "submit" or "grid". watch,
// submit and grid exit 3 when the job failed or was cancelled.
int RunJobCommand(const std::string& cmd, const JobCommandOptions& opts,
                  std::ostream& out, std::ostream& err, bool progress);
// What `grid` and `submit` do with a request, for commands that build one
// (advise): submit it to --server or an embedded service, follow it (a row
// per trial, the search's progress), print the table and then
// `epilogue`'s lines, and return the exit code. JobCommandOptions: remote,
// json, detach, plot_path and db_path are read.
int SubmitAndFollow(const std::string& cmd, const v1::SubmitJobRequest& request,
                    const JobCommandOptions& opts, std::ostream& out,
                    std::ostream& err, bool progress,
                    const std::function<void(const v1::Job&, std::ostream&)>&
                        epilogue = nullptr);

// `lrtune advise`: the schedule to use for a budget, found by a range test
// and a pruned search over the schedule kinds and max_lr multiples
// around its recommendation (docs/cli.md).
struct AdviseOptions {
  RangeTestOptions range_test;  // the range test's flags (and the run's)
  // The budget, in epochs, >= 1 (required).
  int64_t budget_epochs = 0;
  // The kinds tried (default one_cycle,cosine,rex,linear,triangular,sgdr,
  // wsd) and the multiples of the recommended bounds (default 0.5,1,2).
  std::string kinds = "one_cycle,cosine,rex,linear,triangular,sgdr,wsd";
  std::string multiples = "0.5,1,2";
  double reduction_factor = 3.0;  // the pruning's eta
  std::string plot_path;          // the search's SVG; empty: none
};
CLI::App* AddAdviseCommand(CLI::App& app, AdviseOptions& opts);
// The search as a grid request (the range test first, then kinds x
// multiples of the recommended bounds over the budget, pruned). Errors name
// the flag.
absl::StatusOr<v1::SubmitJobRequest> BuildAdviseRequest(
    const AdviseOptions& opts);
int RunAdvise(const AdviseOptions& opts, std::ostream& out, std::ostream& err,
              bool progress);

}  // namespace lrtune

#endif  // LRTUNE_CLIENT_COMMANDS_H_
