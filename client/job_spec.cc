#include "client/job_spec.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "core/schedule.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"
#include "proto/core_convert.h"
#include "yaml-cpp/yaml.h"

namespace lrtune {
namespace {

// A scalar as JSON: true/false, a number when it reads as one, else a
// string (protobuf's JSON parser takes enums by name and numbers as
// numbers or strings).
nlohmann::json ScalarToJson(const std::string& s) {
  if (s == "true") return true;
  if (s == "false") return false;
  if (s == "null" || s == "~") return nullptr;
  char* end = nullptr;
  const long long i = std::strtoll(s.c_str(), &end, 10);
  if (!s.empty() && end == s.c_str() + s.size()) return i;
  const double d = std::strtod(s.c_str(), &end);
  if (!s.empty() && end == s.c_str() + s.size()) return d;
  return s;
}

// Throws YAML::Exception for keys that are not scalars (as<std::string>)
// and for nesting deeper than kMaxSpecDepth.
nlohmann::json YamlToJson(const YAML::Node& node, int depth) {
  if (depth > kMaxSpecDepth) {
    throw YAML::Exception(
        node.Mark(), absl::StrCat("nested more than ", kMaxSpecDepth, " deep"));
  }
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& kv : node) {
        out[kv.first.as<std::string>()] = YamlToJson(kv.second, depth + 1);
      }
      return out;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : node) out.push_back(YamlToJson(item, depth + 1));
      return out;
    }
    case YAML::NodeType::Scalar:
      return node.Tag() == "!" ? nlohmann::json(node.Scalar())
                               : ScalarToJson(node.Scalar());
    default:
      return nullptr;
  }
}

// The proto enum value a spec file's name stands for: the proto's own name
// (MODEL_KIND_MLP), or the CLI's lowercase one (mlp, one_cycle,
// cross_entropy, val_loss): the enum's prefix (MODEL_KIND_) and the name in
// capitals, '-' read as '_'. A schedule kind is read by core's parser
// first, so its aliases (1cycle, multistep, cyclic) work as on the CLI.
const google::protobuf::EnumValueDescriptor* EnumValueOf(
    const google::protobuf::EnumDescriptor& e, const std::string& name) {
  if (const auto* v = e.FindValueByName(name)) return v;
  if (e.full_name() == v1::ScheduleKind_descriptor()->full_name()) {
    absl::StatusOr<ScheduleKind> kind = ParseScheduleKind(name);
    if (!kind.ok()) return nullptr;
    return e.FindValueByNumber(ScheduleKindToProto(*kind));
  }
  absl::string_view prefix = e.value(0)->name();  // <PREFIX>UNSPECIFIED
  if (!absl::ConsumeSuffix(&prefix, "UNSPECIFIED") || name.empty()) {
    return nullptr;
  }
  std::string upper = absl::AsciiStrToUpper(name);
  absl::StrReplaceAll({{"-", "_"}}, &upper);
  return e.FindValueByName(absl::StrCat(prefix, upper));
}

// The lowercase names a spec file may give for `e`'s values: mlp, cnn, ...
std::string EnumNames(const google::protobuf::EnumDescriptor& e) {
  absl::string_view prefix = e.value(0)->name();
  absl::ConsumeSuffix(&prefix, "UNSPECIFIED");
  std::vector<std::string> names;
  for (int i = 1; i < e.value_count(); ++i) {
    absl::string_view n = e.value(i)->name();
    absl::ConsumePrefix(&n, prefix);
    names.push_back(absl::AsciiStrToLower(n));
  }
  return absl::StrJoin(names, ", ");
}

// Rewrites every enum given by a lowercase name in `j` (a `d` message) to
// the proto's name, so protobuf's JSON parser reads it. InvalidArgument
// names the field path, the value and the valid names; for a key that is
// no field there (a misspelling, a level left out), the fields there are.
absl::Status CanonicalEnums(nlohmann::json& j,
                            const google::protobuf::Descriptor& d,
                            const std::string& path) {
  if (!j.is_object()) return absl::OkStatus();
  for (auto& [key, value] : j.items()) {
    const google::protobuf::FieldDescriptor* f = d.FindFieldByName(key);
    if (f == nullptr) f = d.FindFieldByCamelcaseName(key);
    const std::string name = path.empty() ? key : absl::StrCat(path, ".", key);
    if (f == nullptr) {
      std::vector<std::string> fields;
      for (int i = 0; i < d.field_count(); ++i) {
        fields.push_back(d.field(i)->name());
      }
      return absl::InvalidArgumentError(absl::StrCat(
          name, " is not a field; the fields ",
          path.empty() ? "of a job spec" : absl::StrCat("of ", path), ": ",
          absl::StrJoin(fields, ", ")));
    }
    // `field`: the element's path, with its index in a list
    // (grid.grid.axes[0].schedules.values[1].kind), as protobuf's own
    // messages name it.
    std::string field = name;
    auto one = [&](nlohmann::json& v) -> absl::Status {
      if (f->type() == google::protobuf::FieldDescriptor::TYPE_MESSAGE) {
        return CanonicalEnums(v, *f->message_type(), field);
      }
      if (f->type() != google::protobuf::FieldDescriptor::TYPE_ENUM ||
          !v.is_string()) {
        return absl::OkStatus();
      }
      const auto* e = EnumValueOf(*f->enum_type(), v.get<std::string>());
      if (e == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, " must be one of ", EnumNames(*f->enum_type()),
                         "; got \"", v.get<std::string>(), "\""));
      }
      v = e->name();
      return absl::OkStatus();
    };
    if (value.is_array()) {
      for (size_t i = 0; i < value.size(); ++i) {
        field = absl::StrCat(name, "[", i, "]");
        absl::Status s = one(value[i]);
        if (!s.ok()) return s;
      }
    } else {
      absl::Status s = one(value);
      if (!s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::SubmitJobRequest> ParseJobSpec(absl::string_view text,
                                                  bool json,
                                                  const std::string& name) {
  std::string json_text(text);
  nlohmann::json tree;
  if (json) {
    // Malformed JSON goes to protobuf's parser as it is, which says where.
    tree =
        nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  } else {
    try {
      tree = YamlToJson(YAML::Load(json_text), 0);
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: line %d, column %d: %s", name, e.mark.line + 1,
                          e.mark.column + 1, e.msg));
    }
  }
  if (!tree.is_discarded()) {
    absl::Status names = CanonicalEnums(
        tree, *v1::SubmitJobRequest::descriptor(), std::string());
    if (!names.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": ", names.message()));
    }
    try {
      json_text = tree.dump();
    } catch (const nlohmann::json::exception& e) {
      // dump() refuses strings that are not UTF-8.
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": strings must be UTF-8: ", e.what()));
    }
  }
  v1::SubmitJobRequest request;
  const auto status =
      google::protobuf::util::JsonStringToMessage(json_text, &request);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": ", std::string(status.message())));
  }
  return request;
}

absl::StatusOr<v1::SubmitJobRequest> ReadJobSpec(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  if (!in || !(text << in.rdbuf())) {
    return absl::InvalidArgumentError("--spec: cannot read '" + path + "'");
  }
  return ParseJobSpec(text.str(), absl::EndsWith(path, ".json"),
                      "--spec " + path);
}

}  // namespace lrtune
