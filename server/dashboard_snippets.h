// Copy-paste code for a range test's recommendation, as the dashboard
// shows it: PyTorch's OneCycleLR and CyclicLR calls holding the numbers of
// the recommendation's ready-to-use schedules (results.proto
// RecommendedSchedules: one_cycle and triangular), and the lrtune.torch
// scheduler that takes the schedule itself.
//
//   std::optional<TorchSnippets> s = SnippetsFor(job);
//   if (s) std::cout << s->one_cycle;
//
// Every parameter is written out, except momentum bounds the schedule
// leaves unset (lrtune's unset is PyTorch's default), so the calls give
// lrtune's values step for step: dashboard_snippets_test runs them in
// PyTorch against core/schedule.h. Numbers round-trip (shortest exact
// decimal). Pure; thread-safe.
#ifndef LRTUNE_SERVER_DASHBOARD_SNIPPETS_H_
#define LRTUNE_SERVER_DASHBOARD_SNIPPETS_H_

#include <optional>
#include <string>

#include "lrtune/v1/jobs.pb.h"

namespace lrtune::server {

struct TorchSnippets {
  std::string one_cycle;     // torch.optim.lr_scheduler.OneCycleLR(...)
  std::string cyclic;        // torch.optim.lr_scheduler.CyclicLR(...)
  std::string lrtune_torch;  // lrtune.torch.scheduler(...)
};

// Snippets for the recommendation of `job` (a range test's result, or the
// bounds of a grid's range test); nullopt while there is none, when it
// has no schedules (no bounds) or they do not parse.
std::optional<TorchSnippets> SnippetsFor(const v1::Job& job);

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_DASHBOARD_SNIPPETS_H_
