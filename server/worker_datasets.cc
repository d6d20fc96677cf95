// Data sets by reference on the coordinator: the ones workers report when
// they register (checked by core's rules), and a submitted job's run
// described by them, or refused when no registered worker has its set.
// The registry is the workers' capabilities, under workers_mu_.
#include "server/worker_datasets.h"

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/spec.h"
#include "core/status_macros.h"
#include "proto/core_convert.h"
#include "server/coordinator.h"

namespace lrtune::server {

absl::Status CheckWorkerDatasets(const v1::Capabilities& caps) {
  if (caps.datasets_size() > kMaxDatasetsPerWorker) {
    return absl::ResourceExhaustedError(
        absl::StrCat("capabilities.datasets holds ", caps.datasets_size(),
                     " data sets, over the limit of ", kMaxDatasetsPerWorker));
  }
  std::set<std::string> names;
  for (int i = 0; i < caps.datasets_size(); ++i) {
    const std::string path = absl::StrCat("capabilities.datasets[", i, "].");
    LRTUNE_RETURN_IF_ERROR(
        DatasetDescriptionFromProto(caps.datasets(i), PrefixNames(path))
            .status());
    if (!names.insert(caps.datasets(i).name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, "name \"", caps.datasets(i).name(), "\" repeats"));
    }
  }
  return absl::OkStatus();
}

v1::SubmitJobRequest WithoutDatasetDescriptions(v1::SubmitJobRequest request) {
  if (request.range_test().run().data().has_description()) {
    request.mutable_range_test()
        ->mutable_run()
        ->mutable_data()
        ->clear_description();
  }
  if (request.grid().run().data().has_description()) {
    request.mutable_grid()->mutable_run()->mutable_data()->clear_description();
  }
  return request;
}

absl::Status Coordinator::DescribeDataset(v1::RunSpec& run,
                                          absl::string_view path) {
  // No data at all (a client-driven range test trains on the client's own)
  // stays unset: mutable_data() would set an empty one.
  if (!run.has_data()) return absl::OkStatus();
  v1::DataSpec& data = *run.mutable_data();
  // A client's description is never trusted: the workers' is the one.
  data.clear_description();
  if (data.source_case() != v1::DataSpec::kName ||
      !IsReferencedDataset(data.name())) {
    return absl::OkStatus();  // built in, inline, or a bad name (refused
                              // with the rest of the spec)
  }
  // The first registered worker's description in id order; the others'
  // copies are checked against it where they run (core's
  // DatasetDifference).
  std::set<std::string> offered;
  int workers = 0;
  {
    lrtune::MutexLock lock(&workers_mu_);
    for (const auto& [id, info] : workers_) {
      ++workers;
      for (const v1::DatasetDescription& d : info.capabilities.datasets()) {
        if (d.name() == data.name() && !data.has_description()) {
          *data.mutable_description() = d;
        }
        offered.insert(d.name());
      }
    }
  }
  if (data.has_description()) return absl::OkStatus();
  const std::string who =
      workers == 1 ? "the registered worker has"
                   : absl::StrCat("the ", workers, " registered workers have");
  const std::string have =
      workers == 0 ? "no worker is registered (each reports the data sets in "
                     "its --data-dir when it registers)"
      : offered.empty()
          ? absl::StrCat(who,
                         " no data set by reference (each reports those in "
                         "its --data-dir when it registers)")
          : absl::StrCat(who, " ", absl::StrJoin(offered, ", "));
  return absl::InvalidArgumentError(absl::StrCat(
      path, ".data.name \"", data.name(), "\" is neither a built-in data set (",
      DatasetNames(", "), ") nor one a registered worker has: ", have));
}

absl::StatusOr<v1::SubmitJobRequest> Coordinator::DescribeDatasets(
    v1::SubmitJobRequest request) {
  if (request.has_range_test()) {
    LRTUNE_RETURN_IF_ERROR(
        DescribeDataset(*request.mutable_range_test()->mutable_run(), "run"));
  }
  if (request.has_grid()) {
    LRTUNE_RETURN_IF_ERROR(
        DescribeDataset(*request.mutable_grid()->mutable_run(), "grid.run"));
  }
  return request;
}

}  // namespace lrtune::server
