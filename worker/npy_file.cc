// .npy headers and read-only mappings; see npy_file.h.
#include "worker/npy_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace lrtune::engine {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicBytes = 6;

absl::Status Bad(absl::string_view why) {
  return absl::InvalidArgumentError(why);
}

// A Python literal, as much of it as .npy headers use.
struct Value {
  enum class Kind { kString, kBool, kTuple } kind = Kind::kString;
  std::string text;            // kString
  bool flag = false;           // kBool
  std::vector<int64_t> tuple;  // kTuple of non-negative ints
};

// Parses the header dict {'key': value, ...}: strings in single or double
// quotes without escapes, True/False, tuples of non-negative integers (an
// old writer's "3L" too). Refuses anything else rather than guess.
class DictParser {
 public:
  explicit DictParser(absl::string_view text) : text_(text) {}

  absl::Status Parse(std::vector<std::pair<std::string, Value>>* out) {
    SkipSpace();
    if (!Eat('{')) return Bad("the header is not a dict: no '{'");
    SkipSpace();
    while (!Eat('}')) {
      std::string key;
      if (absl::Status s = String(&key); !s.ok()) return s;
      SkipSpace();
      if (!Eat(':')) return Bad(absl::StrCat("no ':' after key '", key, "'"));
      SkipSpace();
      Value value;
      if (absl::Status s = ParseValue(key, &value); !s.ok()) return s;
      for (const auto& [k, v] : *out) {
        if (k == key) return Bad(absl::StrCat("key '", key, "' repeats"));
      }
      out->emplace_back(std::move(key), std::move(value));
      SkipSpace();
      if (Eat(',')) {
        SkipSpace();
        continue;
      }
      if (!Eat('}')) return Bad("expected ',' or '}' in the header dict");
      break;
    }
    SkipSpace();
    if (pos_ != text_.size()) {
      return Bad("the header has bytes after its dict that are not padding");
    }
    return absl::OkStatus();
  }

 private:
  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return AtEnd() ? '\0' : text_[pos_]; }
  bool Eat(char c) {
    if (Peek() != c || AtEnd()) return false;
    ++pos_;
    return true;
  }
  void SkipSpace() {
    while (!AtEnd() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                        text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  absl::Status String(std::string* out) {
    const char quote = Peek();
    if (quote != '\'' && quote != '"') {
      return Bad("expected a quoted string in the header dict");
    }
    ++pos_;
    const size_t start = pos_;
    while (!AtEnd() && text_[pos_] != quote) {
      const char c = text_[pos_];
      if (c == '\\' || c == '\n' || static_cast<unsigned char>(c) < 0x20) {
        return Bad("a string in the header holds an escape or control byte");
      }
      ++pos_;
    }
    if (AtEnd()) return Bad("a string in the header is not closed");
    *out = std::string(text_.substr(start, pos_ - start));
    ++pos_;
    return absl::OkStatus();
  }

  absl::Status ParseValue(const std::string& key, Value* out) {
    const char c = Peek();
    if (c == '\'' || c == '"') {
      out->kind = Value::Kind::kString;
      return String(&out->text);
    }
    if (text_.substr(pos_, 4) == "True") {
      pos_ += 4;
      out->kind = Value::Kind::kBool;
      out->flag = true;
      return absl::OkStatus();
    }
    if (text_.substr(pos_, 5) == "False") {
      pos_ += 5;
      out->kind = Value::Kind::kBool;
      out->flag = false;
      return absl::OkStatus();
    }
    if (c == '(') return Tuple(key, out);
    if (c == '[' || c == '{') {
      return Bad(absl::StrCat("'", key,
                              "' is a list or dict: structured dtypes are not "
                              "supported, save plain arrays"));
    }
    return Bad(absl::StrCat("'", key, "' has a value the header cannot hold"));
  }

  absl::Status Tuple(const std::string& key, Value* out) {
    out->kind = Value::Kind::kTuple;
    ++pos_;  // '('
    SkipSpace();
    while (!Eat(')')) {
      if (out->tuple.size() == kMaxNpyDims) {
        return Bad(
            absl::StrCat("'", key, "' has more than ", kMaxNpyDims, " dims"));
      }
      if (!absl::ascii_isdigit(static_cast<unsigned char>(Peek()))) {
        return Bad(absl::StrCat("'", key, "' must hold non-negative integers"));
      }
      int64_t v = 0;
      while (absl::ascii_isdigit(static_cast<unsigned char>(Peek()))) {
        const int digit = Peek() - '0';
        if (v > (std::numeric_limits<int64_t>::max() - digit) / 10) {
          return Bad(absl::StrCat("'", key, "' holds a dim over 2^63"));
        }
        v = v * 10 + digit;
        ++pos_;
      }
      Eat('L');  // Python 2's long
      out->tuple.push_back(v);
      SkipSpace();
      if (Eat(',')) {
        SkipSpace();
        continue;
      }
      if (!Eat(')')) return Bad(absl::StrCat("'", key, "' is not closed"));
      break;
    }
    return absl::OkStatus();
  }

  absl::string_view text_;
  size_t pos_ = 0;
};

std::optional<NpyDType> DTypeOf(const std::string& descr) {
  // '<': little-endian, as the arrays are read in place on a little-endian
  // host.
  if (descr == "<f4") return NpyDType::kFloat32;
  if (descr == "<i8") return NpyDType::kInt64;
  if (descr == "<i4") return NpyDType::kInt32;
  return std::nullopt;
}

uint32_t LittleEndian(absl::string_view b, size_t at, size_t n) {
  uint32_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    v |= static_cast<uint32_t>(static_cast<unsigned char>(b[at + i]))
         << (8 * i);
  }
  return v;
}

std::string ErrnoText(int e) { return std::generic_category().message(e); }

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Opens `path` and reads its header; `size` receives the file's size.
absl::StatusOr<NpyHeader> OpenAndRead(const std::string& path, Fd& fd,
                                      uint64_t* size) {
  if (fd.get() < 0) {
    const int e = errno;
    const std::string what =
        absl::StrCat("cannot open ", path, ": ", ErrnoText(e));
    return e == ENOENT ? absl::NotFoundError(what) : absl::DataLossError(what);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::DataLossError(absl::StrCat(path, ": not a regular file"));
  }
  *size = static_cast<uint64_t>(st.st_size);
  // The header's first bytes say how long it is; read at most the limit.
  std::string head(
      std::min<uint64_t>(*size, kMagicBytes + 6 + kMaxNpyHeaderBytes), '\0');
  size_t got = 0;
  while (got < head.size()) {
    const ssize_t n = ::pread(fd.get(), &head[got], head.size() - got,
                              static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::DataLossError(absl::StrCat("cannot read ", path));
    }
    got += static_cast<size_t>(n);
  }
  absl::StatusOr<NpyHeader> header = ParseNpyHeader(head);
  if (!header.ok()) {
    return absl::DataLossError(
        absl::StrCat(path, ": ", header.status().message()));
  }
  const uint64_t want = header->data_offset + header->data_bytes;
  if (header->data_bytes >
          std::numeric_limits<uint64_t>::max() - header->data_offset ||
      *size != want) {
    return absl::DataLossError(absl::StrCat(
        path, ": the header's shape and dtype need ", header->data_bytes,
        " data bytes after ", header->data_offset,
        " header bytes, but the "
        "file has ",
        *size, " bytes (truncated or not a whole array)"));
  }
  return header;
}

}  // namespace

const char* NpyDTypeName(NpyDType dtype) {
  switch (dtype) {
    case NpyDType::kFloat32:
      return "float32";
    case NpyDType::kInt64:
      return "int64";
    case NpyDType::kInt32:
      return "int32";
  }
  return "?";
}

size_t NpyDTypeSize(NpyDType dtype) {
  return dtype == NpyDType::kInt64 ? 8 : 4;
}

absl::StatusOr<NpyHeader> ParseNpyHeader(absl::string_view bytes) {
  if (bytes.size() < kMagicBytes + 2 ||
      bytes.substr(0, kMagicBytes) != absl::string_view(kMagic, kMagicBytes)) {
    return Bad("not a .npy file (no \\x93NUMPY magic)");
  }
  NpyHeader h;
  h.major_version = static_cast<unsigned char>(bytes[kMagicBytes]);
  const int minor = static_cast<unsigned char>(bytes[kMagicBytes + 1]);
  if ((h.major_version < 1 || h.major_version > 3) || minor != 0) {
    return Bad(absl::StrCat(".npy format version ", h.major_version, ".", minor,
                            " is not 1.0, 2.0 or 3.0"));
  }
  const size_t len_bytes = h.major_version == 1 ? 2 : 4;
  const size_t start = kMagicBytes + 2 + len_bytes;
  if (bytes.size() < start) return Bad("the header is truncated");
  const uint32_t header_len = LittleEndian(bytes, kMagicBytes + 2, len_bytes);
  if (header_len > kMaxNpyHeaderBytes) {
    return Bad(absl::StrCat("the header is ", header_len,
                            " bytes, over the limit of ", kMaxNpyHeaderBytes));
  }
  if (bytes.size() - start < header_len) return Bad("the header is truncated");
  std::vector<std::pair<std::string, Value>> dict;
  if (absl::Status s = DictParser(bytes.substr(start, header_len)).Parse(&dict);
      !s.ok()) {
    return s;
  }
  const Value* descr = nullptr;
  const Value* fortran = nullptr;
  const Value* shape = nullptr;
  for (const auto& [key, value] : dict) {
    if (key == "descr") {
      descr = &value;
    } else if (key == "fortran_order") {
      fortran = &value;
    } else if (key == "shape") {
      shape = &value;
    } else {
      return Bad(absl::StrCat("the header has an unknown key '", key, "'"));
    }
  }
  if (descr == nullptr || fortran == nullptr || shape == nullptr) {
    return Bad("the header lacks one of 'descr', 'fortran_order', 'shape'");
  }
  if (descr->kind != Value::Kind::kString) {
    return Bad("'descr' must be a string");
  }
  if (fortran->kind != Value::Kind::kBool) {
    return Bad("'fortran_order' must be True or False");
  }
  if (shape->kind != Value::Kind::kTuple) {
    return Bad("'shape' must be a tuple");
  }
  h.descr = descr->text;
  std::optional<NpyDType> dtype = DTypeOf(h.descr);
  if (!dtype.has_value()) {
    return Bad(absl::StrCat("dtype '", h.descr,
                            "' is not supported: use float32 ('<f4'), int64 "
                            "('<i8') or int32 ('<i4'), little-endian"));
  }
  h.dtype = *dtype;
  if (fortran->flag) {
    return Bad(
        "the array is in Fortran order: save it C-contiguous "
        "(np.ascontiguousarray)");
  }
  h.shape = shape->tuple;
  uint64_t bytes_total = NpyDTypeSize(h.dtype);
  for (int64_t d : h.shape) {
    const uint64_t u = static_cast<uint64_t>(d);
    if (u != 0 && bytes_total > std::numeric_limits<int64_t>::max() / u) {
      return Bad("the array's size overflows");
    }
    bytes_total *= u;
  }
  h.data_bytes = bytes_total;
  h.data_offset = start + header_len;
  if (h.data_offset % NpyDTypeSize(h.dtype) != 0) {
    return Bad(absl::StrCat("the data starts at byte ", h.data_offset,
                            ", not a multiple of its ", NpyDTypeSize(h.dtype),
                            "-byte elements"));
  }
  return h;
}

absl::StatusOr<NpyHeader> ReadNpyHeader(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  uint64_t size = 0;
  return OpenAndRead(path, fd, &size);
}

absl::StatusOr<std::shared_ptr<const MappedNpy>> MappedNpy::Open(
    const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  uint64_t size = 0;
  absl::StatusOr<NpyHeader> header = OpenAndRead(path, fd, &size);
  if (!header.ok()) return header.status();
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (map == MAP_FAILED) {
    const int e = errno;
    return absl::DataLossError(
        absl::StrCat("cannot map ", path, ": ", ErrnoText(e)));
  }
  // The mapping outlives the descriptor.
  return std::shared_ptr<const MappedNpy>(
      new MappedNpy(path, *std::move(header), map, size));
}

MappedNpy::MappedNpy(std::string path, NpyHeader header, void* map,
                     size_t map_size)
    : path_(std::move(path)),
      header_(std::move(header)),
      map_(map),
      map_size_(map_size),
      data_(static_cast<const char*>(map) + header_.data_offset) {}

MappedNpy::~MappedNpy() { ::munmap(map_, map_size_); }

}  // namespace lrtune::engine
