// Cost of reading a range-test curve: AnalyzeCurve end to end, and the
// valley search on its own (fastai's O(n^2) form against lrtune's
// O(n log n) one, which returns the same index).
//
//   ninja -C build analysis_bench && build/bench/analysis_bench
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "core/curve_analysis.h"
#include "core/suggestions.h"

namespace lrtune {
namespace {

// A noisy U-shaped curve over 8 decades that diverges near its end.
std::vector<CurvePoint> MakeCurve(int64_t n) {
  std::mt19937_64 rng(42);
  std::normal_distribution<double> noise(0.0, 0.05);
  std::vector<CurvePoint> points;
  points.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double x = -7.0 + 8.0 * static_cast<double>(i) / (n - 1);
    const double loss = 2.3 - 2.0 / (1.0 + std::exp(-(x + 4.0) * 2.5)) +
                        0.02 * std::exp((x + 2.0) * 4.0) + noise(rng);
    points.push_back({i, std::pow(10.0, x), loss});
  }
  return points;
}

std::vector<double> Losses(int64_t n) {
  std::vector<double> out;
  for (const CurvePoint& p : MakeCurve(n)) out.push_back(p.loss);
  return out;
}

void BM_AnalyzeCurve(benchmark::State& state) {
  const std::vector<CurvePoint> points = MakeCurve(state.range(0));
  for (auto _ : state) {
    absl::StatusOr<Recommendation> r = AnalyzeCurve(points, {});
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_AnalyzeCurve)
    ->Arg(100)
    ->Arg(1000)
    ->Arg(10000)
    ->Unit(benchmark::kMicrosecond);

void BM_ValleyFast(benchmark::State& state) {
  const std::vector<double> losses = Losses(state.range(0));
  for (auto _ : state) {
    absl::StatusOr<int64_t> i = ComputeValleyIndex(losses);
    benchmark::DoNotOptimize(i);
  }
}
BENCHMARK(BM_ValleyFast)->Arg(1000)->Arg(10000)->Unit(benchmark::kMicrosecond);

// fastai's double loop, for comparison only (what AnalyzeCurve avoids).
int64_t QuadraticValleyEnd(const std::vector<double>& losses) {
  const size_t n = losses.size();
  std::vector<int64_t> lds(n, 1);
  size_t end = 0;
  for (size_t i = 1; i < n; ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (losses[i] < losses[j] && lds[i] < lds[j] + 1) lds[i] = lds[j] + 1;
    }
    if (lds[end] < lds[i]) end = i;
  }
  return static_cast<int64_t>(end);
}

void BM_ValleyQuadratic(benchmark::State& state) {
  const std::vector<double> losses = Losses(state.range(0));
  for (auto _ : state) {
    benchmark::DoNotOptimize(QuadraticValleyEnd(losses));
  }
}
BENCHMARK(BM_ValleyQuadratic)
    ->Arg(1000)
    ->Arg(10000)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace lrtune

BENCHMARK_MAIN();
