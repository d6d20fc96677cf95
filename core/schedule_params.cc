#include "core/schedule_params.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/status_macros.h"

namespace lrtune {
namespace {

absl::Status BadValue(absl::string_view name, absl::string_view value,
                      absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s: '%s' is not %s", name, value, what));
}

absl::Status ParseDouble(absl::string_view name, absl::string_view v,
                         double* out) {
  std::string s = absl::AsciiStrToLower(absl::StripAsciiWhitespace(v));
  // SimpleAtod accepts "nan"/"inf"; Schedule::Create rejects them with the
  // parameter's name, which is the clearer message.
  if (!absl::SimpleAtod(s, out)) return BadValue(name, v, "a number");
  return absl::OkStatus();
}

absl::Status ParseInt(absl::string_view name, absl::string_view v,
                      int64_t* out) {
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(v), out)) {
    return BadValue(name, v, "an integer");
  }
  return absl::OkStatus();
}

absl::Status ParseBool(absl::string_view name, absl::string_view v, bool* out) {
  if (!absl::SimpleAtob(absl::StripAsciiWhitespace(v), out)) {
    return BadValue(name, v, "true or false");
  }
  return absl::OkStatus();
}

absl::Status ParseIntList(absl::string_view name, absl::string_view v,
                          std::vector<int64_t>* out) {
  out->clear();
  for (absl::string_view part :
       absl::StrSplit(v, ',', absl::SkipWhitespace())) {
    int64_t x;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &x)) {
      return BadValue(name, v, "a comma-separated list of integers");
    }
    out->push_back(x);
  }
  return absl::OkStatus();
}

using Setter = std::function<absl::Status(ScheduleSpec&, absl::string_view,
                                          absl::string_view)>;
// A parameter's value as text that its setter reads back; "" when unset
// (a NaN double) or not a parameter of its own (mode).
using Getter = std::function<std::string(const ScheduleSpec&)>;
struct Accessor {
  Setter set;
  Getter get;
};

// The shortest decimal that reads back as `v`.
std::string ShortestDouble(double v) {
  if (std::isnan(v)) return "";
  // As people write it when that reads back ("10", "0.0675"), else the
  // fewest significant digits that do.
  std::string plain = absl::StrCat(v);
  double back = 0;
  if (absl::SimpleAtod(plain, &back) && back == v) return plain;
  for (int precision = 7; precision <= 17; ++precision) {
    std::string text = absl::StrFormat("%.*g", precision, v);
    double back = 0;
    if (absl::SimpleAtod(text, &back) && back == v) return text;
  }
  return absl::StrFormat("%.17g", v);
}

Accessor Double(double ScheduleSpec::*field) {
  return {[field](ScheduleSpec& s, absl::string_view n, absl::string_view v) {
            return ParseDouble(n, v, &(s.*field));
          },
          [field](const ScheduleSpec& s) { return ShortestDouble(s.*field); }};
}
Accessor Int(int64_t ScheduleSpec::*field) {
  return {[field](ScheduleSpec& s, absl::string_view n, absl::string_view v) {
            return ParseInt(n, v, &(s.*field));
          },
          [field](const ScheduleSpec& s) { return absl::StrCat(s.*field); }};
}
Accessor Bool(bool ScheduleSpec::*field) {
  return {[field](ScheduleSpec& s, absl::string_view n, absl::string_view v) {
            return ParseBool(n, v, &(s.*field));
          },
          [field](const ScheduleSpec& s) {
            return std::string(s.*field ? "true" : "false");
          }};
}
Accessor IntList(std::vector<int64_t> ScheduleSpec::*field) {
  return {
      [field](ScheduleSpec& s, absl::string_view n, absl::string_view v) {
        return ParseIntList(n, v, &(s.*field));
      },
      [field](const ScheduleSpec& s) { return absl::StrJoin(s.*field, ","); }};
}

const Accessor kKind = {
    [](ScheduleSpec& s, absl::string_view, absl::string_view v) {
      LRTUNE_ASSIGN_OR_RETURN(s.kind, ParseScheduleKind(v));
      return absl::OkStatus();
    },
    [](const ScheduleSpec& s) {
      return std::string(ScheduleKindName(s.kind));
    }};

// A parameter whose value is one of a few names, each setting `field`.
template <typename T>
Accessor Choice(T ScheduleSpec::*field,
                std::vector<std::pair<std::string, T>> choices) {
  Setter set = [field, choices](ScheduleSpec& s, absl::string_view n,
                                absl::string_view v) {
    const std::string value = absl::AsciiStrToLower(v);
    std::vector<std::string> names;
    for (const auto& [name, choice] : choices) {
      if (name == value) {
        s.*field = choice;
        return absl::OkStatus();
      }
      names.push_back(name);
    }
    return BadValue(n, v, absl::StrCat("one of ", absl::StrJoin(names, ", ")));
  };
  Getter get = [field, choices](const ScheduleSpec& s) {
    for (const auto& [name, choice] : choices) {
      if (s.*field == choice) return name;
    }
    return std::string();
  };
  return {std::move(set), std::move(get)};
}

struct Param {
  std::string name;
  Accessor access;
  bool flag = false;  // a boolean: the CLI's --name / --no-name
};

std::vector<std::pair<std::string, ProfileShape>> ProfileShapeChoices() {
  return {{"linear", ProfileShape::kLinear},
          {"cosine", ProfileShape::kCosine},
          {"exp", ProfileShape::kExp},
          {"rex", ProfileShape::kRex}};
}

// A boolean parameter.
Param Flag(std::string name, bool ScheduleSpec::*field) {
  return {std::move(name), Bool(field), true};
}

// Ordered as the README documents them.
const std::vector<Param>& Table() {
  static const auto* table = new std::vector<Param>{
      {"kind", kKind},
      // An alias of kind: it sets it, and reads as nothing of its own.
      {"mode",
       {Choice(&ScheduleSpec::kind,
               {{"triangular", ScheduleKind::kTriangular},
                {"triangular2", ScheduleKind::kTriangular2},
                {"exp_range", ScheduleKind::kExpRange}})
            .set,
        [](const ScheduleSpec&) { return std::string(); }}},
      {"base_lr", Double(&ScheduleSpec::base_lr)},
      {"max_lr", Double(&ScheduleSpec::max_lr)},
      {"total_steps", Int(&ScheduleSpec::total_steps)},
      {"gamma", Double(&ScheduleSpec::gamma)},
      {"step_size", Int(&ScheduleSpec::step_size)},
      {"milestones", IntList(&ScheduleSpec::milestones)},
      {"start_factor", Double(&ScheduleSpec::start_factor)},
      {"end_factor", Double(&ScheduleSpec::end_factor)},
      {"total_iters", Int(&ScheduleSpec::total_iters)},
      {"power", Double(&ScheduleSpec::power)},
      {"eta_min", Double(&ScheduleSpec::eta_min)},
      {"t_max", Int(&ScheduleSpec::t_max)},
      {"t0", Int(&ScheduleSpec::t0)},
      {"t_mult", Int(&ScheduleSpec::t_mult)},
      {"step_size_up", Int(&ScheduleSpec::step_size_up)},
      {"step_size_down", Int(&ScheduleSpec::step_size_down)},
      Flag("cycle_momentum", &ScheduleSpec::cycle_momentum),
      {"base_momentum", Double(&ScheduleSpec::base_momentum)},
      {"max_momentum", Double(&ScheduleSpec::max_momentum)},
      {"pct_start", Double(&ScheduleSpec::pct_start)},
      {"anneal", Choice(&ScheduleSpec::anneal,
                        {{"cos", Anneal::kCos}, {"linear", Anneal::kLinear}})},
      {"div_factor", Double(&ScheduleSpec::div_factor)},
      {"final_div_factor", Double(&ScheduleSpec::final_div_factor)},
      Flag("three_phase", &ScheduleSpec::three_phase),
      {"rex_beta", Double(&ScheduleSpec::rex_beta)},
      {"cooldown_steps", Int(&ScheduleSpec::cooldown_steps)},
      {"cooldown_fraction", Double(&ScheduleSpec::cooldown_fraction)},
      {"cooldown",
       Choice(&ScheduleSpec::cooldown, {{"linear", Cooldown::kLinear},
                                        {"cosine", Cooldown::kCosine},
                                        {"1-sqrt", Cooldown::kOneMinusSqrt}})},
      {"fractal_period", Int(&ScheduleSpec::fractal_period)},
      {"fractal_kappa", Double(&ScheduleSpec::fractal_kappa)},
      {"profile", Choice(&ScheduleSpec::profile, ProfileShapeChoices())},
      {"profile_mode",
       Choice(&ScheduleSpec::profile_mode, {{"decay", ProfileMode::kDecay},
                                            {"growth", ProfileMode::kGrowth},
                                            {"cyclic", ProfileMode::kCyclic}})},
      {"ramp", Choice(&ScheduleSpec::ramp, {{"exp", RampShape::kExp},
                                            {"linear", RampShape::kLinear}})},
      {"warmup_steps", Int(&ScheduleSpec::warmup_steps)},
      {"warmup_start_factor", Double(&ScheduleSpec::warmup_start_factor)},
      {"warmup_shape",
       Choice(&ScheduleSpec::warmup_shape, ProfileShapeChoices())},
      {"sample_every", Int(&ScheduleSpec::sample_every)},
  };
  return *table;
}

}  // namespace

absl::Status SetScheduleParam(ScheduleSpec& spec, absl::string_view name,
                              absl::string_view value) {
  return SetScheduleParam(spec, name, value, PrefixNames(""));
}

absl::Status SetScheduleParam(ScheduleSpec& spec, absl::string_view name,
                              absl::string_view value,
                              const FieldNamer& names) {
  std::string key = absl::AsciiStrToLower(name);
  std::replace(key.begin(), key.end(), '-', '_');
  if (key == "t_0") key = "t0";
  for (const Param& p : Table()) {
    if (p.name == key) return p.access.set(spec, names(key), value);
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("unknown schedule parameter '%s'; known: %s", name,
                      absl::StrJoin(ScheduleParamNames(), ", ")));
}

const std::vector<std::string>& ScheduleParamNames() {
  static const auto* names = [] {
    auto* v = new std::vector<std::string>;
    for (const Param& p : Table()) v->push_back(p.name);
    return v;
  }();
  return *names;
}

std::vector<std::pair<std::string, std::string>> ScheduleParamValues(
    const ScheduleSpec& spec) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const Param& p : Table()) {
    std::string text = p.access.get(spec);
    if (!text.empty()) out.emplace_back(p.name, std::move(text));
  }
  return out;
}

std::string ScheduleFlags(const ScheduleSpec& spec) {
  ScheduleSpec defaults;
  defaults.kind = spec.kind;
  std::vector<std::string> flags;
  for (const Param& p : Table()) {
    const std::string text = p.access.get(spec);
    if (text.empty() || (p.name != "kind" && text == p.access.get(defaults))) {
      continue;
    }
    std::string flag = absl::StrCat("--", p.name);
    std::replace(flag.begin(), flag.end(), '_', '-');
    if (p.flag) {
      flags.push_back(text == "true" ? flag
                                     : absl::StrCat("--no-", flag.substr(2)));
    } else {
      flags.push_back(absl::StrCat(flag, " ", text));
    }
  }
  return absl::StrJoin(flags, " ");
}

bool IsScheduleFlag(absl::string_view name) {
  for (const Param& p : Table()) {
    if (p.name == name) return p.flag;
  }
  return false;
}

}  // namespace lrtune
