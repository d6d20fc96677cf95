#include "core/suggestions.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace lrtune {
namespace {

absl::Status CheckSameSize(const std::vector<double>& lrs,
                           const std::vector<double>& losses) {
  if (lrs.size() != losses.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("lrs and losses must have the same size, got ", lrs.size(),
                     " and ", losses.size()));
  }
  for (size_t i = 0; i < lrs.size(); ++i) {
    if (!(std::isfinite(lrs[i]) && lrs[i] > 0.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("lrs[", i, "] must be finite and > 0, got ", lrs[i]));
    }
  }
  return absl::OkStatus();
}

// numpy.gradient with unit spacing: central inside, one-sided at the ends.
// Needs at least 2 values.
double UnitGradient(const std::vector<double>& v, size_t i) {
  const size_t n = v.size();
  if (i == 0) return v[1] - v[0];
  if (i == n - 1) return v[n - 1] - v[n - 2];
  return (v[i + 1] - v[i - 1]) / 2.0;
}

// Keeps [head, n - tail) of a recorded curve; empty if fewer than `least`
// points remain.
AnchorCurve Slice(const std::vector<double>& lrs,
                  const std::vector<double>& smoothed, size_t head, size_t tail,
                  size_t least) {
  AnchorCurve out;
  if (smoothed.size() < head + tail + least) return out;
  out.lrs.assign(
      lrs.begin() + static_cast<std::ptrdiff_t>(head),
      lrs.begin() + static_cast<std::ptrdiff_t>(smoothed.size() - tail));
  out.losses.assign(smoothed.begin() + static_cast<std::ptrdiff_t>(head),
                    smoothed.end() - static_cast<std::ptrdiff_t>(tail));
  return out;
}

}  // namespace

absl::StatusOr<int64_t> ComputeValleyIndex(const std::vector<double>& losses) {
  const int64_t n = static_cast<int64_t>(losses.size());
  if (n == 0) return absl::InvalidArgumentError("valley: losses is empty");
  // tails[k] is the largest last value over strictly decreasing subsequences
  // of length k + 1 seen so far; it is itself strictly decreasing, so the
  // longest run that losses[i] can extend is found by binary search.
  std::vector<double> tails;
  tails.reserve(static_cast<size_t>(n));
  int64_t best_length = 0;
  int64_t max_start = 0;
  int64_t max_end = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = losses[static_cast<size_t>(i)];
    // First tail <= v: every tail before it is > v and can precede v.
    auto it =
        std::lower_bound(tails.begin(), tails.end(), v, std::greater<double>());
    const int64_t length = (it - tails.begin()) + 1;
    if (it == tails.end()) {
      tails.push_back(v);
    } else {
      *it = v;
    }
    // fastai keeps the first end that reaches a new maximal length and sets
    // start = end - length (one before the run's first point when the run is
    // contiguous). Its initial (0, 0) stays when no run is longer than 1.
    if (i == 0) {
      best_length = length;
    } else if (length > best_length) {
      best_length = length;
      max_end = i;
      max_start = i - length;
    }
  }
  // Same floating-point steps as fastai's `int(sections) + int(sections/2)`.
  const double sections = static_cast<double>(max_end - max_start) / 3.0;
  int64_t idx = max_start + static_cast<int64_t>(sections) +
                static_cast<int64_t>(sections / 2.0);
  if (idx < 0) idx += n;  // Python's negative indexing.
  return idx;
}

absl::StatusOr<int64_t> ComputeSlideIndex(const std::vector<double>& losses,
                                          int lr_diff, double thresh) {
  const int64_t n = static_cast<int64_t>(losses.size());
  if (lr_diff < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("slide: lr_diff must be >= 1, got ", lr_diff));
  }
  if (n < lr_diff + 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("slide: needs at least lr_diff + 1 = ", lr_diff + 1,
                     " points, got ", n));
  }
  auto gradient = [&losses](int64_t i) {
    return UnitGradient(losses, static_cast<size_t>(i));
  };
  int64_t right = n - 1;
  int64_t left = right - lr_diff;
  int64_t result = left;
  while (left >= 0 && std::abs(gradient(right) - gradient(left)) > thresh) {
    result = left;
    --right;
    --left;
  }
  return result;
}

absl::StatusOr<int64_t> ComputeMinimumIndex(const std::vector<double>& losses) {
  if (losses.empty()) {
    return absl::InvalidArgumentError("minimum: losses is empty");
  }
  return std::min_element(losses.begin(), losses.end()) - losses.begin();
}

absl::StatusOr<int64_t> ComputeSteepIndex(const std::vector<double>& lrs,
                                          const std::vector<double>& losses) {
  if (absl::Status s = CheckSameSize(lrs, losses); !s.ok()) return s;
  if (losses.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("steep: needs at least 2 points, got ", losses.size()));
  }
  int64_t best = 0;
  double best_grad = 0.0;
  for (size_t i = 0; i + 1 < losses.size(); ++i) {
    const double grad =
        (losses[i + 1] - losses[i]) / (std::log(lrs[i + 1]) - std::log(lrs[i]));
    if (i == 0 || grad < best_grad) {
      best = static_cast<int64_t>(i);
      best_grad = grad;
    }
  }
  return best;
}

absl::StatusOr<int64_t> ComputeSteepestIndex(const std::vector<double>& lrs,
                                             const std::vector<double>& losses,
                                             int64_t skip_head) {
  if (absl::Status s = CheckSameSize(lrs, losses); !s.ok()) return s;
  const int64_t n = static_cast<int64_t>(losses.size());
  // The head and the last point are dropped first (as Lightning and
  // torch-lr-finder slice before differentiating), so the last point's value
  // never enters a difference.
  const int64_t first = skip_head;
  const int64_t last = n - 2;
  if (skip_head < 0 || last - first < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("steepest: fewer than 2 points left after skipping ",
                     skip_head, " head point(s) and the last point of ", n));
  }
  auto x = [&lrs](int64_t i) { return std::log(lrs[static_cast<size_t>(i)]); };
  auto loss = [&losses](int64_t i) { return losses[static_cast<size_t>(i)]; };
  int64_t best = first;
  double best_slope = 0.0;
  for (int64_t i = first; i <= last; ++i) {
    const int64_t lo = std::max(i - 1, first);
    const int64_t hi = std::min(i + 1, last);
    const double slope = (loss(hi) - loss(lo)) / (x(hi) - x(lo));
    if (i == first || slope < best_slope) {
      best = i;
      best_slope = slope;
    }
  }
  return best;
}

AnchorCurve FastaiRecorderCurve(const std::vector<double>& lrs,
                                const std::vector<double>& losses,
                                int64_t num_it) {
  std::vector<double> smoothed;
  double avg = 0.0, beta_pow = 1.0, best = 0.0;
  constexpr double kBeta = 0.98;
  for (size_t i = 0; i < losses.size() && i < lrs.size(); ++i) {
    if (!std::isfinite(losses[i])) break;
    avg = kBeta * avg + (1.0 - kBeta) * losses[i];
    beta_pow *= kBeta;
    const double s = avg / (1.0 - beta_pow);
    smoothed.push_back(s);
    best = i == 0 ? s : std::min(best, s);
    if (s > 4.0 * best) break;
  }
  const size_t head = static_cast<size_t>(std::max<int64_t>(num_it, 0) / 10);
  return Slice(lrs, smoothed, head, 5, 1);
}

AnchorCurve LrFinderCurve(const std::vector<double>& lrs,
                          const std::vector<double>& losses) {
  std::vector<double> smoothed;
  double best = 0.0;
  constexpr double kSmoothF = 0.05;
  for (size_t i = 0; i < losses.size() && i < lrs.size(); ++i) {
    if (!std::isfinite(losses[i])) break;
    const double s =
        i == 0 ? losses[i]
               : kSmoothF * losses[i] + (1.0 - kSmoothF) * smoothed.back();
    best = i == 0 ? s : std::min(best, s);
    smoothed.push_back(s);
    if (s > 5.0 * best) break;
  }
  return Slice(lrs, smoothed, 10, 5, 2);
}

absl::StatusOr<int64_t> ComputeLrFinderSteepestIndex(
    const std::vector<double>& losses) {
  if (losses.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "lr-finder steepest: needs at least 2 points, got ", losses.size()));
  }
  size_t best = 0;
  for (size_t i = 1; i < losses.size(); ++i) {
    if (UnitGradient(losses, i) < UnitGradient(losses, best)) best = i;
  }
  return static_cast<int64_t>(best);
}

std::vector<double> RunningMedian(const std::vector<double>& values,
                                  int half_width) {
  const int64_t n = static_cast<int64_t>(values.size());
  std::vector<double> out(values.size());
  std::vector<double> window;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t lo = std::max<int64_t>(0, i - half_width);
    const int64_t hi = std::min<int64_t>(n - 1, i + half_width);
    window.assign(values.begin() + lo, values.begin() + hi + 1);
    const auto mid = window.begin() + (hi - lo) / 2;
    std::nth_element(window.begin(), mid, window.end());
    double m = *mid;
    if ((hi - lo) % 2 == 1) {  // even count: mean of the two middle values
      m = 0.5 * (m + *std::min_element(mid + 1, window.end()));
    }
    out[static_cast<size_t>(i)] = m;
  }
  return out;
}

std::vector<double> SmoothZeroLag(const std::vector<double>& values,
                                  double beta) {
  std::vector<double> out(values.size());
  auto run = [beta](auto begin, auto end, auto dest) {
    double avg = 0.0;
    double beta_pow = 1.0;
    for (auto it = begin; it != end; ++it, ++dest) {
      avg = beta * avg + (1.0 - beta) * *it;
      beta_pow *= beta;
      *dest = avg / (1.0 - beta_pow);
    }
  };
  run(values.begin(), values.end(), out.begin());
  run(out.rbegin(), out.rend(), out.rbegin());
  return out;
}

}  // namespace lrtune
