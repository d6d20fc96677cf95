// `lrtune jobs`, `get JOB`, `watch JOB`, `cancel JOB`: thin commands over
// the client library for jobs on a coordinator (--server or LRTUNE_SERVER;
// an embedded job ends with the `range-test` that ran it).
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "client/commands.h"
#include "client/lrtune_client.h"
#include "client/range_test_report.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace lrtune {
namespace {

int ExitCodeOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
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

// The client for opts, or an exit code after one line on `err`.
absl::StatusOr<std::unique_ptr<client::Client>> Connect(
    const JobCommandOptions& opts, const std::string& cmd, std::ostream& err) {
  std::string server = opts.server;
  if (server.empty()) {
    const char* env = std::getenv("LRTUNE_SERVER");
    if (env != nullptr) server = env;
  }
  if (server.empty()) {
    return absl::InvalidArgumentError(
        "--server HOST:PORT (or LRTUNE_SERVER) is required: embedded jobs "
        "end with the range-test that ran them");
  }
  client::ClientOptions copts;
  if (!opts.token_file.empty()) {
    std::ifstream in(opts.token_file);
    std::string token;
    if (!in || !std::getline(in, token)) {
      return absl::InvalidArgumentError("--token-file: cannot read '" +
                                        opts.token_file + "'");
    }
    copts.token = std::string(absl::StripAsciiWhitespace(token));
  }
  return client::Client::Connect(server, copts);
}

int Fail(const std::string& cmd, const absl::Status& status,
         std::ostream& err) {
  err << "lrtune " << cmd << ": " << status.message() << "\n";
  return ExitCodeOf(status);
}

int JobExit(const v1::Job& job) {
  return job.state() == v1::JOB_STATE_FAILED ||
                 job.state() == v1::JOB_STATE_CANCELLED
             ? kExitJobFailed
             : kExitOk;
}

// A scalar as JSON: true/false, a number when it reads as one, else a
// string (protobuf's JSON parser takes enums by name and numbers as
// numbers or strings).
nlohmann::json ScalarToJson(const std::string& s) {
  if (s == "true") return true;
  if (s == "false") return false;
  if (s == "null" || s == "~") return nullptr;
  char* end = nullptr;
  const long long i = std::strtoll(s.c_str(), &end, 10);
  if (!s.empty() && end == s.c_str() + s.size()) return i;
  const double d = std::strtod(s.c_str(), &end);
  if (!s.empty() && end == s.c_str() + s.size()) return d;
  return s;
}

nlohmann::json YamlToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& kv : node) {
        out[kv.first.as<std::string>()] = YamlToJson(kv.second);
      }
      return out;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : node) out.push_back(YamlToJson(item));
      return out;
    }
    case YAML::NodeType::Scalar:
      return node.Tag() == "!" ? nlohmann::json(node.Scalar())
                               : ScalarToJson(node.Scalar());
    default:
      return nullptr;
  }
}

// A job spec file: a SubmitJobRequest in protobuf JSON (field names as in
// the protos, snake_case or lowerCamelCase) or the same as YAML. Errors name
// the file, and the line (YAML syntax) or the field (unknown names, wrong
// types).
absl::StatusOr<v1::SubmitJobRequest> ReadJobSpec(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError("--spec: cannot read '" + path + "'");
  }
  std::stringstream text;
  text << in.rdbuf();
  std::string json = text.str();
  if (!absl::EndsWith(path, ".json")) {
    try {
      json = YamlToJson(YAML::Load(text.str())).dump();
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--spec %s: line %d, column %d: %s", path,
                          e.mark.line + 1, e.mark.column + 1, e.msg));
    }
  }
  v1::SubmitJobRequest request;
  const auto status =
      google::protobuf::util::JsonStringToMessage(json, &request);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--spec ", path, ": ", std::string(status.message())));
  }
  return request;
}

// Submits a spec file and, unless --detach, follows the job: a row per
// trial as it finishes, then the ranking.
int RunSubmit(const std::string& cmd, client::Client& client,
              const JobCommandOptions& opts, std::ostream& out,
              std::ostream& err, bool progress) {
  absl::StatusOr<v1::SubmitJobRequest> request = ReadJobSpec(opts.spec_path);
  if (!request.ok()) return Fail(cmd, request.status(), err);
  if (cmd == "grid" && !request->has_grid()) {
    return Fail(cmd,
                absl::InvalidArgumentError(
                    "--spec " + opts.spec_path +
                    ": not a grid spec (its top-level key must be grid)"),
                err);
  }
  absl::StatusOr<v1::Job> job = client.SubmitJob(*request);
  if (!job.ok()) return Fail(cmd, job.status(), err);
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
  RangeTestReport report(0);
  absl::StatusOr<v1::Job> done =
      client.WatchJob(job->job_id(), 0, [&](const v1::JobEvent& event) {
        if (opts.json) return;
        report.Add(event);
        if (progress) report.DrawProgress(err);
        if (event.has_trial_finished()) {
          if (progress) report.ClearProgress(err);
          const v1::Trial& t = event.trial_finished().trial();
          out << absl::StrFormat(
                     "%-5d %-10s %9.4f %9s  %s\n", t.trial_index(), "done",
                     t.final_eval().val_loss(),
                     t.final_eval().has_val_accuracy()
                         ? absl::StrFormat("%.4f",
                                           t.final_eval().val_accuracy())
                         : std::string("-"),
                     t.label())
              << std::flush;
        } else if (event.has_recommendation() &&
                   !event.recommendation().has_seed_index()) {
          if (progress) report.ClearProgress(err);
          const v1::Recommendation& r = event.recommendation().recommendation();
          out << absl::StrFormat("range test: min_lr %.3g, max_lr %.3g\n",
                                 r.min_lr(), r.max_lr())
              << std::flush;
        }
      });
  if (progress) report.ClearProgress(err);
  if (!done.ok()) return Fail(cmd, done.status(), err);
  absl::StatusOr<v1::Job> final_job = client.GetJob(job->job_id());
  if (!final_job.ok()) return Fail(cmd, final_job.status(), err);
  if (opts.json) {
    out << Json(*final_job) << "\n";
    return JobExit(*final_job);
  }
  if (final_job->has_grid()) {
    out << "ranking:\n";
    for (int index : final_job->grid_result().ranking()) {
      for (const v1::Trial& t : final_job->trials()) {
        if (t.trial_index() != index) continue;
        out << absl::StrFormat("  %2d. trial %-3d %9.4f  %s\n", t.rank(), index,
                               t.objective_value(), t.label());
      }
    }
    for (const v1::Trial& t : final_job->trials()) {
      if (t.state() == v1::TRIAL_STATE_FAILED) {
        out << absl::StrFormat("  failed: trial %d (%s): %s\n", t.trial_index(),
                               t.label(), t.failure());
      }
    }
  }
  out << absl::StrFormat(
      "job %s: %s%s\n", final_job->job_id(), StateName(final_job->state()),
      final_job->failure().empty() ? "" : ": " + final_job->failure());
  return JobExit(*final_job);
}

}  // namespace

JobCommands AddJobCommands(CLI::App& app, JobCommandOptions& opts) {
  JobCommands cmds;
  auto common = [&opts](CLI::App* cmd) {
    cmd->add_option("--server", opts.server,
                    "coordinator HOST:PORT (default $LRTUNE_SERVER)");
    cmd->add_option("--token-file", opts.token_file,
                    "file whose first line is the bearer token");
    cmd->add_flag("--json", opts.json, "print protobuf JSON");
  };
  cmds.jobs = app.add_subcommand("jobs", "List your jobs, newest first.");
  common(cmds.jobs);
  cmds.jobs->add_option("--limit", opts.limit, "at most N jobs (default 20)");
  cmds.get = app.add_subcommand("get", "Print a job and its result.");
  common(cmds.get);
  cmds.get->add_option("job", opts.job_id, "job id")->required();
  cmds.watch = app.add_subcommand(
      "watch",
      "Follow a job's events until it ends (resuming after disconnects); "
      "exit 3 if it fails.");
  common(cmds.watch);
  cmds.watch->add_option("job", opts.job_id, "job id")->required();
  cmds.watch->add_option("--after-seq", opts.after_seq,
                         "only events after this seq (default 0: all)");
  cmds.cancel = app.add_subcommand("cancel", "Cancel a queued or running job.");
  common(cmds.cancel);
  cmds.cancel->add_option("job", opts.job_id, "job id")->required();
  cmds.cancel->add_option("--reason", opts.reason, "recorded on the job");
  for (CLI::App** cmd : {&cmds.submit, &cmds.grid}) {
    const bool grid = cmd == &cmds.grid;
    *cmd = app.add_subcommand(
        grid ? "grid" : "submit",
        grid ? "Run a grid search from a spec file (docs/cli.md): a row per "
               "trial as it finishes, then the ranking; exit 3 if it fails."
             : "Submit a job from a spec file (a range test or a grid) and "
               "follow it; --detach prints its id and returns.");
    common(*cmd);
    (*cmd)
        ->add_option("--spec", opts.spec_path,
                     "FILE.json or FILE.yaml: a SubmitJobRequest "
                     "(docs/examples/grid.yaml)")
        ->required();
    (*cmd)->add_flag("--detach", opts.detach, "print the job id and return");
  }
  return cmds;
}

int RunJobCommand(const std::string& cmd, const JobCommandOptions& opts,
                  std::ostream& out, std::ostream& err, bool progress) {
  absl::StatusOr<std::unique_ptr<client::Client>> connected =
      Connect(opts, cmd, err);
  if (!connected.ok()) return Fail(cmd, connected.status(), err);
  client::Client& client = **connected;
  if (cmd == "submit" || cmd == "grid") {
    return RunSubmit(cmd, client, opts, out, err, progress);
  }

  if (cmd == "jobs") {
    if (opts.limit < 1 || opts.limit > 500) {
      return Fail(
          cmd, absl::InvalidArgumentError("--limit must be in [1, 500]"), err);
    }
    v1::ListJobsRequest request;
    request.set_page_size(opts.limit);
    absl::StatusOr<v1::ListJobsResponse> jobs = client.ListJobs(request);
    if (!jobs.ok()) return Fail(cmd, jobs.status(), err);
    if (opts.json) {
      out << Json(*jobs) << "\n";
      return kExitOk;
    }
    out << absl::StrFormat("%-24s %-10s %-10s %-7s %s\n", "JOB", "KIND",
                           "STATE", "TASKS", "CREATED");
    for (const v1::Job& job : jobs->jobs()) {
      out << absl::StrFormat(
          "%-24s %-10s %-10s %3d/%-3d %s\n", job.job_id(),
          job.has_grid() ? "grid" : "range-test", StateName(job.state()),
          job.tasks_done(), job.tasks_total(),
          absl::FormatTime("%Y-%m-%d %H:%M:%S",
                           absl::FromUnixSeconds(job.create_time().seconds()),
                           absl::LocalTimeZone()));
    }
    return kExitOk;
  }
  if (cmd == "get") {
    absl::StatusOr<v1::Job> job = client.GetJob(opts.job_id);
    if (!job.ok()) return Fail(cmd, job.status(), err);
    if (opts.json) {
      out << Json(*job) << "\n";
    } else if (job->has_range_test()) {
      const int64_t ended =
          job->end_time().seconds() * 1000000000 + job->end_time().nanos();
      const int64_t created = job->create_time().seconds() * 1000000000 +
                              job->create_time().nanos();
      out << RangeTestSummary(*job, job->range_test_result().steps_run(),
                              ended > created ? (ended - created) * 1e-9 : 0);
    } else {
      out << absl::StrFormat(
          "job %s: %s, %d/%d tasks done%s\n", job->job_id(),
          StateName(job->state()), job->tasks_done(), job->tasks_total(),
          job->failure().empty() ? "" : ": " + job->failure());
    }
    return kExitOk;
  }
  if (cmd == "watch") {
    RangeTestReport report(0);
    absl::StatusOr<v1::Job> job = client.WatchJob(
        opts.job_id, opts.after_seq, [&](const v1::JobEvent& event) {
          if (opts.json) {
            out << Json(event) << "\n" << std::flush;
            return;
          }
          report.Add(event);
          if (progress) report.DrawProgress(err);
        });
    if (progress) report.ClearProgress(err);
    if (!job.ok()) return Fail(cmd, job.status(), err);
    if (!opts.json) {
      out << absl::StrFormat(
          "job %s: %s%s\n", job->job_id(), StateName(job->state()),
          job->failure().empty() ? "" : ": " + job->failure());
    }
    return JobExit(*job);
  }
  if (cmd == "cancel") {
    absl::StatusOr<v1::Job> job = client.CancelJob(opts.job_id, opts.reason);
    if (!job.ok()) return Fail(cmd, job.status(), err);
    out << (opts.json ? Json(*job)
                      : absl::StrFormat("job %s: %s", job->job_id(),
                                        StateName(job->state())))
        << "\n";
    return kExitOk;
  }
  return kExitUsage;
}

}  // namespace lrtune
