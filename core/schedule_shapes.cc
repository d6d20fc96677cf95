#include "core/schedule_shapes.h"

#include <cmath>
#include <limits>

namespace lrtune {
namespace {
constexpr double kPi = 3.14159265358979323846;
}  // namespace

double DecayShape(ProfileShape shape, double z, double rex_beta) {
  switch (shape) {
    case ProfileShape::kLinear:
      return 1.0 - z;
    case ProfileShape::kCosine:
      return 0.5 * (1.0 + std::cos(kPi * z));
    case ProfileShape::kExp: {
      // e^(-4z), rescaled to end at 0 as the other shapes do.
      const double end = std::exp(-4.0);
      return (std::exp(-4.0 * z) - end) / (1.0 - end);
    }
    case ProfileShape::kRex: {
      const double left = 1.0 - z;
      return left / ((1.0 - rex_beta) + rex_beta * left);
    }
  }
  return 1.0 - z;
}

double GrowthShape(ProfileShape shape, double z, double rex_beta) {
  return DecayShape(shape, 1.0 - z, rex_beta);
}

RestartPosition RestartAt(int64_t t, int64_t t0, int64_t t_mult) {
  if (t_mult == 1) return {t % t0, t0};
  int64_t t_cur = t, period = t0;
  while (t_cur >= period) {
    t_cur -= period;
    if (period > std::numeric_limits<int64_t>::max() / t_mult) {
      // The next period is longer than any step count: it never ends.
      return {t_cur, std::numeric_limits<int64_t>::max()};
    }
    period *= t_mult;
  }
  return {t_cur, period};
}

}  // namespace lrtune
