// Data sets by reference on the coordinator (core/spec.h
// DatasetDescription): what a worker may report when it registers, and a
// request compared without the descriptions the coordinator fills in. The
// lookup of a job's set among the registered workers is the Coordinator's
// (DescribeDatasets, worker_datasets.cc).
//
//   LRTUNE_RETURN_IF_ERROR(CheckWorkerDatasets(request.capabilities()));
//
// Pure functions; thread-safe.
#ifndef LRTUNE_SERVER_WORKER_DATASETS_H_
#define LRTUNE_SERVER_WORKER_DATASETS_H_

#include "absl/status/status.h"
#include "lrtune/v1/lrtune.pb.h"
#include "lrtune/v1/worker.pb.h"

namespace lrtune::server {

// Checks a registration's data sets: at most kMaxDatasetsPerWorker
// (RESOURCE_EXHAUSTED), each obeying core's ValidateDatasetDescription and
// named once (INVALID_ARGUMENT naming capabilities.datasets[i] and the
// rule).
absl::Status CheckWorkerDatasets(const v1::Capabilities& caps);

// `request` without the runs' DataSpec.description: what a client sent,
// for comparing a retried submission with the stored one.
v1::SubmitJobRequest WithoutDatasetDescriptions(v1::SubmitJobRequest request);

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_WORKER_DATASETS_H_
