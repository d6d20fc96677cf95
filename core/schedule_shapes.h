// The shapes schedules are drawn from: decay and growth profiles over a
// half-cycle, and the walk through restarting periods that SGDR and the
// profile kind share. Pure functions of plain numbers.
//
//   double f = DecayShape(ProfileShape::kRex, /*z=*/0.25, /*rex_beta=*/0.5);
//   RestartPosition pos = RestartAt(/*t=*/70, /*t0=*/10, /*t_mult=*/2);
//   // pos.t_cur == 0, pos.period == 80: a fresh period of 80 steps begins.
//
// A decay shape f(z) goes from f(0) = 1 to f(1) = 0: linear 1 - z, cosine
// (1 + cos(pi z)) / 2, exp (e^(-4z) - e^-4) / (1 - e^-4) (the e^(-4z) shape,
// rescaled to end at 0), rex (1 - z) / ((1 - beta) + beta (1 - z)) (Chen et
// al. 2022). Its growth is the same shape played backwards, g(z) = f(1 - z):
// a growth half-cycle followed by a decay half-cycle is symmetric about the
// peak, so alternating them gives the cyclical variants (linear: CyclicLR's
// triangle) and restarting the decay gives the SGDR variants (cosine: SGDR).
// docs/schedules.md states each formula. Thread-safe.
#ifndef LRTUNE_CORE_SCHEDULE_SHAPES_H_
#define LRTUNE_CORE_SCHEDULE_SHAPES_H_

#include <cstdint>

namespace lrtune {

enum class ProfileShape { kLinear, kCosine, kExp, kRex };
// decay: f over every period; growth: g over every period; cyclic: each
// period is a growth half-cycle then a decay half-cycle of the same length.
enum class ProfileMode { kDecay, kGrowth, kCyclic };

// f(z) of `shape` for z in [0, 1] (z outside it extrapolates the formula).
// rex_beta is read by kRex only and lies in [0, 1).
double DecayShape(ProfileShape shape, double z, double rex_beta);
// g(z) = DecayShape(shape, 1 - z, rex_beta).
double GrowthShape(ProfileShape shape, double z, double rex_beta);

// Where step t falls in periods of t0, t0 t_mult, t0 t_mult^2, ... steps
// (t >= 0, t0 >= 1, t_mult >= 1): the step inside the current period and
// that period's length. O(1) for t_mult = 1, O(log t) otherwise. A period
// that would pass the largest int64 is taken as unbounded (it never ends).
struct RestartPosition {
  int64_t t_cur;
  int64_t period;
};
RestartPosition RestartAt(int64_t t, int64_t t0, int64_t t_mult);

}  // namespace lrtune

#endif  // LRTUNE_CORE_SCHEDULE_SHAPES_H_
