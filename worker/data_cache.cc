#include "worker/data_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <system_error>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status_macros.h"

namespace lrtune::engine {
namespace {

constexpr char kMagic[8] = {'L', 'R', 'T', 'C', 'A', 'C', 'H', 'E'};
constexpr uint32_t kFormatVersion = 1;
// magic, version, reserved, file size, metadata size, metadata hash.
constexpr size_t kFixedHeaderBytes = 40;
constexpr size_t kMetaHashOffset = 32;
constexpr size_t kAlignment = 64;
constexpr size_t kMaxDims = 16;
constexpr size_t kReadChunk = size_t{1} << 20;

std::string ErrnoText(int e) { return std::generic_category().message(e); }

// ---------------------------------------------------------------------------
// The content hash: four independent 64-bit lanes, each taking one 8-byte
// word per 32-byte stripe (independent lanes let the multiplies overlap),
// then the tail a word, then a byte, at a time, and a final avalanche.
// Every step is a bijection of the state for a fixed input word and of the
// word for a fixed state, so changing any one word always changes the hash.

constexpr uint64_t kK1 = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kK2 = 0xBF58476D1CE4E5B9ull;
constexpr uint64_t kK3 = 0x94D049BB133111EBull;
constexpr uint64_t kK4 = 0xC6A4A7935BD1E995ull;

inline uint64_t Rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

inline uint64_t Load64(const char* p) {
  uint64_t w;
  std::memcpy(&w, p, sizeof(w));
  return w;
}

inline uint64_t Mix(uint64_t lane, uint64_t word) {
  return Rotl(lane + word * kK2, 29) * kK1;
}

class Hasher {
 public:
  void Update(const char* p, size_t n) {
    total_ += n;
    if (carry_len_ > 0) {
      const size_t take = std::min(n, kStripe - carry_len_);
      std::memcpy(carry_ + carry_len_, p, take);
      carry_len_ += take;
      p += take;
      n -= take;
      if (carry_len_ < kStripe) return;
      Stripe(carry_);
      carry_len_ = 0;
    }
    for (; n >= kStripe; p += kStripe, n -= kStripe) Stripe(p);
    std::memcpy(carry_, p, n);
    carry_len_ = n;
  }

  uint64_t Finish() const {
    uint64_t h = total_ >= kStripe
                     ? Rotl(lanes_[0], 1) + Rotl(lanes_[1], 9) +
                           Rotl(lanes_[2], 17) + Rotl(lanes_[3], 25)
                     : kK4;
    h += total_ * kK3;
    const char* p = carry_;
    size_t n = carry_len_;
    for (; n >= 8; p += 8, n -= 8) {
      h = Rotl(h ^ Mix(0, Load64(p)), 27) * kK1 + kK4;
    }
    for (; n > 0; ++p, --n) {
      h = Rotl(h ^ (uint64_t{static_cast<unsigned char>(*p)} * kK3), 23) * kK2;
    }
    h ^= h >> 31;
    h *= kK2;
    h ^= h >> 29;
    h *= kK3;
    h ^= h >> 32;
    return h;
  }

 private:
  static constexpr size_t kStripe = 32;

  void Stripe(const char* p) {
    lanes_[0] = Mix(lanes_[0], Load64(p));
    lanes_[1] = Mix(lanes_[1], Load64(p + 8));
    lanes_[2] = Mix(lanes_[2], Load64(p + 16));
    lanes_[3] = Mix(lanes_[3], Load64(p + 24));
  }

  uint64_t lanes_[4] = {kK1 + kK2, kK2, 0, 0 - kK1};
  uint64_t total_ = 0;
  char carry_[kStripe] = {};
  size_t carry_len_ = 0;
};

// ---------------------------------------------------------------------------
// File descriptors and the metadata encoding.

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now, returning close's errno (0 on success).
  int Close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc == 0 ? 0 : errno;
  }

 private:
  int fd_;
};

void PutU32(std::string& out, uint32_t v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(v));
}
void PutU64(std::string& out, uint64_t v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(v));
}
void PutString(std::string& out, const std::string& s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

// Bounds-checked reads from the mapping; after any read past the end, ok()
// is false and every further read returns zero or "".
class Reader {
 public:
  Reader(const char* data, size_t size, size_t pos)
      : data_(data), size_(size), pos_(pos) {}

  bool ok() const { return ok_; }
  size_t pos() const { return pos_; }

  uint32_t U32() {
    uint32_t v = 0;
    if (Take(sizeof(v))) std::memcpy(&v, data_ + pos_ - sizeof(v), sizeof(v));
    return v;
  }
  uint64_t U64() {
    uint64_t v = 0;
    if (Take(sizeof(v))) std::memcpy(&v, data_ + pos_ - sizeof(v), sizeof(v));
    return v;
  }
  std::string String() {
    const size_t n = U32();
    if (!Take(n)) return "";
    return std::string(data_ + pos_ - n, n);
  }

 private:
  bool Take(size_t n) {
    if (!ok_ || n > size_ - pos_) {
      ok_ = false;
      return false;
    }
    pos_ += n;
    return true;
  }

  const char* data_;
  size_t size_;
  size_t pos_;
  bool ok_ = true;
};

// The metadata hash: the fixed header with its hash field read as zero,
// then the rest of the metadata.
uint64_t MetaHash(const char* meta, size_t meta_size) {
  Hasher h;
  h.Update(meta, kMetaHashOffset);
  const char zeros[8] = {};
  h.Update(zeros, sizeof(zeros));
  h.Update(meta + kFixedHeaderBytes, meta_size - kFixedHeaderBytes);
  return h.Finish();
}

// Multiplies the dims into an element count; false on a negative dim, too
// many dims or overflow.
bool ElementCount(const std::vector<int64_t>& shape, uint64_t* count) {
  if (shape.size() > kMaxDims) return false;
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return false;
    const uint64_t u = static_cast<uint64_t>(d);
    if (u != 0 && n > std::numeric_limits<uint64_t>::max() / u) return false;
    n *= u;
  }
  *count = n;
  return true;
}

// True if shape and dtype account for exactly `bytes`.
bool SizeMatches(CacheDType dtype, const std::vector<int64_t>& shape,
                 uint64_t bytes) {
  const size_t elem = CacheDTypeSize(dtype);
  uint64_t count = 0;
  if (elem == 0 || !ElementCount(shape, &count)) return false;
  if (count > std::numeric_limits<uint64_t>::max() / elem) return false;
  return count * elem == bytes;
}

uint64_t AlignUp(uint64_t v) {
  return (v + kAlignment - 1) / kAlignment * kAlignment;
}

std::string EntryPath(const std::string& dir, const CacheKey& key) {
  std::string id;
  PutU64(id, key.preprocessing.size());
  id += key.preprocessing;
  for (const std::string& s : key.sources) {
    PutU64(id, s.size());
    id += s;
  }
  return absl::StrFormat("%s/%016x.lrtcache", dir,
                         HashCacheBytes(id.data(), id.size()));
}

// mkdir -p with mode 0755 for each directory it creates.
absl::Status MakeDirs(const std::string& dir) {
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i != dir.size() && dir[i] != '/') continue;
    const std::string prefix = dir.substr(0, i);
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      const int e = errno;
      return absl::ErrnoToStatus(e, absl::StrCat("cannot create ", prefix));
    }
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, ": not a directory"));
  }
  return absl::OkStatus();
}

absl::Status WriteAll(int fd, const void* data, size_t n,
                      const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const size_t chunk = std::min<size_t>(n, size_t{1} << 30);
    const ssize_t w = ::write(fd, p, chunk);
    if (w < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      return absl::ErrnoToStatus(e, absl::StrCat("cannot write ", path));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

// A name no other process or thread is using: pid, thread and random bits.
std::string TempPath(const std::string& entry_path) {
  std::random_device rd;
  const uint64_t bits =
      (uint64_t{rd()} << 32) ^ rd() ^
      std::hash<std::thread::id>()(std::this_thread::get_id()) ^
      static_cast<uint64_t>(
          std::chrono::steady_clock::now().time_since_epoch().count());
  const size_t slash = entry_path.rfind('/');
  return absl::StrFormat("%s.%s.tmp.%d.%016x", entry_path.substr(0, slash + 1),
                         entry_path.substr(slash + 1), ::getpid(), bits);
}

absl::Status Miss(const std::string& path, const std::string& why) {
  return absl::NotFoundError(absl::StrCat(path, ": ", why));
}

}  // namespace

size_t CacheDTypeSize(CacheDType dtype) {
  switch (dtype) {
    case CacheDType::kFloat32:
      return 4;
    case CacheDType::kInt64:
      return 8;
    case CacheDType::kUInt8:
      return 1;
  }
  return 0;
}

uint64_t HashCacheBytes(const void* data, size_t n) {
  Hasher h;
  h.Update(static_cast<const char*>(data), n);
  return h.Finish();
}

absl::StatusOr<FileDigest> HashCacheFile(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    const int e = errno;
    const std::string msg =
        absl::StrCat("cannot open ", path, ": ", ErrnoText(e));
    if (e == ENOENT || e == ENOTDIR) return absl::NotFoundError(msg);
    return absl::DataLossError(msg);
  }
  std::unique_ptr<char[]> buf(new char[kReadChunk]);
  Hasher h;
  FileDigest digest;
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf.get(), kReadChunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      return absl::DataLossError(
          absl::StrCat("cannot read ", path, ": ", ErrnoText(e)));
    }
    if (n == 0) break;
    h.Update(buf.get(), static_cast<size_t>(n));
    digest.size += static_cast<uint64_t>(n);
  }
  digest.hash = h.Finish();
  return digest;
}

CacheEntry::~CacheEntry() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

const CacheArray* CacheEntry::Find(const std::string& name) const {
  for (const CacheArray& a : arrays_) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

std::string DataCacheDir() {
  const char* v = std::getenv("LRTUNE_CACHE_DIR");
  if (v != nullptr && *v != '\0') {
    const std::string s(v);
    return s == "off" || s == "0" ? "" : s;
  }
  v = std::getenv("XDG_CACHE_HOME");
  if (v != nullptr && v[0] == '/') return absl::StrCat(v, "/lrtune");
  v = std::getenv("HOME");
  if (v != nullptr && *v != '\0') return absl::StrCat(v, "/.cache/lrtune");
  return "";
}

absl::StatusOr<std::shared_ptr<const CacheEntry>> LookupDataCache(
    const std::string& dir, const CacheKey& key) {
  if (dir.empty()) return absl::NotFoundError("the data cache is disabled");
  // A missing source is reported as such, entry or not.
  for (const std::string& src : key.sources) {
    struct stat st;
    if (::stat(src.c_str(), &st) != 0) {
      const int e = errno;
      return absl::NotFoundError(
          absl::StrCat("cannot open ", src, ": ", ErrnoText(e)));
    }
  }

  const std::string path = EntryPath(dir, key);
  size_t size = 0;
  void* map = nullptr;
  {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
      const int e = errno;
      if (e == ENOENT) return Miss(path, "no cache entry");
      return Miss(path, absl::StrCat("cannot open: ", ErrnoText(e)));
    }
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) {
      const int e = errno;
      return Miss(path, absl::StrCat("cannot stat: ", ErrnoText(e)));
    }
    size = static_cast<size_t>(st.st_size);
    if (size < kFixedHeaderBytes) return Miss(path, "truncated header");
    map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (map == MAP_FAILED) {
      const int e = errno;
      return absl::ErrnoToStatus(e, absl::StrCat("cannot map ", path));
    }
  }
  // From here the entry owns (and on any early return unmaps) the mapping.
  std::shared_ptr<CacheEntry> entry(new CacheEntry(path, map, size));
  const char* base = static_cast<const char*>(map);

  if (std::memcmp(base, kMagic, sizeof(kMagic)) != 0) {
    return Miss(path, "not a cache file");
  }
  Reader r(base, size, sizeof(kMagic));
  if (r.U32() != kFormatVersion) return Miss(path, "other format version");
  r.U32();  // reserved
  const uint64_t file_size = r.U64();
  const uint64_t meta_size = r.U64();
  const uint64_t meta_hash = r.U64();
  if (file_size != size) {
    return Miss(path,
                absl::StrCat("truncated: ", size, " of ", file_size, " bytes"));
  }
  if (meta_size < kFixedHeaderBytes || meta_size > size) {
    return Miss(path, "bad metadata size");
  }
  if (MetaHash(base, meta_size) != meta_hash) {
    return Miss(path, "metadata checksum mismatch");
  }

  // The metadata is intact; now check it describes this key and the file.
  r = Reader(base, meta_size, kFixedHeaderBytes);
  if (r.String() != key.preprocessing) {
    return Miss(path, "stored for other preprocessing");
  }
  const uint32_t num_sources = r.U32();
  if (num_sources != key.sources.size()) {
    return Miss(path, "stored for other sources");
  }
  std::vector<FileDigest> stored(num_sources);
  for (uint32_t i = 0; i < num_sources; ++i) {
    if (r.String() != key.sources[i]) {
      return Miss(path, "stored for other sources");
    }
    stored[i].size = r.U64();
    stored[i].hash = r.U64();
  }
  const uint32_t num_arrays = r.U32();
  if (!r.ok() || num_arrays > meta_size) return Miss(path, "bad array table");
  for (uint32_t i = 0; i < num_arrays; ++i) {
    CacheArray a;
    a.name = r.String();
    a.dtype = static_cast<CacheDType>(r.U32());
    const uint32_t ndims = r.U32();
    if (!r.ok() || ndims > kMaxDims) return Miss(path, "bad array table");
    for (uint32_t d = 0; d < ndims; ++d) {
      a.shape.push_back(static_cast<int64_t>(r.U64()));
    }
    const uint64_t offset = r.U64();
    const uint64_t bytes = r.U64();
    if (!r.ok()) return Miss(path, "bad array table");
    if (!SizeMatches(a.dtype, a.shape, bytes)) {
      return Miss(path, absl::StrCat("array ", a.name,
                                     ": shape and dtype do not match bytes"));
    }
    if (offset % kAlignment != 0 || offset < meta_size || offset > size ||
        bytes > size - offset) {
      return Miss(path, absl::StrCat("array ", a.name, ": out of bounds"));
    }
    a.data = base + offset;
    a.bytes = static_cast<size_t>(bytes);
    entry->arrays_.push_back(std::move(a));
  }
  if (r.pos() != meta_size) return Miss(path, "bad metadata size");

  // Last, the expensive part: are the sources still what the entry was
  // derived from?
  for (uint32_t i = 0; i < num_sources; ++i) {
    LRTUNE_ASSIGN_OR_RETURN(FileDigest now, HashCacheFile(key.sources[i]));
    if (now.size != stored[i].size || now.hash != stored[i].hash) {
      return Miss(path, absl::StrCat("source ", key.sources[i], " changed"));
    }
  }
  return std::shared_ptr<const CacheEntry>(std::move(entry));
}

absl::Status StoreDataCache(const std::string& dir, const CacheKey& key,
                            const std::vector<CacheArray>& arrays) {
  if (dir.empty()) {
    return absl::InvalidArgumentError("the data cache directory is empty");
  }
  for (size_t i = 0; i < arrays.size(); ++i) {
    const CacheArray& a = arrays[i];
    if (!SizeMatches(a.dtype, a.shape, a.bytes)) {
      return absl::InvalidArgumentError(
          absl::StrCat("cache array ", a.name, ": ", a.bytes,
                       " bytes do not match its dtype and shape"));
    }
    if (a.bytes > 0 && a.data == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("cache array ", a.name, ": null data"));
    }
    for (size_t j = 0; j < i; ++j) {
      if (arrays[j].name == a.name) {
        return absl::InvalidArgumentError(
            absl::StrCat("cache array ", a.name, ": name repeated"));
      }
    }
  }
  std::vector<FileDigest> digests;
  for (const std::string& src : key.sources) {
    LRTUNE_ASSIGN_OR_RETURN(FileDigest d, HashCacheFile(src));
    digests.push_back(d);
  }

  // The metadata's size does not depend on the offsets (fixed-width), so
  // encode once to learn it, then again with the real offsets.
  auto encode = [&](const std::vector<uint64_t>& offsets, uint64_t file_size) {
    std::string m(kMagic, sizeof(kMagic));
    PutU32(m, kFormatVersion);
    PutU32(m, 0);
    PutU64(m, file_size);
    PutU64(m, 0);  // metadata size, patched below
    PutU64(m, 0);  // metadata hash, patched below
    PutString(m, key.preprocessing);
    PutU32(m, static_cast<uint32_t>(key.sources.size()));
    for (size_t i = 0; i < key.sources.size(); ++i) {
      PutString(m, key.sources[i]);
      PutU64(m, digests[i].size);
      PutU64(m, digests[i].hash);
    }
    PutU32(m, static_cast<uint32_t>(arrays.size()));
    for (size_t i = 0; i < arrays.size(); ++i) {
      const CacheArray& a = arrays[i];
      PutString(m, a.name);
      PutU32(m, static_cast<uint32_t>(a.dtype));
      PutU32(m, static_cast<uint32_t>(a.shape.size()));
      for (int64_t d : a.shape) PutU64(m, static_cast<uint64_t>(d));
      PutU64(m, offsets[i]);
      PutU64(m, a.bytes);
    }
    const uint64_t meta_size = m.size();
    std::memcpy(&m[24], &meta_size, sizeof(meta_size));
    const uint64_t hash = MetaHash(m.data(), m.size());
    std::memcpy(&m[kMetaHashOffset], &hash, sizeof(hash));
    return m;
  };
  std::vector<uint64_t> offsets(arrays.size(), 0);
  uint64_t end = encode(offsets, 0).size();
  for (size_t i = 0; i < arrays.size(); ++i) {
    offsets[i] = AlignUp(end);
    end = offsets[i] + arrays[i].bytes;
  }
  const std::string meta = encode(offsets, end);

  LRTUNE_RETURN_IF_ERROR(MakeDirs(dir));
  const std::string path = EntryPath(dir, key);
  const std::string tmp = TempPath(path);
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (fd.get() < 0) {
    const int e = errno;
    return absl::ErrnoToStatus(e, absl::StrCat("cannot create ", tmp));
  }
  absl::Status st = [&]() -> absl::Status {
    const char zeros[kAlignment] = {};
    LRTUNE_RETURN_IF_ERROR(WriteAll(fd.get(), meta.data(), meta.size(), tmp));
    uint64_t pos = meta.size();
    for (size_t i = 0; i < arrays.size(); ++i) {
      LRTUNE_RETURN_IF_ERROR(WriteAll(fd.get(), zeros, offsets[i] - pos, tmp));
      LRTUNE_RETURN_IF_ERROR(
          WriteAll(fd.get(), arrays[i].data, arrays[i].bytes, tmp));
      pos = offsets[i] + arrays[i].bytes;
    }
    if (int e = fd.Close(); e != 0) {
      return absl::ErrnoToStatus(e, absl::StrCat("cannot write ", tmp));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      const int e = errno;
      return absl::ErrnoToStatus(
          e, absl::StrCat("cannot rename ", tmp, " to ", path));
    }
    return absl::OkStatus();
  }();
  if (!st.ok()) ::unlink(tmp.c_str());
  return st;
}

}  // namespace lrtune::engine
