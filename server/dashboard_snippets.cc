#include "server/dashboard_snippets.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/recommendation_format.h"
#include "core/schedule.h"
#include "proto/core_convert.h"

namespace lrtune::server {
namespace {

std::string Num(double v) { return JsonNumber(v); }
const char* Bool(bool b) { return b ? "True" : "False"; }

// ", base_momentum=.., max_momentum=.." when the schedule sets them.
std::string MomentumBounds(const ScheduleSpec& s) {
  if (std::isnan(s.base_momentum) || std::isnan(s.max_momentum)) return "";
  return absl::StrCat(",\n    base_momentum=", Num(s.base_momentum),
                      ", max_momentum=", Num(s.max_momentum));
}

bool AdamStyle(v1::OptimizerKind optimizer) {
  return optimizer == v1::OPTIMIZER_KIND_ADAM ||
         optimizer == v1::OPTIMIZER_KIND_ADAMW;
}

}  // namespace

std::optional<TorchSnippets> SnippetsFor(const v1::Job& job) {
  const bool grid = job.has_grid_result();
  if (!grid && !job.has_range_test_result()) return std::nullopt;
  const v1::Recommendation& rec =
      grid ? job.grid_result().bounds()
           : job.range_test_result().recommendation();
  const v1::OptimizerKind optimizer =
      job.has_grid() ? job.grid().run().optimizer().kind()
                     : job.range_test().run().optimizer().kind();
  const std::string& job_id = job.job_id();
  if (!rec.has_schedules() || !(rec.min_lr() > 0)) return std::nullopt;
  const v1::RecommendedSchedules& schedules = rec.schedules();
  absl::StatusOr<ScheduleSpec> oc =
      ScheduleSpecFromProto(schedules.one_cycle(), "one_cycle");
  absl::StatusOr<ScheduleSpec> tri =
      ScheduleSpecFromProto(schedules.triangular(), "triangular");
  if (!oc.ok() || !tri.ok() || oc->kind != ScheduleKind::kOneCycle ||
      tri->kind != ScheduleKind::kTriangular) {
    return std::nullopt;
  }
  TorchSnippets out;
  out.one_cycle = absl::StrCat(
      "# lrtune job ", job_id, ": 1cycle over ", oc->total_steps,
      " steps (four CLR cycles);\n# set total_steps to your run's length\n",
      "scheduler = torch.optim.lr_scheduler.OneCycleLR(\n",
      "    optimizer, max_lr=", Num(oc->max_lr),
      ", total_steps=", oc->total_steps,
      ",\n    pct_start=", Num(oc->pct_start), ", anneal_strategy=\"",
      oc->anneal == Anneal::kCos ? "cos" : "linear",
      "\",\n    div_factor=", Num(oc->div_factor),
      ", final_div_factor=", Num(oc->final_div_factor),
      ",\n    three_phase=", Bool(oc->three_phase),
      ", cycle_momentum=", Bool(oc->cycle_momentum), MomentumBounds(*oc),
      ")\n# call scheduler.step() after each optimizer.step()\n");
  const int64_t down =
      tri->step_size_down > 0 ? tri->step_size_down : tri->step_size_up;
  out.cyclic = absl::StrCat(
      "# lrtune job ", job_id, ": triangular CLR between the bounds\n",
      // A client-driven test told nothing of its epochs: the stepsize was
      // built on one iteration per epoch.
      rec.stepsize_epochs() > 0
          ? ""
          : "# step_size_up is a placeholder: the range test did not know "
            "the iterations\n# per epoch; set it to 2-10 x yours (Smith's "
            "rule)\n",
      AdamStyle(optimizer)
          ? "# (cycle_momentum cycles Adam's beta1 from PyTorch 2.2 on;\n"
            "#  older versions need cycle_momentum=False)\n"
          : "",
      "scheduler = torch.optim.lr_scheduler.CyclicLR(\n",
      "    optimizer, base_lr=", Num(tri->base_lr),
      ", max_lr=", Num(tri->max_lr), ",\n    step_size_up=", tri->step_size_up,
      ", step_size_down=", down, ", mode=\"triangular\",\n",
      "    cycle_momentum=", Bool(tri->cycle_momentum), MomentumBounds(*tri),
      ")\n# call scheduler.step() after each optimizer.step()\n");
  out.lrtune_torch = absl::StrCat(
      "# the recommendation's 1cycle, value for value, from the service\n",
      "import lrtune\nimport lrtune.torch\n\n",
      "job = lrtune.Client(\"HOST:PORT\", token=TOKEN).get(\"", job_id,
      "\")\nschedule = job.",
      grid ? "grid_result.bounds" : "range_test_result.recommendation",
      ".schedules.one_cycle\n",
      "scheduler = lrtune.torch.scheduler(optimizer, schedule, total_steps=",
      oc->total_steps, ")\n");
  return out;
}

}  // namespace lrtune::server
