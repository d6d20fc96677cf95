// A LibTorch training loop with a client-driven lrtune range test in it
// (client/client_range_test.h): the coordinator hands out each step's LR
// and stops the test at divergence, the loop trains its own model on its
// own data. This is a user's program, which is why it includes LibTorch
// outside worker/; it builds where the engine does.
//
//   libtorch_range_test --server 127.0.0.1:50051 [--steps 200]
//   libtorch_range_test --server "$(lrtune serve ...)"   # the embedded one
#include <iostream>
#include <string>

#include "CLI/CLI.hpp"
#include "client/client_range_test.h"
#include "client/lrtune_client.h"
#include "torch/torch.h"

namespace {

// Two Gaussian blobs 1 standard deviation apart (so the loss has a floor
// and blows up at large LRs): x [n, 8], y [n].
std::pair<torch::Tensor, torch::Tensor> Blobs(int64_t n) {
  torch::Tensor y = torch::arange(n) % 2;
  torch::Tensor x =
      torch::randn({n, 8}) + (y.to(torch::kFloat) - 0.5).unsqueeze(1);
  return {x, y};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"A LibTorch loop with an lrtune range test in it"};
  std::string server;
  int64_t steps = 200;
  app.add_option("--server", server, "the coordinator, HOST:PORT or unix:PATH")
      ->required();
  app.add_option("--steps", steps, "the plan's steps (default 200)");
  CLI11_PARSE(app, argc, argv);

  torch::manual_seed(0);
  const int64_t n = 4096, batch = 64;
  auto [x, y] = Blobs(n);
  torch::nn::Sequential model(torch::nn::Linear(8, 32), torch::nn::ReLU(),
                              torch::nn::Linear(32, 2));
  torch::optim::SGD optimizer(model->parameters(),
                              torch::optim::SGDOptions(0.1).momentum(0.9));

  absl::StatusOr<std::unique_ptr<lrtune::client::Client>> client =
      lrtune::client::Client::Connect(server, {});
  if (!client.ok()) {
    std::cerr << client.status().message() << "\n";
    return 1;
  }
  lrtune::client::ClientRangeTestOptions options;
  lrtune::v1::RangeTestSpec& spec = *options.job.mutable_range_test();
  spec.set_start_lr(1e-5);
  spec.set_end_lr(100);
  spec.set_steps(steps);
  spec.mutable_analysis()->set_iters_per_epoch(n / batch);
  spec.mutable_analysis()->set_momentum(0.9);  // the analysis's margin
  auto rt = lrtune::client::ClientRangeTest::Start(client->get(), options);
  if (!rt.ok()) {
    std::cerr << "cannot start the range test: " << rt.status().message()
              << "\n";
    return 1;
  }
  int64_t offset = 0;
  while (!(*rt)->done()) {
    for (auto& group : optimizer.param_groups()) {
      static_cast<torch::optim::SGDOptions&>(group.options()).lr((*rt)->lr());
    }
    torch::Tensor idx = torch::arange(offset, offset + batch) % n;
    offset = (offset + batch) % n;
    torch::Tensor loss = torch::nn::functional::cross_entropy(
        model->forward(x.index_select(0, idx)), y.index_select(0, idx));
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    (*rt)->Step(loss.item<double>());  // never waits on the network
  }
  absl::StatusOr<lrtune::v1::EndRunResponse> end = (*rt)->Finish();
  if (!end.ok()) {
    std::cerr << "the range test failed: " << end.status().message() << "\n";
    return 1;
  }
  absl::StatusOr<lrtune::v1::Job> job = (*rt)->WaitForJob();
  if (!job.ok() || job->state() != lrtune::v1::JOB_STATE_SUCCEEDED) {
    std::cerr << "job " << (*rt)->job_id() << " did not succeed\n";
    return 1;
  }
  const lrtune::v1::Recommendation& r =
      job->range_test_result().recommendation();
  std::cout << "job " << (*rt)->job_id() << ": " << (*rt)->step() << " steps, "
            << end->end_reason() << "\n"
            << "min_lr " << r.min_lr() << " max_lr " << r.max_lr()
            << " stepsize " << r.stepsize_iterations() << " one_cycle max_lr "
            << r.one_cycle().max_lr() << "\n";
  return 0;
}
