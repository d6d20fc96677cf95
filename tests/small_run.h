// The small job the service tests train: an MLP on the synthetic spirals
// (1024 samples, 819 of them training), on one CPU thread, and its ramp.
// One definition for the tests that run real training through the service,
// so each states only what it changes.
//
//   v1::RangeTestRequest request;
//   *request.mutable_run() = lrtune::testing::SmallRun(/*hidden=*/16);
//   *request.mutable_range_test() = lrtune::testing::Ramp(40, 1e-5, 10, {1});
//
// Header-only; protos only.
#ifndef LRTUNE_TESTS_SMALL_RUN_H_
#define LRTUNE_TESTS_SMALL_RUN_H_

#include <cstdint>
#include <initializer_list>

#include "lrtune/v1/spec.pb.h"

namespace lrtune::testing {

// mlp [hidden] on spirals, batch_size, device cpu, 1 thread.
inline v1::RunSpec SmallRun(int64_t hidden = 32, int64_t batch_size = 64) {
  v1::RunSpec run;
  run.mutable_model()->set_kind(v1::MODEL_KIND_MLP);
  run.mutable_model()->add_hidden(hidden);
  run.mutable_data()->set_name("spirals");
  run.set_batch_size(batch_size);
  run.mutable_device()->set_device("cpu");
  run.mutable_device()->set_threads(1);
  return run;
}

// `steps` from start_lr to end_lr (exp), over `seeds`.
inline v1::RangeTestSpec Ramp(int64_t steps, double start_lr, double end_lr,
                              std::initializer_list<uint64_t> seeds) {
  v1::RangeTestSpec spec;
  spec.set_steps(steps);
  spec.set_start_lr(start_lr);
  spec.set_end_lr(end_lr);
  for (uint64_t s : seeds) spec.add_seeds(s);
  return spec;
}

}  // namespace lrtune::testing

#endif  // LRTUNE_TESTS_SMALL_RUN_H_
