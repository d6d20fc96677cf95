// quality_study: measures lrtune's advice by training with it.
//
// For every setting of bench/quality/settings.json (a model, data set,
// optimizer and batch size), it records a range test's curves, trains an
// oracle grid of 1cycle `max_lr` values and of triangular-CLR bounds, and
// trains at the LR that lrtune and each classic rule (fastai's valley,
// minimum/10 and steep; torch-lr-finder's steepest point) read off the same
// curves. bench/quality/report.py turns the results into the gap table of
// docs/analysis.md; bench/quality/run.sh is the one command behind both.
//
//   quality_study --settings bench/quality/settings.json
//       --out bench/quality/results --stage curves --shard 0/2
//
// Stages, in this order (each resumable: what the output already holds is
// not run again; N processes with --shard I/N share the work):
//   curves  one range test per setting to the end of its ramp (the
//           divergence stop is off, so any divergence rule can be applied
//           afterwards) -> curves-<shard>.jsonl
//   oracle  the grids -> runs-<shard>.jsonl
//   advice  every rule's LR from the curves (advice.jsonl, rewritten by
//           shard 0) and training at it -> runs-<shard>.jsonl
//   train   oracle and advice together
//   candidates  1cycle runs at the LRs listed in <out>/candidates.jsonl, one
//           line per (setting, rule): {"setting", "rule", "max_lr": [one per
//           seed], "seeds": [optional; the range test's by default]}, at
//           every budget of the setting. bench/quality/rule_screen.py writes
//           it: rules screened on the curves but not in core, and the
//           oracle's own LR again at fresh seeds (its noise).
// Training runs are keyed by setting, schedule, LRs, budget and seed, so a
// rule that lands on an LR already trained costs nothing.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/curve_analysis.h"
#include "core/schedule.h"
#include "core/status_macros.h"
#include "core/suggestions.h"
#include "nlohmann/json.hpp"
#include "worker/engine.h"
#include "worker/job_json.h"

namespace {

using json = nlohmann::json;
using lrtune::AnalysisOptions;
using lrtune::CurvePoint;
using lrtune::Recommendation;
using lrtune::ScheduleKind;
using lrtune::ScheduleSpec;
namespace engine = lrtune::engine;

constexpr char kUsage[] =
    "usage: quality_study --settings FILE --out DIR [--stage S] [--only IDS]\n"
    "                     [--shard I/N] [--threads N]\n"
    "\n"
    "  --settings FILE  the study's settings (bench/quality/settings.json)\n"
    "  --out DIR        results: curves-*, runs-*.jsonl, advice.jsonl\n"
    "  --stage S        curves, oracle, advice, train (oracle + advice) or\n"
    "                   candidates (the LRs in DIR/candidates.jsonl)\n"
    "  --only IDS       comma-separated setting ids (default: every one)\n"
    "  --shard I/N      train only every N-th pending run from the I-th\n"
    "                   (default 0/1); run N processes for N cores\n"
    "  --threads N      CPU threads per process (default 1)\n";

// Flags, read once in main.
struct Options {
  std::string settings;        // required
  std::string out;             // required
  std::string stage;           // required
  std::set<std::string> only;  // empty: all settings
  int shard = 0;
  int shards = 1;
  int threads = 1;
};

struct Setting {
  std::string id;
  engine::EngineJob job;         // kind range_test: model, data, optimizer
  std::vector<int64_t> budgets;  // epochs
  double grid_lo = 0.0, grid_hi = 0.0;
  int grid_points = 13;
  bool cycle_momentum = true;  // 1cycle cycles momentum/beta1
  bool clr = true;             // also the triangular-CLR grid
};

// One training run of the study.
struct Run {
  std::string setting;
  std::string schedule;  // "one_cycle" or "triangular"
  double max_lr = 0.0;
  double min_lr = 0.0;  // triangular only
  int64_t epochs = 0;
  uint64_t seed = 0;

  std::string Key() const {
    return absl::StrFormat("%s|%s|%.6g|%.6g|%d|%d", setting, schedule, max_lr,
                           min_lr, epochs, seed);
  }
};

struct SeedCurve {
  uint64_t seed = 0;
  std::vector<double> lrs, losses;
};

struct Curves {
  int64_t iters_per_epoch = 0;
  int64_t steps = 0;  // planned range-test steps
  std::vector<SeedCurve> seeds;
};

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<json> ReadJsonLines(const std::string& path) {
  std::vector<json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded()) out.push_back(std::move(j));  // a torn last line
  }
  return out;
}

absl::StatusOr<std::vector<Setting>> LoadSettings(const std::string& path) {
  LRTUNE_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.contains("settings")) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": expected {\"settings\": [...]}"));
  }
  std::vector<Setting> out;
  for (const json& s : doc["settings"]) {
    Setting st;
    st.id = s.at("id").get<std::string>();
    absl::StatusOr<engine::EngineJob> job =
        engine::ParseJobJson(s.at("job").dump());
    if (!job.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": setting ", st.id, ": ", job.status().message()));
    }
    st.job = *job;
    st.budgets = s.at("budgets").get<std::vector<int64_t>>();
    st.grid_lo = s.at("grid").at(0).get<double>();
    st.grid_hi = s.at("grid").at(1).get<double>();
    st.grid_points = s.value("grid_points", 13);
    st.cycle_momentum = s.value("cycle_momentum", true);
    st.clr = s.value("clr", true);
    out.push_back(std::move(st));
  }
  return out;
}

std::vector<double> LogGrid(double lo, double hi, int n) {
  std::vector<double> v;
  for (int i = 0; i < n; ++i) {
    v.push_back(lo * std::pow(hi / lo, n == 1 ? 0.0 : double(i) / (n - 1)));
  }
  return v;
}

// --- stage curves ---------------------------------------------------------

absl::Status RecordCurves(const Setting& s, int threads, std::ostream& out) {
  engine::JobSpec job = s.job.job;
  job.device.threads = threads;
  engine::RangeTestSpec spec = s.job.range_test;
  // Run the whole ramp: the divergence rules are applied afterwards.
  spec.analysis.divergence_factor = 1e300;
  LRTUNE_ASSIGN_OR_RETURN(engine::RangeTestResult r,
                          engine::RunRangeTest(job, spec, {}));
  json line = {{"setting", s.id},
               {"iters_per_epoch", r.per_seed.front().stepsize_iterations /
                                       spec.analysis.stepsize_k},
               {"steps", spec.steps},
               {"seconds", r.train_seconds}};
  std::vector<uint64_t> seeds = spec.seeds;
  if (seeds.empty()) seeds.push_back(job.seed);
  for (size_t i = 0; i < r.curves.size(); ++i) {
    json c = {
        {"seed", seeds[i]}, {"lr", json::array()}, {"loss", json::array()}};
    for (const CurvePoint& p : r.curves[i]) {
      c["lr"].push_back(p.lr);
      c["loss"].push_back(std::isfinite(p.loss) ? json(p.loss) : json(nullptr));
    }
    line["seeds"].push_back(c);
  }
  out << line.dump() << "\n" << std::flush;
  return absl::OkStatus();
}

// Every shard's file: runs-0.jsonl ... (or curves-*) up to the first gap.
std::vector<json> ReadShardFiles(const std::string& dir,
                                 const std::string& stem) {
  std::vector<json> out;
  for (int i = 0; i < 64; ++i) {
    const std::string path = absl::StrCat(dir, "/", stem, "-", i, ".jsonl");
    if (!std::ifstream(path)) continue;
    for (json& j : ReadJsonLines(path)) out.push_back(std::move(j));
  }
  return out;
}

std::map<std::string, Curves> LoadCurves(const std::string& dir) {
  std::map<std::string, Curves> out;
  for (const json& j : ReadShardFiles(dir, "curves")) {
    Curves c;
    c.iters_per_epoch = j.at("iters_per_epoch").get<int64_t>();
    c.steps = j.at("steps").get<int64_t>();
    for (const json& sj : j.at("seeds")) {
      SeedCurve sc;
      sc.seed = sj.at("seed").get<uint64_t>();
      sc.lrs = sj.at("lr").get<std::vector<double>>();
      for (const json& l : sj.at("loss")) {
        sc.losses.push_back(l.is_null() ? std::nan("") : l.get<double>());
      }
      c.seeds.push_back(std::move(sc));
    }
    out[j.at("setting").get<std::string>()] = std::move(c);
  }
  return out;
}

// --- stage advice: every rule's LR from the same curves --------------------

struct Advice {
  std::string rule;      // lrtune, fastai_valley, ...
  std::string schedule;  // one_cycle, triangular
  // Per seed of the training runs: the LR(s) to train that seed at. lrtune
  // aggregates its seeds into one recommendation; a classic tool reads one
  // curve, so seed i trains at what seed i's curve gave.
  std::vector<double> max_lr, min_lr;
  json detail;  // what the rule saw (spread, warnings)
};

double LrAt(const lrtune::AnchorCurve& c, const absl::StatusOr<int64_t>& idx) {
  return idx.ok() ? c.lrs[static_cast<size_t>(*idx)] : std::nan("");
}

absl::StatusOr<std::vector<Advice>> ComputeAdvice(const Setting& s,
                                                  const Curves& c) {
  // As the engine reads the curve (the momentum, Adam's batch scale), but
  // fastai's suggestions read from the recorded points' tenth on, as the
  // study's classic-rule columns always have (the engine's from the
  // planned steps' tenth: the same unless a seed diverged early).
  AnalysisOptions options = lrtune::CurveAnalysisOptions(
      s.job.job, s.job.range_test, c.iters_per_epoch);
  options.planned_steps = s.job.range_test.analysis.planned_steps;
  std::vector<Recommendation> per_seed;
  Advice valley{"fastai_valley", "one_cycle", {}, {}, {}};
  Advice minimum{"fastai_minimum", "one_cycle", {}, {}, {}};
  Advice steep{"fastai_steep", "one_cycle", {}, {}, {}};
  Advice finder{"lrfinder_steepest", "one_cycle", {}, {}, {}};
  for (const SeedCurve& sc : c.seeds) {
    std::vector<CurvePoint> points;
    for (size_t i = 0; i < sc.lrs.size(); ++i) {
      points.push_back({static_cast<int64_t>(i), sc.lrs[i], sc.losses[i]});
    }
    LRTUNE_ASSIGN_OR_RETURN(Recommendation r,
                            lrtune::AnalyzeCurve(points, options));
    per_seed.push_back(std::move(r));
    const lrtune::AnchorCurve fa =
        lrtune::FastaiRecorderCurve(sc.lrs, sc.losses, c.steps);
    valley.max_lr.push_back(LrAt(fa, lrtune::ComputeValleyIndex(fa.losses)));
    minimum.max_lr.push_back(LrAt(fa, lrtune::ComputeMinimumIndex(fa.losses)) /
                             10.0);
    steep.max_lr.push_back(
        LrAt(fa, lrtune::ComputeSteepIndex(fa.lrs, fa.losses)));
    const lrtune::AnchorCurve lf = lrtune::LrFinderCurve(sc.lrs, sc.losses);
    finder.max_lr.push_back(
        LrAt(lf, lrtune::ComputeLrFinderSteepestIndex(lf.losses)));
  }
  LRTUNE_ASSIGN_OR_RETURN(Recommendation agg, lrtune::AggregateSeeds(per_seed));
  const size_t n = c.seeds.size();
  json detail = {{"spread_decades", agg.spread_decades},
                 {"min_lr", agg.min_lr},
                 {"max_lr", agg.max_lr},
                 {"warnings", json::array()},
                 {"per_seed_max_lr", json::array()},
                 {"per_seed_min_lr", json::array()}};
  for (const auto& w : agg.warnings) detail["warnings"].push_back(w.code);
  for (const Recommendation& r : per_seed) {
    detail["per_seed_max_lr"].push_back(r.max_lr);
    detail["per_seed_min_lr"].push_back(r.min_lr);
  }
  Advice one_cycle{
      "lrtune", "one_cycle", std::vector<double>(n, agg.max_lr), {}, detail};
  Advice clr{"lrtune", "triangular", std::vector<double>(n, agg.max_lr),
             std::vector<double>(n, agg.min_lr), detail};
  std::vector<Advice> out = {one_cycle, valley, minimum, steep, finder};
  if (s.clr) out.push_back(clr);
  return out;
}

// --- training --------------------------------------------------------------

ScheduleSpec ScheduleFor(const Setting& s, const Run& run, int64_t total) {
  ScheduleSpec spec;
  if (run.schedule == "one_cycle") {
    spec = ScheduleSpec::OneCycle(run.max_lr, total);
    spec.cycle_momentum = s.cycle_momentum;
  } else {  // one triangular cycle over the budget, momentum held
    spec.kind = ScheduleKind::kTriangular;
    spec.base_lr = run.min_lr;
    spec.max_lr = run.max_lr;
    spec.step_size_up = std::max<int64_t>(1, total / 2);
    spec.step_size_down = std::max<int64_t>(1, total - spec.step_size_up);
    spec.cycle_momentum = false;
  }
  return spec;
}

json Train(const Setting& s, const Run& run, int64_t iters_per_epoch,
           int threads) {
  engine::JobSpec job = s.job.job;
  job.seed = run.seed;
  job.device.threads = threads;
  engine::TrainSpec train;
  train.epochs = run.epochs;
  train.point_every = 1 << 30;
  train.schedule = ScheduleFor(s, run, run.epochs * iters_per_epoch);
  json out = {{"key", run.Key()},         {"setting", run.setting},
              {"schedule", run.schedule}, {"max_lr", run.max_lr},
              {"min_lr", run.min_lr},     {"epochs", run.epochs},
              {"seed", run.seed}};
  absl::StatusOr<engine::TrainResult> r = engine::RunTraining(job, train, {});
  if (r.ok()) {
    out["val_accuracy"] = r->final_eval.val_accuracy;
    out["val_loss"] = r->final_eval.val_loss;
    out["diverged"] = false;
    out["seconds"] = r->train_seconds;
  } else if (absl::IsFailedPrecondition(r.status())) {  // a non-finite loss
    out["diverged"] = true;
    out["error"] = std::string(r.status().message());
  } else {
    out["error"] = std::string(r.status().message());
  }
  return out;
}

// --- stage candidates: LRs a screen chose, trained like any rule's ---------

struct Candidate {
  std::string rule;
  std::vector<double> max_lr;   // one per seed
  std::vector<uint64_t> seeds;  // empty: the setting's range-test seeds
};

// <out>/candidates.jsonl by setting id; InvalidArgument naming the line on a
// malformed one (a missing file is an error too: the stage needs it).
absl::StatusOr<std::map<std::string, std::vector<Candidate>>> LoadCandidates(
    const std::string& dir) {
  const std::string path = dir + "/candidates.jsonl";
  if (!std::ifstream(path)) {
    return absl::NotFoundError(absl::StrCat(
        "cannot read ", path, " (bench/quality/rule_screen.py writes it)"));
  }
  std::map<std::string, std::vector<Candidate>> out;
  int line = 0;
  for (const json& j : ReadJsonLines(path)) {
    ++line;
    Candidate c;
    if (!j.is_object() || !j.contains("setting") || !j.contains("rule") ||
        !j.contains("max_lr") || !j["max_lr"].is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, " line ", line,
          ": expected {\"setting\", \"rule\", \"max_lr\": [...]}"));
    }
    c.rule = j["rule"].get<std::string>();
    c.max_lr = j["max_lr"].get<std::vector<double>>();
    if (j.contains("seeds")) c.seeds = j["seeds"].get<std::vector<uint64_t>>();
    if (!c.seeds.empty() && c.seeds.size() != c.max_lr.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, " line ", line, ": seeds and max_lr differ in length"));
    }
    out[j["setting"].get<std::string>()].push_back(std::move(c));
  }
  return out;
}

bool Pick(const Options& o, const Setting& s) {
  return o.only.empty() || o.only.count(s.id) > 0;
}

int Fail(const absl::Status& st) {
  std::fprintf(stderr, "quality_study: %s\n",
               std::string(st.message()).c_str());
  return 1;
}

int Main(const Options& o) {
  absl::StatusOr<std::vector<Setting>> settings = LoadSettings(o.settings);
  if (!settings.ok()) return Fail(settings.status());
  const bool train_all = o.stage == "train";

  if (o.stage == "curves") {
    std::map<std::string, Curves> have = LoadCurves(o.out);
    std::ofstream out(absl::StrCat(o.out, "/curves-", o.shard, ".jsonl"),
                      std::ios::app);
    for (size_t i = 0; i < settings->size(); ++i) {
      const Setting& s = (*settings)[i];
      if (!Pick(o, s) || have.count(s.id) > 0 ||
          i % static_cast<size_t>(o.shards) != static_cast<size_t>(o.shard)) {
        continue;
      }
      std::fprintf(stderr, "curves %s\n", s.id.c_str());
      if (absl::Status st = RecordCurves(s, o.threads, out); !st.ok()) {
        return Fail(st);
      }
    }
    return 0;
  }
  std::map<std::string, Curves> curves = LoadCurves(o.out);

  std::vector<Run> runs;
  std::vector<const Setting*> run_setting;
  auto add = [&](const Setting& s, Run r) {
    runs.push_back(std::move(r));
    run_setting.push_back(&s);
  };
  std::map<std::string, std::vector<Candidate>> candidates;
  if (o.stage == "candidates") {
    absl::StatusOr<std::map<std::string, std::vector<Candidate>>> c =
        LoadCandidates(o.out);
    if (!c.ok()) return Fail(c.status());
    candidates = std::move(*c);
  }
  std::ofstream advice_out;
  if ((train_all || o.stage == "advice") && o.shard == 0) {
    advice_out.open(o.out + "/advice.jsonl", std::ios::trunc);
  }
  for (const Setting& s : *settings) {
    if (!Pick(o, s) || curves.count(s.id) == 0) continue;
    const std::vector<uint64_t>& seeds = s.job.range_test.seeds;
    if (train_all || o.stage == "oracle") {
      for (int64_t b : s.budgets) {
        for (double lr : LogGrid(s.grid_lo, s.grid_hi, s.grid_points)) {
          for (uint64_t seed : seeds) {
            add(s, {s.id, "one_cycle", lr, 0.0, b, seed});
            if (s.clr) add(s, {s.id, "triangular", lr, lr / 4.0, b, seed});
          }
        }
      }
    }
    for (const Candidate& c : candidates[s.id]) {
      const std::vector<uint64_t>& cs = c.seeds.empty() ? seeds : c.seeds;
      for (int64_t b : s.budgets) {
        for (size_t i = 0; i < cs.size() && i < c.max_lr.size(); ++i) {
          if (c.max_lr[i] > 0.0) {
            add(s, {s.id, "one_cycle", c.max_lr[i], 0.0, b, cs[i]});
          }
        }
      }
    }
    if (train_all || o.stage == "advice") {
      absl::StatusOr<std::vector<Advice>> advice =
          ComputeAdvice(s, curves.at(s.id));
      if (!advice.ok()) return Fail(advice.status());
      for (const Advice& a : *advice) {
        if (advice_out.is_open()) {
          advice_out << json({{"setting", s.id},
                              {"rule", a.rule},
                              {"schedule", a.schedule},
                              {"max_lr", a.max_lr},
                              {"min_lr", a.min_lr},
                              {"detail", a.detail}})
                            .dump()
                     << "\n";
        }
        for (int64_t b : s.budgets) {
          for (size_t i = 0; i < seeds.size() && i < a.max_lr.size(); ++i) {
            const double max_lr = a.max_lr[i];
            const double min_lr = a.min_lr.empty() ? 0.0 : a.min_lr[i];
            if (!(max_lr > 0.0) ||
                (a.schedule == "triangular" && !(min_lr > 0.0))) {
              continue;  // the rule gave nothing; the report counts it
            }
            add(s, {s.id, a.schedule, max_lr, min_lr, b, seeds[i]});
          }
        }
      }
    }
  }
  advice_out.close();

  // Everything any shard has trained counts as done.
  std::set<std::string> done;
  for (const json& j : ReadShardFiles(o.out, "runs")) {
    done.insert(j.at("key").get<std::string>());
  }
  // A run belongs to the shard its key hashes to, so shards that start at
  // different times (and so see different `done` sets) never split the
  // same run or skip one.
  std::vector<size_t> pending;
  std::set<std::string> seen;
  for (size_t i = 0; i < runs.size(); ++i) {
    const std::string key = runs[i].Key();
    if (done.count(key) > 0 || !seen.insert(key).second) continue;
    if (std::hash<std::string>{}(key) % static_cast<size_t>(o.shards) !=
        static_cast<size_t>(o.shard)) {
      continue;
    }
    pending.push_back(i);
  }
  std::ofstream out(absl::StrCat(o.out, "/runs-", o.shard, ".jsonl"),
                    std::ios::app);
  size_t count = 0;
  for (size_t k = 0; k < pending.size(); ++k) {
    const Run& run = runs[pending[k]];
    const Setting& s = *run_setting[pending[k]];
    json r = Train(s, run, curves.at(s.id).iters_per_epoch, o.threads);
    out << r.dump() << "\n" << std::flush;
    std::fprintf(
        stderr, "[%zu/%zu] %s acc %s\n", ++count, pending.size(),
        run.Key().c_str(),
        r.contains("val_accuracy")
            ? absl::StrFormat("%.4f", r["val_accuracy"].get<double>()).c_str()
            : "-");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  auto usage = [](const std::string& msg) {
    std::fprintf(stderr, "quality_study: %s\n\n%s", msg.c_str(), kUsage);
    return 2;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (i + 1 >= argc) return usage(a + " needs a value");
    const std::string v = argv[++i];
    if (a == "--settings") {
      o.settings = v;
    } else if (a == "--out") {
      o.out = v;
    } else if (a == "--stage") {
      o.stage = v;
    } else if (a == "--only") {
      std::stringstream ss(v);
      for (std::string id; std::getline(ss, id, ',');) o.only.insert(id);
    } else if (a == "--shard") {
      if (std::sscanf(v.c_str(), "%d/%d", &o.shard, &o.shards) != 2 ||
          o.shards < 1 || o.shards > 64 || o.shard < 0 || o.shard >= o.shards) {
        return usage("--shard must be I/N with 0 <= I < N <= 64, got " + v);
      }
    } else if (a == "--threads") {
      o.threads = std::atoi(v.c_str());
      if (o.threads < 1) return usage("--threads must be >= 1, got " + v);
    } else {
      return usage("unknown flag " + a);
    }
  }
  if (o.settings.empty() || o.out.empty() || o.stage.empty()) {
    return usage("--settings, --out and --stage are required");
  }
  if (o.stage != "train" && o.stage != "curves" && o.stage != "oracle" &&
      o.stage != "advice" && o.stage != "candidates") {
    return usage(
        "--stage must be curves, oracle, advice, train or candidates, got \"" +
        o.stage + "\"");
  }
  engine::TuneAllocatorForTraining();
  return Main(o);
}
