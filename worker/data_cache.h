// A cache of decoded datasets: the arrays a dataset decodes to (e.g.
// Fashion-MNIST's standardised float32 images and int64 labels), stored in
// one file per dataset that later processes map read-only instead of
// decoding the gzipped sources again (~0.35 s per process for
// Fashion-MNIST).
//
//   CacheKey key{"fashion-mnist train v1 mean=0.2860 std=0.3530", {img, lbl}};
//   auto hit = LookupDataCache(dir, key);  // NotFound on a miss
//   if (!hit.ok()) LRTUNE_RETURN_IF_ERROR(StoreDataCache(dir, key, arrays));
//
// An entry is keyed by what it was derived from: the preprocessing string
// (compared in full) and each source's path, size and 64-bit content hash.
// Lookup re-hashes every source (a few ms for Fashion-MNIST's 30 MB), so an
// entry goes stale the moment a source's bytes change, whatever its mtime.
//
// File layout (native byte order; a file from another version or byte order
// is a miss): "LRTCACHE", uint32 version, uint32 0, uint64 file size,
// uint64 metadata size, uint64 metadata hash, then the preprocessing string,
// the sources (path, size, hash) and the array table (name, dtype, shape,
// offset, bytes); each array's data starts at a 64-byte-aligned offset.
// Strings are a uint32 length and their bytes. Lookup validates all of it
// against the mapped file's size, so a truncated or garbage file is a miss,
// never an out-of-bounds read. (A file truncated in place *after* it was
// mapped would still fault; StoreDataCache never does that, it renames.)
//
// Thread-safety: every function is thread-safe and keeps no state besides
// the environment that DataCacheDir reads. Several processes may store the
// same key at once: each writes a temporary file of its own and renames it
// into place, so readers see the old file or the new one, whole.
#ifndef LRTUNE_WORKER_DATA_CACHE_H_
#define LRTUNE_WORKER_DATA_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lrtune::engine {

// An array's element type. The values are written to files: never reuse one.
enum class CacheDType : uint32_t { kFloat32 = 1, kInt64 = 2, kUInt8 = 3 };

// Bytes per element of `dtype`; 0 for a value outside the enum.
size_t CacheDTypeSize(CacheDType dtype);

// An array: row-major `shape`, `bytes` = product(shape) * dtype size. One
// that StoreDataCache is given points at the caller's data, only read
// during the call; one that CacheEntry::Find returns points into the
// mapping: 64-byte aligned, read-only, valid while its CacheEntry lives.
struct CacheArray {
  std::string name;
  CacheDType dtype = CacheDType::kUInt8;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t bytes = 0;
};

// What an entry is derived from: a description of the preprocessing (any
// string; change it whenever the decoding or its constants change, e.g.
// "fashion-mnist train v1 mean=0.2860 std=0.3530") and the source files, in
// order. Paths are compared as given (not canonicalised): use the same
// spelling for the store and the lookup.
struct CacheKey {
  std::string preprocessing;
  std::vector<std::string> sources;
};

// An open cache entry: a read-only mapping of its file. Its arrays stay
// valid while the entry lives, so whoever wraps an array's data (say in a
// tensor) keeps a std::shared_ptr copy of the entry alive as long as that
// wrapper. Immutable, hence thread-safe.
class CacheEntry {
 public:
  CacheEntry(const CacheEntry&) = delete;
  CacheEntry& operator=(const CacheEntry&) = delete;
  ~CacheEntry();  // unmaps the file

  // The array called `name`, or nullptr if the entry has none.
  const CacheArray* Find(const std::string& name) const;
  // Every array, in the order they were stored.
  const std::vector<CacheArray>& arrays() const { return arrays_; }
  // The entry's file.
  const std::string& path() const { return path_; }

 private:
  friend absl::StatusOr<std::shared_ptr<const CacheEntry>> LookupDataCache(
      const std::string& dir, const CacheKey& key);

  CacheEntry(std::string path, void* map, size_t map_size)
      : path_(std::move(path)), map_(map), map_size_(map_size) {}

  std::string path_;
  void* map_;
  size_t map_size_;
  std::vector<CacheArray> arrays_;
};

// The cache directory: $LRTUNE_CACHE_DIR if set and non-empty ("off" or "0"
// disables the cache: returns ""), else $XDG_CACHE_HOME/lrtune (if that is an
// absolute path), else $HOME/.cache/lrtune; "" if none can be determined.
// The directory need not exist (StoreDataCache creates it).
std::string DataCacheDir();

// Looks `key` up in `dir`. Returns the entry, or NotFound on a miss: no
// entry file, a source whose size or contents changed ("... changed"), a
// different preprocessing string, or a truncated, garbage or other-version
// file. A source that is missing is NotFound and one that cannot be read is
// DataLoss, either naming the source file. Costs one read of every source.
absl::StatusOr<std::shared_ptr<const CacheEntry>> LookupDataCache(
    const std::string& dir, const CacheKey& key);

// Writes `arrays` as the entry for `key` in `dir` (created with its parents,
// mode 0755, if missing), replacing any older entry for the key atomically:
// a temporary file in `dir`, then rename. A crashed process leaves at most
// its temporary file (".<entry>.tmp.<pid>.<random>"), never a torn entry.
// There is no fsync, so after a power loss the file system may hold a short
// entry, which lookup rejects; the array bytes themselves carry no checksum.
// InvalidArgument for an array whose bytes do not match its dtype and
// shape, or a repeated name; a source that cannot be read or a file that
// cannot be written is an error naming the path.
absl::Status StoreDataCache(const std::string& dir, const CacheKey& key,
                            const std::vector<CacheArray>& arrays);

// The 64-bit content hash the cache keys sources by (a multiply/rotate hash
// over 8-byte words, four lanes; not cryptographic). Exposed for tests.
uint64_t HashCacheBytes(const void* data, size_t n);
// HashCacheBytes of a whole file's contents, read in 1 MiB chunks, and the
// number of bytes read. NotFound if the file is missing, DataLoss if it
// cannot be read, naming the file.
struct FileDigest {
  uint64_t size = 0;
  uint64_t hash = 0;
};
absl::StatusOr<FileDigest> HashCacheFile(const std::string& path);

}  // namespace lrtune::engine

#endif  // LRTUNE_WORKER_DATA_CACHE_H_
