#include "client/job_spec.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"
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

}  // namespace

absl::StatusOr<v1::SubmitJobRequest> ParseJobSpec(absl::string_view text,
                                                  bool json,
                                                  const std::string& name) {
  std::string json_text(text);
  if (!json) {
    try {
      json_text = YamlToJson(YAML::Load(json_text), 0).dump();
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: line %d, column %d: %s", name, e.mark.line + 1,
                          e.mark.column + 1, e.msg));
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
