// `lrtune jobs`, `get JOB`, `watch JOB`, `cancel JOB`: thin commands over
// the client library for jobs on a coordinator (--server or LRTUNE_SERVER),
// or without one on the embedded job store (the jobs that embedded
// range-test, grid, submit and the Python package ran, read through its
// coordinator alone, without LibTorch). `submit` and `grid` run on --server
// or, without one, on the embedded service.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/cli_session.h"
#include "client/commands.h"
#include "client/grid_plot.h"
#include "client/grid_report.h"
#include "client/job_spec.h"
#include "client/lrtune_client.h"
#include "client/range_test_report.h"
#include "google/protobuf/util/json_util.h"

namespace lrtune {
namespace {

std::string Json(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string s;
  if (!google::protobuf::util::MessageToJsonString(message, &s, options).ok()) {
    return "null";
  }
  return s;
}

std::string StateName(v1::JobState state) {
  absl::string_view name = v1::JobState_Name(state);
  absl::ConsumePrefix(&name, "JOB_STATE_");
  return absl::AsciiStrToLower(name);
}

int Fail(const std::string& cmd, const absl::Status& status,
         std::ostream& err) {
  err << "lrtune " << cmd << ": " << status.message() << "\n";
  return ExitCodeOf(status);
}

bool IsTerminal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

int JobExit(const v1::Job& job) {
  return job.state() == v1::JOB_STATE_FAILED ||
                 job.state() == v1::JOB_STATE_CANCELLED
             ? kExitJobFailed
             : kExitOk;
}

// Writes a grid's figure to --plot; false after one line on `err`.
bool WritePlot(const std::string& cmd, const JobCommandOptions& opts,
               const GridPlot& plot, const v1::Job& job, std::ostream& err) {
  const std::string svg = plot.Svg(job, "grid search " + job.job_id());
  std::ofstream file(opts.plot_path);
  file << svg;
  if (svg.empty() || !file.flush()) {
    err << "lrtune " << cmd << ": cannot write --plot " << opts.plot_path
        << ": "
        << (svg.empty() ? "no trial has a training point to plot"
                        : std::strerror(errno))
        << "\n";
    return false;
  }
  return true;
}

// Submits a spec file to --server or, without one, to an embedded service
// (client/cli_session.h) and, unless --detach, follows the job: a row per
// trial as it finishes, then the ranking.
int RunSubmit(const std::string& cmd, const JobCommandOptions& opts,
              std::ostream& out, std::ostream& err, bool progress) {
  absl::StatusOr<v1::SubmitJobRequest> request = ReadJobSpec(opts.spec_path);
  if (!request.ok()) return Fail(cmd, request.status(), err);
  if (!opts.dataset.empty()) {
    // The spec's data, but another set: its name is checked with the rest
    // by the coordinator (core/spec.h's rules).
    v1::DataSpec& data =
        request->has_grid()
            ? *request->mutable_grid()->mutable_run()->mutable_data()
            : *request->mutable_range_test()->mutable_run()->mutable_data();
    data.set_name(opts.dataset);
  }
  if (cmd == "grid" && !request->has_grid()) {
    return Fail(cmd,
                absl::InvalidArgumentError(
                    "--spec " + opts.spec_path +
                    ": not a grid spec (its top-level key must be grid)"),
                err);
  }
  return SubmitAndFollow(cmd, *request, opts, out, err, progress);
}

}  // namespace

int SubmitAndFollow(
    const std::string& cmd, const v1::SubmitJobRequest& submitted,
    const JobCommandOptions& opts, std::ostream& out, std::ostream& err,
    bool progress,
    const std::function<void(const v1::Job&, std::ostream&)>& epilogue) {
  const v1::SubmitJobRequest* request = &submitted;
  if (!opts.plot_path.empty() && !request->has_grid()) {
    return Fail(cmd,
                absl::InvalidArgumentError(
                    "--plot draws grids; for a range test use lrtune "
                    "range-test --plot"),
                err);
  }
  if (opts.detach && ResolveServer(opts.remote).empty()) {
    return Fail(cmd,
                absl::InvalidArgumentError(
                    "--detach needs --server HOST:PORT (or LRTUNE_SERVER): an "
                    "embedded job ends with this command"),
                err);
  }
  const v1::RunSpec& run =
      request->has_grid() ? request->grid().run() : request->range_test().run();
  EmbeddedSettings settings;
  settings.device = run.device().device().empty() ? std::string("auto")
                                                  : run.device().device();
  settings.threads = run.device().threads();
  settings.db_path = opts.db_path;
  settings.ui = opts.ui;
  absl::StatusOr<std::unique_ptr<Session>> opened =
      Session::Open(opts.remote, settings, err);
  if (!opened.ok()) return Fail(cmd, opened.status(), err);
  Session& session = **opened;
  client::Client& client = session.client();
  std::ostream& term = session.term();
  absl::StatusOr<v1::Job> job = client.SubmitJob(*request);
  if (!job.ok()) {
    session.Stop();  // the message goes to the terminal, not the log
    return Fail(cmd, session.Explain(job.status()), err);
  }
  if (opts.detach) {
    out << (opts.json ? Json(*job) : job->job_id()) << "\n";
    return kExitOk;
  }
  if (!opts.json) {
    out << absl::StrFormat("job %s: %d tasks\n", job->job_id(),
                           job->tasks_total());
    if (job->has_grid()) {
      out << absl::StrFormat("%-5s %-10s %9s %9s  %s\n", "TRIAL", "STATE",
                             "VAL_LOSS", "VAL_ACC", "LABEL");
    }
  }
  session.CancelOnInterrupt(job->job_id());
  if (opts.ui) {
    term << "lrtune " << cmd << ": dashboard at "
         << session.DashboardUrl(job->job_id()) << "\n";
  }
  RangeTestReport report(0);
  GridPlot plot;
  GridProgress grid;
  absl::StatusOr<v1::Job> done =
      client.WatchJob(job->job_id(), 0, [&](const v1::JobEvent& event) {
        plot.Add(event);
        if (opts.json) return;
        report.Add(event);
        if (progress) report.DrawProgress(term);
        grid.Add(event);
        if (event.has_trial_finished()) {
          if (progress) report.ClearProgress(term);
          out << TrialRow(event.trial_finished().trial());
          if (grid.pruned_search()) out << grid.SummaryLine();
          out << std::flush;
        } else if (event.has_recommendation() &&
                   !event.recommendation().has_seed_index()) {
          if (progress) report.ClearProgress(term);
          const v1::Recommendation& r = event.recommendation().recommendation();
          out << absl::StrFormat("range test: min_lr %.3g, max_lr %.3g\n",
                                 r.min_lr(), r.max_lr())
              << std::flush;
        }
      });
  if (progress) report.ClearProgress(term);
  absl::StatusOr<v1::Job> final_job =
      done.ok() ? client.GetJob(job->job_id()) : done;
  KeepDashboard keep(
      opts.ui && final_job.ok() && !session.interrupted() ? &session : nullptr,
      cmd, out);
  if (!keep.active()) session.Stop();  // fd 2 is the terminal again
  if (!final_job.ok()) {
    return Fail(cmd, session.Explain(final_job.status()), err);
  }
  if (session.interrupted() && final_job->state() == v1::JOB_STATE_CANCELLED) {
    err << "lrtune " << cmd << ": interrupted; job " << final_job->job_id()
        << " cancelled\n";
    return 130;
  }
  if (!opts.plot_path.empty() && !WritePlot(cmd, opts, plot, *final_job, err)) {
    return kExitUsage;
  }
  if (opts.json) {
    out << Json(*final_job) << "\n";
    return JobExit(*final_job);
  }
  if (final_job->has_grid()) out << GridTable(*final_job);
  if (epilogue) epilogue(*final_job, out);
  out << absl::StrFormat("job %s: %s%s\n", final_job->job_id(),
                         StateName(final_job->state()),
                         final_job->failure().empty()
                             ? ""
                             : ": " + final_job->failure() + session.LogHint());
  return JobExit(*final_job);
}

JobCommands AddJobCommands(CLI::App& app, JobCommandOptions& opts) {
  JobCommands cmds;
  // Every job command runs on --server or, without one, embedded.
  auto common = [&opts](CLI::App* cmd) {
    AddServerFlags(cmd, opts.remote, /*embedded_default=*/true);
    cmd->add_flag("--json", opts.json, "print protobuf JSON");
  };
  // jobs..cancel without a server: the embedded store.
  auto store = [&opts, &common](CLI::App* cmd) {
    common(cmd);
    cmd->add_option("--db", opts.db_path,
                    "without --server: the embedded job store (default "
                    "$XDG_DATA_HOME/lrtune/jobs.db)");
  };
  cmds.jobs = app.add_subcommand(
      "jobs",
      "List your jobs, newest first. Without --server: the embedded store's, "
      "a running embedded command's included (it answers for them).");
  store(cmds.jobs);
  cmds.jobs->add_option("--limit", opts.limit, "at most N jobs (default 20)");
  cmds.get = app.add_subcommand("get", "Print a job and its result.");
  store(cmds.get);
  cmds.get->add_option("job", opts.job_id, "job id")->required();
  cmds.get->add_option("--plot", opts.plot_path,
                       "write the job as an SVG figure to FILE.svg: a range "
                       "test's curve\n(a worker's or a client's) with its "
                       "bounds, a grid's trials (a running\njob is followed "
                       "to its end)");
  cmds.watch = app.add_subcommand(
      "watch",
      "Follow a job's events until it ends (resuming after disconnects); "
      "exit 3 if it fails.");
  store(cmds.watch);
  cmds.watch->add_option("job", opts.job_id, "job id")->required();
  cmds.watch->add_option("--after-seq", opts.after_seq,
                         "only events after this seq (default 0: all)");
  cmds.cancel = app.add_subcommand("cancel", "Cancel a queued or running job.");
  store(cmds.cancel);
  cmds.cancel->add_option("job", opts.job_id, "job id")->required();
  cmds.cancel->add_option("--reason", opts.reason, "recorded on the job");
  for (CLI::App** cmd : {&cmds.submit, &cmds.grid}) {
    const bool grid = cmd == &cmds.grid;
    *cmd = app.add_subcommand(
        grid ? "grid" : "submit",
        grid ? "Run a grid search from a spec file (docs/cli.md): a row per "
               "trial as it finishes, then the ranking; exit 3 if it fails.\n"
               "Without --server (and LRTUNE_SERVER) it runs embedded, like "
               "range-test."
             : "Submit a job from a spec file (a range test or a grid) and "
               "follow it; --detach prints its id and returns (with "
               "--server).\nWithout --server (and LRTUNE_SERVER) it runs "
               "embedded, like range-test.");
    common(*cmd);
    (*cmd)
        ->add_option("--spec", opts.spec_path,
                     "FILE.json or FILE.yaml: a SubmitJobRequest "
                     "(docs/examples/grid.yaml)")
        ->required();
    (*cmd)->add_option("--dataset", opts.dataset,
                       "NAME: train on this data set instead of the spec's "
                       "run.data.name: a built-in one or a data set by "
                       "reference in the workers' data directory");
    (*cmd)->add_flag("--detach", opts.detach,
                     "print the job id and return (with --server)");
    (*cmd)->add_option("--plot", opts.plot_path,
                       "write the grid's trials as an SVG figure to FILE.svg "
                       "(smoothed training loss per trial, validation loss, "
                       "ranks; the best highlighted)");
    (*cmd)->add_option("--db", opts.db_path,
                       "embedded mode's job store (default "
                       "$XDG_DATA_HOME/lrtune/jobs.db)");
    (*cmd)->add_flag("--ui", opts.ui,
                     "embedded: serve the web dashboard on 127.0.0.1 (the "
                     "trials ranked, their curves), print its address, and "
                     "keep serving after the job until Ctrl-C");
  }
  return cmds;
}

namespace {

// What `get` prints of `job`: a range test's summary (or, while it runs,
// where it stands), a grid's ranking and state.
std::string JobText(const v1::Job& job) {
  if (!IsTerminal(job.state())) {  // no result yet: how to follow it
    return absl::StrFormat(
        "%s %s: %s, %d/%d tasks done; lrtune watch %s follows it\n",
        job.has_range_test() ? "range test" : "job", job.job_id(),
        StateName(job.state()), job.tasks_done(), job.tasks_total(),
        job.job_id());
  }
  if (job.has_range_test()) {
    const int64_t ended =
        job.end_time().seconds() * 1000000000 + job.end_time().nanos();
    const int64_t created =
        job.create_time().seconds() * 1000000000 + job.create_time().nanos();
    return RangeTestSummary(job, job.range_test_result().steps_run(),
                            ended > created ? (ended - created) * 1e-9 : 0);
  }
  return absl::StrCat(
      GridTable(job),
      absl::StrFormat("job %s: %s, %d/%d tasks done%s\n", job.job_id(),
                      StateName(job.state()), job.tasks_done(),
                      job.tasks_total(),
                      job.failure().empty() ? "" : ": " + job.failure()));
}

// The jobs table's RESULT: what a finished job found (a range test's
// bounds, a grid's best trial), or why it ended; empty while it runs.
std::string ResultCell(const v1::Job& job) {
  if (job.state() == v1::JOB_STATE_SUCCEEDED && job.has_range_test_result()) {
    const v1::Recommendation& r = job.range_test_result().recommendation();
    return absl::StrFormat("max_lr %.3g  min_lr %.3g", r.max_lr(), r.min_lr());
  }
  if (job.state() == v1::JOB_STATE_SUCCEEDED && job.has_grid_result() &&
      job.grid_result().ranking_size() > 0) {
    const int best = job.grid_result().ranking(0);
    std::string cell = absl::StrCat("best trial ", best);
    for (const v1::Trial& t : job.trials()) {  // when the listing has them
      if (t.trial_index() == best && !t.label().empty()) {
        absl::StrAppend(&cell, ": ", t.label());
      }
    }
    return cell;
  }
  constexpr size_t kWidth = 60;
  if (job.failure().size() <= kWidth) return job.failure();
  return absl::StrCat(job.failure().substr(0, kWidth - 3), "...");
}

}  // namespace

int RunJobCommand(const std::string& cmd, const JobCommandOptions& opts,
                  std::ostream& out, std::ostream& err, bool progress) {
  if (cmd == "submit" || cmd == "grid") {
    return RunSubmit(cmd, opts, out, err, progress);
  }
  EmbeddedSettings settings;
  settings.db_path = opts.db_path;
  settings.store_only = true;
  absl::StatusOr<std::unique_ptr<Session>> opened =
      Session::Open(opts.remote, settings, err);
  if (!opened.ok()) return Fail(cmd, opened.status(), err);
  client::Client& client = (*opened)->client();
  // A failed call, explained when the session reaches another process's
  // embedded service that went away.
  auto fail = [&](const absl::Status& status) {
    return Fail(cmd, (*opened)->Explain(status), err);
  };

  if (cmd == "jobs") {
    if (opts.limit < 1 || opts.limit > 500) {
      return Fail(
          cmd, absl::InvalidArgumentError("--limit must be in [1, 500]"), err);
    }
    v1::ListJobsRequest request;
    request.set_page_size(opts.limit);
    absl::StatusOr<v1::ListJobsResponse> jobs = client.ListJobs(request);
    if (!jobs.ok()) return fail(jobs.status());
    if (opts.json) {
      out << Json(*jobs) << "\n";
      return kExitOk;
    }
    out << absl::StrFormat("%-24s %-10s %-10s %-7s %-19s  %s\n", "JOB", "KIND",
                           "STATE", "TASKS", "CREATED", "RESULT");
    for (const v1::Job& job : jobs->jobs()) {
      out << absl::StrFormat(
          "%-24s %-10s %-10s %3d/%-3d %s  %s\n", job.job_id(),
          job.has_grid() ? "grid" : "range-test", StateName(job.state()),
          job.tasks_done(), job.tasks_total(),
          absl::FormatTime("%Y-%m-%d %H:%M:%S",
                           absl::FromUnixSeconds(job.create_time().seconds()),
                           absl::LocalTimeZone()),
          ResultCell(job));
    }
    return kExitOk;
  }
  if (cmd == "get") {
    absl::StatusOr<v1::Job> job = client.GetJob(opts.job_id);
    if (!job.ok()) return fail(job.status());
    if (!opts.plot_path.empty() && job->has_range_test()) {
      // A range test's curve (a worker's or a client's: the same point
      // events), drawn as `range-test --plot` draws it, once it has ended.
      RangeTestReport report(/*total_steps=*/0);
      absl::StatusOr<v1::Job> replayed = client.WatchJob(
          opts.job_id, 0, [&](const v1::JobEvent& e) { report.Add(e); });
      if (!replayed.ok()) return fail(replayed.status());
      const std::string svg =
          report.Svg(replayed->range_test_result().recommendation(),
                     "range test " + opts.job_id);
      std::ofstream file(opts.plot_path);
      if (svg.empty() || !(file << svg)) {
        err << "lrtune get: cannot write --plot " << opts.plot_path << ": "
            << (svg.empty() ? "the job has no point to plot"
                            : std::strerror(errno))
            << "\n";
        return kExitUsage;
      }
      *job = *std::move(replayed);
    } else if (!opts.plot_path.empty()) {
      // The curves are in the job's events: read them all again.
      GridPlot plot;
      absl::StatusOr<v1::Job> replayed = client.WatchJob(
          opts.job_id, 0, [&](const v1::JobEvent& e) { plot.Add(e); });
      if (!replayed.ok()) return fail(replayed.status());
      if (!WritePlot(cmd, opts, plot, *replayed, err)) return kExitUsage;
      *job = *std::move(replayed);
    }
    out << (opts.json ? Json(*job) + "\n" : JobText(*job));
    return kExitOk;
  }
  if (cmd == "watch") {
    RangeTestReport report(0);
    uint64_t last_seq = opts.after_seq;
    auto on_event = [&](const v1::JobEvent& event) {
      last_seq = event.seq();
      if (opts.json) {
        out << Json(event) << "\n" << std::flush;
        return;
      }
      report.Add(event);
      if (progress) report.DrawProgress(err);
    };
    absl::StatusOr<v1::Job> job =
        client.WatchJob(opts.job_id, last_seq, on_event);
    // The embedded lrtune whose service this watch reached ended (its job
    // done, or it was killed): the store is free now, or another lrtune's.
    // The watch goes on there from the last event it printed, so that it
    // ends with the job's last event (a killed run's job is cancelled as
    // a leftover on the way), not with the service's end. A few tries: a
    // service that is ending still names itself in the lock file.
    std::unique_ptr<Session> reopened;
    for (int tries = 0;
         tries < 5 && !job.ok() &&
         (reopened ? reopened : *opened)->HolderGone(job.status());
         ++tries) {
      absl::SleepFor(absl::Milliseconds(100 * tries));
      absl::StatusOr<std::unique_ptr<Session>> again =
          Session::Open(opts.remote, settings, err);
      if (!again.ok()) break;
      reopened = *std::move(again);
      job = reopened->client().WatchJob(opts.job_id, last_seq, on_event);
    }
    if (progress) report.ClearProgress(err);
    if (!job.ok()) {
      return Fail(cmd, (reopened ? reopened : *opened)->Explain(job.status()),
                  err);
    }
    if (!opts.json) out << JobText(*job);  // as `get` prints it at its end
    return JobExit(*job);
  }
  if (cmd == "cancel") {
    absl::StatusOr<v1::Job> job = client.CancelJob(opts.job_id, opts.reason);
    if (!job.ok()) return fail(job.status());
    out << (opts.json ? Json(*job)
                      : absl::StrFormat("job %s: %s", job->job_id(),
                                        StateName(job->state())))
        << "\n";
    return kExitOk;
  }
  return kExitUsage;
}

}  // namespace lrtune
