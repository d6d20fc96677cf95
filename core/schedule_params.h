// Named schedule parameters: the one mapping from PyTorch-style names
// ("max_lr", "step_size_up", "t_mult", ...) to ScheduleSpec fields, shared by
// the CLI's flags, job specs and the golden-value tests.
//
//   ScheduleSpec spec;
//   LRTUNE_RETURN_IF_ERROR(SetScheduleParam(spec, "kind", "one_cycle"));
//   LRTUNE_RETURN_IF_ERROR(SetScheduleParam(spec, "max-lr", "0.1"));
//
// Names are accepted in snake_case or kebab-case. Thread-compatible.
#ifndef LRTUNE_CORE_SCHEDULE_PARAMS_H_
#define LRTUNE_CORE_SCHEDULE_PARAMS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/field_names.h"
#include "core/schedule.h"

namespace lrtune {

// Sets one parameter from its text form. "kind" selects the kind; "mode"
// (triangular|triangular2|exp_range) selects a cyclic kind as PyTorch's
// CyclicLR does; "milestones" and "boundaries" take comma lists; booleans
// take true|false|1|0. Returns InvalidArgument naming the parameter when the
// name is unknown or the value does not parse (range rules are checked
// later, by Schedule::Create).
absl::Status SetScheduleParam(ScheduleSpec& spec, absl::string_view name,
                              absl::string_view value);
// The same, naming the parameter in a value error by `names` (field_names.h)
// applied to its snake_case name: "--cooldown: 'x' is not one of ...".
absl::Status SetScheduleParam(ScheduleSpec& spec, absl::string_view name,
                              absl::string_view value, const FieldNamer& names);

// Every accepted name (snake_case), in a stable order: for --help and for
// error messages.
const std::vector<std::string>& ScheduleParamNames();

// Every parameter's value in `spec` as text SetScheduleParam reads back
// (doubles as their shortest round-trip decimal; unset ones, and the mode
// alias, left out), in ScheduleParamNames' order.
std::vector<std::pair<std::string, std::string>> ScheduleParamValues(
    const ScheduleSpec& spec);
// `spec` as the `lrtune schedule` flags that rebuild it: --kind and every
// parameter whose value differs from the kind's defaults ("--kind one_cycle
// --max-lr 0.0675 --total-steps 1404 --div-factor 10"). A sequential's
// children are not flags: only its kind and warm-up show.
std::string ScheduleFlags(const ScheduleSpec& spec);

// Whether a name of ScheduleParamNames is a boolean (cycle_momentum,
// three_phase): the CLI takes it as a flag, --three-phase on its own and
// --no-cycle-momentum for false.
bool IsScheduleFlag(absl::string_view name);

}  // namespace lrtune

#endif  // LRTUNE_CORE_SCHEDULE_PARAMS_H_
