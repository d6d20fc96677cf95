// The individual LR suggestions of a range test, on plain vectors.
//
// Four of them reproduce fastai's suggestion functions index for index
// (`valley`, `slide`, `minimum`, `steep`; checked against golden vectors from
// scripts/gen_golden_analysis.py); the others are lrtune's own pieces that
// AnalyzeCurve (core/curve_analysis.h) assembles:
//
//   LRTUNE_ASSIGN_OR_RETURN(int64_t i, ComputeValleyIndex(smoothed_losses));
//   double lr = lrs[i];
//
// Every function takes finite values (callers cut the curve at its first
// non-finite loss), returns an index into its input, and is pure and
// thread-compatible. docs/analysis.md states each rule.
#ifndef LRTUNE_CORE_SUGGESTIONS_H_
#define LRTUNE_CORE_SUGGESTIONS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace lrtune {

// fastai `valley`: finds the longest strictly decreasing subsequence (the
// first one to reach the maximal length), takes start = end - length and
// returns start + floor(span / 3) + floor(span / 6), span = end - start.
// When that is -1 (the longest run has two points and starts at 0) fastai's
// Python indexing wraps to the last point, and so does this function.
// O(n log n) (patience sorting) instead of fastai's O(n^2), same result.
// InvalidArgument on an empty vector.
absl::StatusOr<int64_t> ComputeValleyIndex(const std::vector<double>& losses);

// fastai `slide`: g = numpy.gradient(losses) (unit spacing); a window of
// `lr_diff` + 1 points walks left from the right end while
// |g[right] - g[left]| > thresh; returns the last left index for which the
// test held (or the first window's left index if it never held).
// InvalidArgument when losses has fewer than lr_diff + 1 points (where
// fastai raises IndexError) or lr_diff < 1.
absl::StatusOr<int64_t> ComputeSlideIndex(const std::vector<double>& losses,
                                          int lr_diff = 15,
                                          double thresh = 0.005);

// fastai `minimum`: index of the first minimal loss (the LR to suggest is
// lrs[index] / 10). InvalidArgument on an empty vector.
absl::StatusOr<int64_t> ComputeMinimumIndex(const std::vector<double>& losses);

// fastai `steep`: argmin over i of the forward difference
// (L[i+1] - L[i]) / (ln lr[i+1] - ln lr[i]), first on ties. InvalidArgument
// on fewer than 2 points or mismatched sizes.
absl::StatusOr<int64_t> ComputeSteepIndex(const std::vector<double>& lrs,
                                          const std::vector<double>& losses);

// lrtune's steepest descent: drops the first `skip_head` points and the
// last point, then takes dL/dx with x = ln lr by central differences on what
// remains (one-sided at its two ends) and returns the argmin (first on
// ties), as an index into the full input. InvalidArgument on mismatched
// sizes or when fewer than 2 points remain.
absl::StatusOr<int64_t> ComputeSteepestIndex(const std::vector<double>& lrs,
                                             const std::vector<double>& losses,
                                             int64_t skip_head);

// The curve an anchor tool's suggestions read, recorded from the same raw
// losses: its smoothing, where it stops, and the slice it keeps.
struct AnchorCurve {
  std::vector<double> lrs;
  std::vector<double> losses;  // smoothed as the tool smooths
};

// fastai's `lr_find`: the recorder's bias-corrected EMA (beta 0.98) of the
// losses; the test stops after the first point whose smoothed loss exceeds
// 4 x the best so far (that point is recorded) or before a non-finite loss;
// then the suggestion functions see [num_it / 10, n - 5) of what was
// recorded. `num_it` is the test's planned step count (fastai's default is
// 100). Empty when fewer than num_it / 10 + 6 points remain. lrs and losses
// must have the same size.
AnchorCurve FastaiRecorderCurve(const std::vector<double>& lrs,
                                const std::vector<double>& losses,
                                int64_t num_it);

// torch-lr-finder's `range_test` + `plot(suggest_lr=True)`: the first loss
// raw, then s_i = 0.05 L_i + 0.95 s_{i-1} (no bias correction); the test
// stops after the first point with s > 5 x the best so far (recorded) or
// before a non-finite loss; the suggestion reads [10, n - 5). Empty when
// fewer than 2 points remain.
AnchorCurve LrFinderCurve(const std::vector<double>& lrs,
                          const std::vector<double>& losses);

// torch-lr-finder's suggestion: argmin of numpy.gradient(losses) (unit
// spacing: index steps, not ln lr), first on ties. InvalidArgument on fewer
// than 2 points.
absl::StatusOr<int64_t> ComputeLrFinderSteepestIndex(
    const std::vector<double>& losses);

// Centred running median over 2 x half_width + 1 points (fewer at the two
// ends): removes isolated spikes (a bad batch) without moving a smooth
// curve's features. half_width = 0 returns the input.
std::vector<double> RunningMedian(const std::vector<double>& values,
                                  int half_width);

// Zero-lag smoothing for reading positions: the bias-corrected EMA run
// forwards, then the same EMA run backwards over its output. A causal EMA
// puts features ~1/(1 - beta) points late; the backward pass moves them
// back. beta in [0, 1); beta = 0 returns the input.
std::vector<double> SmoothZeroLag(const std::vector<double>& values,
                                  double beta);

}  // namespace lrtune

#endif  // LRTUNE_CORE_SUGGESTIONS_H_
