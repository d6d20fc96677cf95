// Schedule training (RunTraining): the optimizer loop over a budget, with
// evaluations at epoch ends, on a step cadence and at the schedule's cycle
// ends, cycle-aware early stopping, snapshot ensembles, skipped updates
// under loss scaling, and checkpoints that hold all of it, so that a
// resumed run emits exactly what the uninterrupted one would have.
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/early_stopping.h"
#include "core/status_macros.h"
#include "worker/torch_internal.h"
#include "worker/trainer.h"

namespace lrtune::engine::internal {
namespace {

using Clock = std::chrono::steady_clock;

bool FileExists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

double MetricOf(StopMetric metric, const Evaluation& e) {
  return metric == StopMetric::kValLoss ? e.val_loss : e.val_accuracy;
}

// An Evaluation as checkpoint values under `prefix`, and back.
void PutEvaluation(const std::string& prefix, const Evaluation& e,
                   std::map<std::string, double>& values) {
  values[prefix + "step"] = static_cast<double>(e.step);
  values[prefix + "epoch"] = static_cast<double>(e.epoch);
  values[prefix + "lr"] = e.lr;
  values[prefix + "train_loss"] = e.train_loss;
  values[prefix + "val_loss"] = e.val_loss;
  values[prefix + "val_accuracy"] = e.val_accuracy;
}

Evaluation GetEvaluation(const std::string& prefix,
                         const std::map<std::string, double>& values) {
  auto v = [&](const char* field) {
    auto it = values.find(prefix + field);
    return it == values.end() ? 0.0 : it->second;
  };
  return Evaluation{0,
                    static_cast<int64_t>(v("step")),
                    static_cast<int64_t>(v("epoch")),
                    v("lr"),
                    v("train_loss"),
                    v("val_loss"),
                    v("val_accuracy")};
}

// A kept set of weights: a snapshot, or early stopping's best.
struct KeptWeights {
  SnapshotInfo info;
  std::vector<torch::Tensor> weights;
};

class TrainingRun {
 public:
  TrainingRun(const JobSpec& job, const TrainSpec& spec, const Callbacks& cb,
              const CancellationToken* cancel)
      : job_(job),
        spec_(spec),
        cb_(cb),
        cancel_(cancel),
        stopper_(spec.early_stopping) {}

  absl::StatusOr<TrainResult> Run();

 private:
  absl::Status Prepare();
  absl::Status RestoreCheckpoint();
  absl::Status SaveCheckpoint(int64_t step);
  // Runs update t until loss scaling lets it through; false when it gave
  // up (the gradients are not finite at any scale).
  absl::StatusOr<bool> Update(int64_t t, double lr,
                              std::optional<double> momentum);
  absl::Status Drain(bool flush);
  // The evaluation after `done` updates, and what it decides: snapshot,
  // early stopping. Sets stop_ when patience is spent.
  absl::Status Evaluate(int64_t done, double lr, bool cycle_end);
  absl::Status Finish(int64_t done);

  const JobSpec& job_;
  const TrainSpec& spec_;
  const Callbacks& cb_;
  const CancellationToken* cancel_;

  std::optional<Schedule> schedule_;
  Setup setup_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Trainer> trainer_;
  int64_t spe_ = 0;    // updates per epoch
  int64_t total_ = 0;  // the budget in updates
  std::vector<int64_t> cycle_ends_;
  std::vector<int64_t> rungs_;  // spec_.rung_steps within the budget
  bool early_stopping_ = false;
  TrainResult result_;
  Clock::time_point start_;

  // The loop's state, all of it saved with a checkpoint.
  int64_t first_ = 0;
  int64_t records_ = 0;  // points and evaluations emitted
  EmaSmoother smoother_{0.98};
  double loss_sum_ = 0.0;
  int64_t loss_count_ = 0;
  bool have_eval_ = false;
  double elapsed_before_ = 0.0;  // seconds trained before the restored step
  EarlyStopping stopper_;
  KeptWeights best_;                // early stopping's best (weights empty:
                                    // none yet, or restore_best off)
  std::deque<KeptWeights> recent_;  // the last snapshot_ensemble snapshots
  int skipped_ = 0;                 // updates skipped at the current step

  std::deque<PendingPoint> pending_;
  absl::Status failure_;
  bool stop_ = false;
};

absl::Status TrainingRun::Prepare() {
  LRTUNE_RETURN_IF_ERROR(ValidateTrain(spec_));
  LRTUNE_ASSIGN_OR_RETURN(schedule_, Schedule::Create(spec_.schedule));
  LRTUNE_ASSIGN_OR_RETURN(setup_, internal::Prepare(job_, cb_));
  LRTUNE_ASSIGN_OR_RETURN(model_, BuildModel(job_.model, setup_.data, job_.loss,
                                             job_.seed, setup_.device));
  LRTUNE_ASSIGN_OR_RETURN(
      trainer_,
      Trainer::Create(job_, setup_.data, *model_, {job_.seed}, setup_.device));
  spe_ = trainer_->steps_per_epoch();
  total_ = spec_.steps > 0 ? spec_.steps : spec_.epochs * spe_;
  if (schedule_->length() > 0 && schedule_->length() < total_) {
    return absl::InvalidArgumentError(
        absl::StrCat("train.schedule is built for ", schedule_->length(),
                     " steps but the budget is ", total_, " steps"));
  }
  if (absl::Status st = schedule_->CheckFinite(total_); !st.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("train.schedule: ", st.message()));
  }
  for (int64_t step : spec_.rung_steps) {
    if (step < total_) rungs_.push_back(step);
  }
  early_stopping_ = spec_.early_stopping.patience > 0;
  if (early_stopping_ || spec_.snapshot_ensemble > 0) {
    cycle_ends_ = CycleEnds(*schedule_, total_);
  }
  if (spec_.snapshot_ensemble > 0) {
    if (cycle_ends_.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "train.snapshot_ensemble needs a schedule whose cycles end within "
          "the budget (triangular, sgdr, a decaying or cyclic profile, ...); "
          "train.schedule is ",
          ScheduleKindName(schedule_->spec().kind), " over ", total_,
          " steps"));
    }
    if (job_.loss != LossKind::kCrossEntropy) {
      return absl::InvalidArgumentError(
          "train.snapshot_ensemble averages softmax outputs: it needs loss "
          "cross_entropy");
    }
    if (!spec_.snapshot_dir.empty()) {
      ::mkdir(spec_.snapshot_dir.c_str(), 0755);  // may exist already
    }
  }
  if (early_stopping_ &&
      spec_.early_stopping.metric == StopMetric::kValAccuracy &&
      job_.loss != LossKind::kCrossEntropy) {
    return absl::InvalidArgumentError(
        "train.early_stopping.metric val_accuracy needs loss cross_entropy "
        "(an mse model has no accuracy); use val_loss");
  }
  result_.device = DeviceName(setup_.device);
  return absl::OkStatus();
}

absl::Status TrainingRun::RestoreCheckpoint() {
  const std::string& ckpt = spec_.checkpoint_path;
  if (ckpt.empty()) return absl::OkStatus();
  // The newest checkpoint, else the one before it (SaveCheckpoint keeps
  // it): the first that the caller's stored records reach.
  bool skipped = false;
  for (const std::string& candidate :
       {ckpt, ckpt + kPreviousCheckpointSuffix}) {
    if (!FileExists(candidate)) continue;
    LRTUNE_ASSIGN_OR_RETURN(Trainer::CheckpointState saved,
                            Trainer::ReadCheckpointState(candidate));
    auto it = saved.values.find("records");
    const int64_t saved_records =
        it == saved.values.end() ? -1 : static_cast<int64_t>(it->second);
    if (spec_.max_restored_records >= 0 &&
        (saved_records < 0 || saved_records > spec_.max_restored_records)) {
      if (cb_.on_progress) {
        cb_.on_progress(
            absl::StrCat("not restoring ", candidate, " (step ", saved.step,
                         "): it follows ", saved_records, " records and only ",
                         spec_.max_restored_records, " are stored"));
      }
      skipped = true;
      continue;
    }
    LRTUNE_ASSIGN_OR_RETURN(saved, trainer_->RestoreCheckpoint(candidate));
    const std::map<std::string, double>& values = saved.values;
    auto value = [&values](const std::string& name) {
      auto v = values.find(name);
      return v == values.end() ? 0.0 : v->second;
    };
    first_ = saved.step;
    records_ = std::max<int64_t>(saved_records, 0);
    if (values.count("ema_beta_pow") > 0) {
      smoother_.Restore({value("ema_avg"), value("ema_beta_pow"),
                         static_cast<int64_t>(value("ema_count"))});
    }
    loss_sum_ = value("loss_sum");
    loss_count_ = static_cast<int64_t>(value("loss_count"));
    elapsed_before_ = value("elapsed_s");
    have_eval_ = value("have_eval") != 0.0;
    if (have_eval_) {
      result_.final_eval = GetEvaluation("final.", values);
      result_.best_eval = GetEvaluation("best.", values);
    }
    result_.skipped_updates = static_cast<int64_t>(value("skipped_updates"));
    // Early stopping's count, its best and that evaluation's weights.
    if (values.count("stop.best_step") > 0) {
      stopper_.Restore({value("stop.best"),
                        static_cast<int64_t>(value("stop.best_step")),
                        static_cast<int64_t>(value("stop.since_best"))});
    }
    if (stopper_.has_best()) {
      best_.info.step = stopper_.best_step();
      best_.info.eval = GetEvaluation("stop.eval.", values);
    }
    auto weights = [&saved](const std::string& prefix) {
      std::vector<torch::Tensor> out;
      for (int i = 0;; ++i) {
        auto t = saved.tensors.find(absl::StrCat(prefix, i));
        if (t == saved.tensors.end()) return out;
        out.push_back(t->second);
      }
    };
    best_.weights = weights("stop.weights.");
    // Every snapshot's record; the last ones' weights.
    const int64_t snapshots = static_cast<int64_t>(value("snapshots"));
    for (int64_t i = 0; i < snapshots; ++i) {
      const std::string prefix = absl::StrCat("snapshot.", i, ".");
      SnapshotInfo info;
      info.step = static_cast<int64_t>(value(prefix + "at"));
      info.eval = GetEvaluation(prefix, values);
      info.path = spec_.snapshot_dir.empty()
                      ? ""
                      : absl::StrCat(spec_.snapshot_dir, "/snapshot-",
                                     info.step, ".pt");
      result_.snapshots.push_back(info);
      std::vector<torch::Tensor> w = weights(prefix + "weights.");
      if (!w.empty()) recent_.push_back({info, std::move(w)});
    }
    result_.resumed_from = first_;
    if (cb_.on_progress) {
      cb_.on_progress(absl::StrCat("restored ", candidate, " at step ", first_,
                                   " (", records_, " records before it)"));
    }
    if (cb_.on_restore) cb_.on_restore(first_, records_);
    return absl::OkStatus();
  }
  if (skipped && cb_.on_progress) {
    cb_.on_progress("not restoring any checkpoint: training from step 0");
  }
  return absl::OkStatus();
}

absl::Status TrainingRun::SaveCheckpoint(int64_t step) {
  Trainer::CheckpointState state;
  state.step = step;
  const EmaSmoother::State ema = smoother_.state();
  state.values = {
      {"records", static_cast<double>(records_)},
      {"ema_avg", ema.avg},
      {"ema_beta_pow", ema.beta_pow},
      {"ema_count", static_cast<double>(ema.count)},
      {"loss_sum", loss_sum_},
      {"loss_count", static_cast<double>(loss_count_)},
      {"elapsed_s", elapsed_before_ + Seconds(start_)},
      {"have_eval", have_eval_ ? 1.0 : 0.0},
      {"skipped_updates", static_cast<double>(result_.skipped_updates)}};
  PutEvaluation("final.", result_.final_eval, state.values);
  PutEvaluation("best.", result_.best_eval, state.values);
  const EarlyStopping::State stop = stopper_.state();
  state.values["stop.best"] = stop.best;
  state.values["stop.best_step"] = static_cast<double>(stop.best_step);
  state.values["stop.since_best"] = static_cast<double>(stop.since_best);
  PutEvaluation("stop.eval.", best_.info.eval, state.values);
  for (size_t i = 0; i < best_.weights.size(); ++i) {
    state.tensors[absl::StrCat("stop.weights.", i)] = best_.weights[i];
  }
  state.values["snapshots"] = static_cast<double>(result_.snapshots.size());
  const size_t kept_from = result_.snapshots.size() - recent_.size();
  for (size_t i = 0; i < result_.snapshots.size(); ++i) {
    const std::string prefix = absl::StrCat("snapshot.", i, ".");
    state.values[prefix + "at"] =
        static_cast<double>(result_.snapshots[i].step);
    PutEvaluation(prefix, result_.snapshots[i].eval, state.values);
    if (i < kept_from) continue;
    const std::vector<torch::Tensor>& w = recent_[i - kept_from].weights;
    for (size_t j = 0; j < w.size(); ++j) {
      state.tensors[absl::StrCat(prefix, "weights.", j)] = w[j];
    }
  }
  return trainer_->SaveCheckpoint(spec_.checkpoint_path, state);
}

absl::StatusOr<bool> TrainingRun::Update(int64_t t, double lr,
                                         std::optional<double> momentum) {
  while (!trainer_->Step(t, lr, momentum)) {
    ++skipped_;
    ++result_.skipped_updates;
    if (cb_.on_progress) {
      cb_.on_progress(SkipMessage(t, lr, trainer_->loss_scale()));
    }
    if (skipped_ >= kMaxSkippedInARow) return false;
  }
  return true;
}

absl::Status TrainingRun::Drain(bool flush) {
  for (double loss : trainer_->TakeLosses(flush)) {
    PendingPoint p = pending_.front();
    pending_.pop_front();
    if (!failure_.ok()) continue;
    if (!std::isfinite(loss)) {
      failure_ = absl::FailedPreconditionError(
          absl::StrCat("training diverged: loss is ", loss, " at step ", p.step,
                       " (lr ", p.lr, "); lower the learning rate"));
      continue;
    }
    loss_sum_ += loss;
    ++loss_count_;
    const double smoothed = smoother_.Add(loss);
    if (p.step % spec_.point_every == 0) {
      ++records_;
      if (cb_.on_point) {
        cb_.on_point({0, p.step, p.lr, p.momentum, loss, smoothed, p.elapsed,
                      p.skipped});
      }
    }
  }
  return failure_;
}

absl::Status TrainingRun::Evaluate(int64_t done, double lr, bool cycle_end) {
  LRTUNE_RETURN_IF_ERROR(Drain(/*flush=*/true));
  const EvalResult e = trainer_->Evaluate(0);
  Evaluation ev{0,
                done,
                done / spe_,
                lr,
                loss_count_ > 0 ? loss_sum_ / static_cast<double>(loss_count_)
                                : std::nan(""),
                e.loss,
                e.accuracy};
  loss_sum_ = 0.0;
  loss_count_ = 0;
  ++records_;
  if (cb_.on_evaluation) cb_.on_evaluation(ev);
  result_.final_eval = ev;
  if (!have_eval_ || ev.val_loss < result_.best_eval.val_loss) {
    result_.best_eval = ev;
  }
  have_eval_ = true;
  if (cycle_end && spec_.snapshot_ensemble > 0) {
    KeptWeights snap{{done, ev, ""}, trainer_->CopyWeights()};
    if (!spec_.snapshot_dir.empty()) {
      snap.info.path =
          absl::StrCat(spec_.snapshot_dir, "/snapshot-", done, ".pt");
      LRTUNE_RETURN_IF_ERROR(
          trainer_->SaveWeights(snap.info.path, snap.weights));
    }
    result_.snapshots.push_back(snap.info);
    recent_.push_back(std::move(snap));
    while (static_cast<int64_t>(recent_.size()) > spec_.snapshot_ensemble) {
      recent_.pop_front();
    }
  }
  // A cyclical schedule is judged where its cycles end; one without cycles
  // at every evaluation.
  if (early_stopping_ && (cycle_end || cycle_ends_.empty())) {
    const EarlyStopping::Verdict v =
        stopper_.Observe(done, MetricOf(spec_.early_stopping.metric, ev));
    if (v.improved) {
      best_.info = {done, ev, ""};
      if (spec_.early_stopping.restore_best) {
        best_.weights = trainer_->CopyWeights();
      }
    }
    if (v.stop) {
      stop_ = true;
      if (cb_.on_progress) {
        cb_.on_progress(absl::StrCat(
            "early stopping at step ", done, ": no improvement of ",
            StopMetricName(spec_.early_stopping.metric), " for ",
            spec_.early_stopping.patience,
            cycle_ends_.empty() ? " evaluations" : " cycles",
            "; the best was at step ", stopper_.best_step()));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status TrainingRun::Finish(int64_t done) {
  LRTUNE_RETURN_IF_ERROR(Drain(/*flush=*/true));
  if (!have_eval_) {  // restored at the end of the budget
    const EvalResult e = trainer_->Evaluate(0);
    result_.final_eval = {0,
                          total_,
                          total_ / spe_,
                          schedule_->Lr(total_ - 1),
                          std::nan(""),
                          e.loss,
                          e.accuracy};
    result_.best_eval = result_.final_eval;
  }
  result_.steps = done;
  result_.stopped_early = stop_;
  if (result_.pruned_at_step >= 0) {  // its caller ended it: nothing more
    result_.train_seconds = Seconds(start_);
    return absl::OkStatus();
  }
  if (early_stopping_ && stopper_.has_best()) {
    result_.early_stopping_best = best_.info.eval;
    if (!best_.weights.empty()) {
      LRTUNE_RETURN_IF_ERROR(trainer_->LoadWeights(best_.weights));
      // Measured again: the weights the run ends with, evaluated.
      const EvalResult e = trainer_->Evaluate(0);
      result_.final_eval = best_.info.eval;
      result_.final_eval.val_loss = e.loss;
      result_.final_eval.val_accuracy = e.accuracy;
      result_.restored_best = true;
    }
  }
  if (!recent_.empty()) {
    std::vector<const std::vector<torch::Tensor>*> members;
    for (const KeptWeights& k : recent_) members.push_back(&k.weights);
    const EvalResult e = trainer_->EvaluateEnsemble(members);
    const SnapshotInfo& last = recent_.back().info;
    result_.ensemble_eval = {
        0,      last.step, last.step / spe_, last.eval.lr, std::nan(""),
        e.loss, e.accuracy};
    result_.ensemble_size = static_cast<int>(recent_.size());
    if (cb_.on_progress) {
      cb_.on_progress(absl::StrCat(
          "snapshot ensemble of ", recent_.size(), ": accuracy ", e.accuracy,
          " (the last snapshot alone: ", last.eval.val_accuracy, ")"));
    }
  }
  result_.train_seconds = Seconds(start_);
  return absl::OkStatus();
}

absl::StatusOr<TrainResult> TrainingRun::Run() {
  LRTUNE_RETURN_IF_ERROR(Prepare());
  LRTUNE_RETURN_IF_ERROR(RestoreCheckpoint());
  start_ = Clock::now();
  const bool checkpoints = !spec_.checkpoint_path.empty();
  auto next_cycle_end =
      std::upper_bound(cycle_ends_.begin(), cycle_ends_.end(), first_);
  auto next_rung = std::upper_bound(rungs_.begin(), rungs_.end(), first_);
  int64_t done = first_;
  for (int64_t t = first_; t < total_ && !stop_; ++t) {
    if (cancel_ != nullptr && cancel_->cancelled()) {
      LRTUNE_RETURN_IF_ERROR(Drain(/*flush=*/true));
      if (checkpoints) LRTUNE_RETURN_IF_ERROR(SaveCheckpoint(t));
      return absl::CancelledError(
          absl::StrCat("training cancelled at step ", t));
    }
    const double lr = schedule_->Lr(t);
    const std::optional<double> momentum = schedule_->Momentum(t);
    LRTUNE_ASSIGN_OR_RETURN(const bool applied, Update(t, lr, momentum));
    if (!applied) {
      return absl::FailedPreconditionError(absl::StrCat(
          "training: the gradients were not finite for ", kMaxSkippedInARow,
          " tries in a row at step ", t, " (lr ", lr, ", loss scale now ",
          trainer_->loss_scale(),
          "): a NaN in the model or the data, or an lr far too high"));
    }
    pending_.push_back(
        {t, lr, momentum, elapsed_before_ + Seconds(start_), skipped_});
    skipped_ = 0;
    LRTUNE_RETURN_IF_ERROR(Drain(/*flush=*/false));
    done = t + 1;
    const bool epoch_end = done % spe_ == 0 || done == total_;
    const bool cycle_end =
        next_cycle_end != cycle_ends_.end() && *next_cycle_end == done;
    if (cycle_end) ++next_cycle_end;
    const bool cadence =
        spec_.eval_every_steps > 0 && done % spec_.eval_every_steps == 0;
    const bool rung = next_rung != rungs_.end() && *next_rung == done;
    if (rung) ++next_rung;
    if (epoch_end || cycle_end || cadence || rung) {
      LRTUNE_RETURN_IF_ERROR(Evaluate(done, lr, cycle_end));
    }
    if (rung && cb_.on_rung && !cb_.on_rung(result_.final_eval)) {
      result_.pruned_at_step = done;
      if (cb_.on_progress) {
        cb_.on_progress(absl::StrCat("pruned at step ", done));
      }
      break;
    }
    const bool periodic =
        spec_.checkpoint_every > 0 && done % spec_.checkpoint_every == 0;
    if (checkpoints && !stop_ && (epoch_end || periodic)) {
      LRTUNE_RETURN_IF_ERROR(Drain(/*flush=*/true));
      LRTUNE_RETURN_IF_ERROR(SaveCheckpoint(done));
    }
  }
  LRTUNE_RETURN_IF_ERROR(Finish(done));
  return std::move(result_);
}

}  // namespace

absl::StatusOr<TrainResult> TrainImpl(const JobSpec& job, const TrainSpec& spec,
                                      const Callbacks& callbacks,
                                      const CancellationToken* cancel) {
  return TrainingRun(job, spec, callbacks, cancel).Run();
}

}  // namespace lrtune::engine::internal
