#include "worker/data_cache.h"

#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace lrtune::engine {
namespace {

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

uint64_t U64At(const std::string& bytes, size_t offset) {
  uint64_t v = 0;
  std::memcpy(&v, bytes.data() + offset, sizeof(v));
  return v;
}

bool Contains(const absl::Status& s, const std::string& text) {
  return std::string(s.message()).find(text) != std::string::npos;
}

class DataCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/data_cache_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/cache/nested";  // StoreDataCache creates it
    images_ = root_ + "/images.idx";
    labels_ = root_ + "/labels.idx";
    WriteFile(images_, std::string(1000, 'i') + "tail of the images file");
    WriteFile(labels_, "0123456789 labels");
    key_ = {"test v1 mean=0.5 std=0.25", {images_, labels_}};

    for (int i = 0; i < 3 * 2 * 5; ++i) x_.push_back(0.25f * i - 3.0f);
    y_ = {7, -1, 0, 1LL << 40, 3};
    raw_ = {1, 2, 3, 4, 5, 6, 250, 251, 252, 253, 254, 255};
    arrays_ = {
        {"x", CacheDType::kFloat32, {3, 2, 5}, x_.data(), x_.size() * 4},
        {"y", CacheDType::kInt64, {5}, y_.data(), y_.size() * 8},
        {"raw", CacheDType::kUInt8, {3, 4}, raw_.data(), raw_.size()},
        {"empty", CacheDType::kFloat32, {0, 4}, nullptr, 0},
    };
  }

  void TearDown() override { std::filesystem::remove_all(root_); }

  // Stores arrays_ under key_ and returns the entry's path.
  std::string StoreAndPath() {
    absl::Status st = StoreDataCache(dir_, key_, arrays_);
    EXPECT_TRUE(st.ok()) << st;
    auto hit = LookupDataCache(dir_, key_);
    EXPECT_TRUE(hit.ok()) << hit.status();
    return hit.ok() ? (*hit)->path() : "";
  }

  void ExpectMiss(const CacheKey& key, const std::string& why) {
    auto hit = LookupDataCache(dir_, key);
    ASSERT_FALSE(hit.ok()) << why;
    EXPECT_EQ(hit.status().code(), absl::StatusCode::kNotFound)
        << why << ": " << hit.status();
  }

  std::string root_, dir_, images_, labels_;
  CacheKey key_;
  std::vector<float> x_;
  std::vector<int64_t> y_;
  std::vector<uint8_t> raw_;
  std::vector<CacheArray> arrays_;
};

TEST_F(DataCacheTest, StoreThenLookupReturnsIdenticalArrays) {
  ASSERT_TRUE(StoreDataCache(dir_, key_, arrays_).ok());
  absl::StatusOr<std::shared_ptr<const CacheEntry>> hit =
      LookupDataCache(dir_, key_);
  ASSERT_TRUE(hit.ok()) << hit.status();
  const CacheEntry& e = **hit;
  EXPECT_NE(e.path().find(dir_ + "/"), std::string::npos);
  EXPECT_NE(e.path().find(".lrtcache"), std::string::npos);
  ASSERT_EQ(e.arrays().size(), arrays_.size());
  for (size_t i = 0; i < arrays_.size(); ++i) {
    const CacheArray& in = arrays_[i];
    const CacheArray* out = e.Find(in.name);
    ASSERT_NE(out, nullptr) << in.name;
    EXPECT_EQ(out, &e.arrays()[i]) << "stored order kept";
    EXPECT_EQ(out->name, in.name);
    EXPECT_EQ(out->dtype, in.dtype) << in.name;
    EXPECT_EQ(out->shape, in.shape) << in.name;
    EXPECT_EQ(out->bytes, in.bytes) << in.name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(out->data) % 64, 0u) << in.name;
    if (in.bytes > 0) {
      EXPECT_EQ(std::memcmp(out->data, in.data, in.bytes), 0) << in.name;
    }
  }
  const float* x = static_cast<const float*>(e.Find("x")->data);
  EXPECT_FLOAT_EQ(x[29], 0.25f * 29 - 3.0f);
  EXPECT_EQ(static_cast<const int64_t*>(e.Find("y")->data)[3], 1LL << 40);
  EXPECT_EQ(e.Find("absent"), nullptr);
}

TEST_F(DataCacheTest, EntryOutlivesItsFileAndItsReplacement) {
  ASSERT_TRUE(StoreDataCache(dir_, key_, arrays_).ok());
  auto hit = LookupDataCache(dir_, key_);
  ASSERT_TRUE(hit.ok()) << hit.status();
  std::shared_ptr<const CacheEntry> held = *hit;
  // A new store renames over the file; the old mapping stays readable.
  std::vector<float> x2(x_.size(), 9.0f);
  std::vector<CacheArray> other = arrays_;
  other[0].data = x2.data();
  ASSERT_TRUE(StoreDataCache(dir_, key_, other).ok());
  EXPECT_EQ(std::memcmp(held->Find("x")->data, x_.data(), x_.size() * 4), 0);
  auto fresh = LookupDataCache(dir_, key_);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_FLOAT_EQ(static_cast<const float*>((*fresh)->Find("x")->data)[0],
                  9.0f);
  // Only the entry is left in the directory: no temporary files.
  int files = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir_)) {
    EXPECT_EQ(f.path().extension(), ".lrtcache") << f.path();
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST_F(DataCacheTest, MissWithoutEntry) {
  auto hit = LookupDataCache(dir_, key_);
  ASSERT_EQ(hit.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(hit.status(), "no cache entry")) << hit.status();
  EXPECT_EQ(LookupDataCache("", key_).status().code(),
            absl::StatusCode::kNotFound);
}

// The cache's reason to exist: an entry must not outlive its sources'
// contents, even when the size (and, on a coarse clock, the mtime) stays.
TEST_F(DataCacheTest, MissWhenSourceContentsChangeAtTheSameSize) {
  StoreAndPath();
  std::string bytes = ReadFile(labels_);
  bytes[5] ^= 0x01;
  WriteFile(labels_, bytes);
  auto hit = LookupDataCache(dir_, key_);
  ASSERT_EQ(hit.status().code(), absl::StatusCode::kNotFound) << hit.status();
  EXPECT_TRUE(Contains(hit.status(), labels_ + " changed")) << hit.status();

  // A change of size, in the other source.
  ASSERT_TRUE(StoreDataCache(dir_, key_, arrays_).ok());
  ASSERT_TRUE(LookupDataCache(dir_, key_).ok());
  WriteFile(images_, ReadFile(images_) + "x");
  hit = LookupDataCache(dir_, key_);
  ASSERT_EQ(hit.status().code(), absl::StatusCode::kNotFound) << hit.status();
  EXPECT_TRUE(Contains(hit.status(), images_ + " changed")) << hit.status();

  // Storing again re-derives the entry from the new contents.
  ASSERT_TRUE(StoreDataCache(dir_, key_, arrays_).ok());
  EXPECT_TRUE(LookupDataCache(dir_, key_).ok());
}

TEST_F(DataCacheTest, MissWhenPreprocessingOrSourcesDiffer) {
  const std::string path = StoreAndPath();
  CacheKey other = key_;
  other.preprocessing += " ";
  ExpectMiss(other, "other preprocessing");
  CacheKey swapped{key_.preprocessing, {labels_, images_}};
  ExpectMiss(swapped, "sources in another order");
  CacheKey fewer{key_.preprocessing, {images_}};
  ExpectMiss(fewer, "fewer sources");

  // Were two keys' file names to collide, the full comparison still tells
  // them apart: put key_'s file under `other`'s name.
  ASSERT_TRUE(StoreDataCache(dir_, other, arrays_).ok());
  auto other_hit = LookupDataCache(dir_, other);
  ASSERT_TRUE(other_hit.ok()) << other_hit.status();
  const std::string other_path = (*other_hit)->path();
  other_hit = absl::NotFoundError("released");
  ASSERT_NE(other_path, path);
  WriteFile(other_path, ReadFile(path));
  auto hit = LookupDataCache(dir_, other);
  ASSERT_EQ(hit.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(hit.status(), "other preprocessing")) << hit.status();
}

TEST_F(DataCacheTest, MissWhenTruncated) {
  const std::string path = StoreAndPath();
  const std::string whole = ReadFile(path);
  const size_t meta = U64At(whole, 24);
  ASSERT_GT(meta, 40u);
  ASSERT_LT(meta, whole.size());
  for (size_t len :
       {size_t{0}, size_t{1}, size_t{20}, size_t{39}, size_t{40}, meta / 2,
        meta, (meta + whole.size()) / 2, whole.size() - 1}) {
    WriteFile(path, whole.substr(0, len));
    ExpectMiss(key_, "truncated to " + std::to_string(len));
  }
  // Grown is as wrong as shrunk.
  WriteFile(path, whole + std::string(64, '\0'));
  ExpectMiss(key_, "grown");
  WriteFile(path, whole);
  EXPECT_TRUE(LookupDataCache(dir_, key_).ok());
}

TEST_F(DataCacheTest, MissWhenHeaderIsGarbage) {
  const std::string path = StoreAndPath();
  const std::string whole = ReadFile(path);
  const size_t meta = U64At(whole, 24);
  // Every single corrupted byte of the header and metadata is caught.
  for (size_t i = 0; i < meta; ++i) {
    std::string bad = whole;
    bad[i] = static_cast<char>(bad[i] ^ 0x5A);
    WriteFile(path, bad);
    ExpectMiss(key_, "byte " + std::to_string(i) + " corrupted");
  }
  // Garbage over the whole header, and files of nothing but garbage.
  std::string bad = whole;
  for (size_t i = 0; i < meta; ++i) bad[i] = static_cast<char>(i * 37 + 11);
  WriteFile(path, bad);
  ExpectMiss(key_, "garbage header");
  uint64_t seed = 42;
  for (size_t len : {size_t{8}, size_t{41}, size_t{4096}, whole.size()}) {
    std::string junk(len, '\0');
    for (char& c : junk) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      c = static_cast<char>(seed >> 56);
    }
    std::memcpy(junk.data(), "LRTCACHE", 8);
    WriteFile(path, junk);
    ExpectMiss(key_, "junk of " + std::to_string(len));
  }
  ASSERT_TRUE(StoreDataCache(dir_, key_, arrays_).ok());
  EXPECT_TRUE(LookupDataCache(dir_, key_).ok());
}

TEST_F(DataCacheTest, MissingSourceNamesTheFile) {
  const std::string missing = root_ + "/no-such-images.gz";
  CacheKey key{"v1", {missing}};
  absl::Status st = StoreDataCache(dir_, key, arrays_);
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(st, missing)) << st;
  auto hit = LookupDataCache(dir_, key);
  EXPECT_EQ(hit.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(hit.status(), missing)) << hit.status();

  // A source removed after the store: the lookup names it too.
  StoreAndPath();
  ASSERT_EQ(std::remove(labels_.c_str()), 0);
  hit = LookupDataCache(dir_, key_);
  EXPECT_EQ(hit.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(hit.status(), labels_)) << hit.status();
}

TEST_F(DataCacheTest, StoreRejectsInconsistentArrays) {
  std::vector<CacheArray> bad = arrays_;
  bad[0].bytes -= 4;
  absl::Status st = StoreDataCache(dir_, key_, bad);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(st, "cache array x")) << st;
  bad = arrays_;
  bad[1].name = "x";
  EXPECT_EQ(StoreDataCache(dir_, key_, bad).code(),
            absl::StatusCode::kInvalidArgument);
  bad = arrays_;
  bad[2].shape = {-3, -4};
  EXPECT_EQ(StoreDataCache(dir_, key_, bad).code(),
            absl::StatusCode::kInvalidArgument);
  bad = arrays_;
  bad[2].dtype = static_cast<CacheDType>(99);
  EXPECT_EQ(StoreDataCache(dir_, key_, bad).code(),
            absl::StatusCode::kInvalidArgument);
  // A directory that cannot be created: the error names it.
  WriteFile(root_ + "/plain-file", "x");
  st = StoreDataCache(root_ + "/plain-file/sub", key_, arrays_);
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(Contains(st, root_ + "/plain-file")) << st;
}

// Writers racing on one key and a reader looking it up meanwhile: every hit
// is one writer's arrays, whole.
TEST_F(DataCacheTest, ConcurrentStoresAreAtomic) {
  constexpr int kWriters = 4;
  constexpr int kRounds = 15;
  constexpr size_t kN = 1 << 16;
  std::atomic<int> writers_done{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      std::vector<float> x(kN, static_cast<float>(w));
      std::vector<int64_t> y(kN / 2, w);
      const std::vector<CacheArray> arrays = {
          {"x", CacheDType::kFloat32, {int64_t{kN}}, x.data(), kN * 4},
          {"y", CacheDType::kInt64, {int64_t{kN / 2}}, y.data(), kN * 4},
      };
      for (int r = 0; r < kRounds; ++r) {
        absl::Status st = StoreDataCache(dir_, key_, arrays);
        EXPECT_TRUE(st.ok()) << st;
      }
      ++writers_done;
    });
  }
  // Fails on a torn entry, or one mixing two writers' arrays.
  auto check = [&](const CacheEntry& e) -> testing::AssertionResult {
    const CacheArray* x = e.Find("x");
    const CacheArray* y = e.Find("y");
    if (x == nullptr || y == nullptr) {
      return testing::AssertionFailure() << "an array is missing";
    }
    const float* xs = static_cast<const float*>(x->data);
    const int64_t* ys = static_cast<const int64_t*>(y->data);
    const float w = xs[0];
    for (size_t i = 0; i < kN; i += 97) {
      if (xs[i] != w) return testing::AssertionFailure() << "x torn at " << i;
    }
    for (size_t i = 0; i < kN / 2; i += 97) {
      if (ys[i] != static_cast<int64_t>(w)) {
        return testing::AssertionFailure() << "y not from writer " << w;
      }
    }
    return testing::AssertionSuccess();
  };
  int hits = 0;
  bool ok = true;
  while (ok && (writers_done.load() < kWriters || hits == 0)) {
    auto hit = LookupDataCache(dir_, key_);
    if (hit.ok()) {
      ++hits;
      testing::AssertionResult r = check(**hit);
      EXPECT_TRUE(r);
      ok = r;
    } else {
      EXPECT_TRUE(Contains(hit.status(), "no cache entry")) << hit.status();
      ok = Contains(hit.status(), "no cache entry");
    }
  }
  for (std::thread& t : threads) t.join();
  EXPECT_GT(hits, 0);
  int files = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir_)) {
    EXPECT_EQ(f.path().extension(), ".lrtcache") << f.path();
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST(DataCacheHashTest, SensitiveToEveryBitAndLength) {
  std::string buf(100, '\0');
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<char>(i * 7);
  std::set<uint64_t> seen;
  for (size_t n = 0; n <= buf.size(); ++n) {
    EXPECT_TRUE(seen.insert(HashCacheBytes(buf.data(), n)).second) << n;
  }
  const uint64_t base = HashCacheBytes(buf.data(), buf.size());
  EXPECT_EQ(HashCacheBytes(buf.data(), buf.size()), base);
  for (size_t bit = 0; bit < buf.size() * 8; ++bit) {
    std::string b = buf;
    b[bit / 8] = static_cast<char>(b[bit / 8] ^ (1 << (bit % 8)));
    EXPECT_TRUE(seen.insert(HashCacheBytes(b.data(), b.size())).second)
        << "bit " << bit;
  }
  // Zeros of different lengths differ too.
  const std::string zeros(64, '\0');
  EXPECT_NE(HashCacheBytes(zeros.data(), 32), HashCacheBytes(zeros.data(), 64));
}

TEST(DataCacheHashTest, FileHashMatchesBytesAcrossChunksAndMeasuresSpeed) {
  std::string tmpl = ::testing::TempDir() + "/data_cache_hash_XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  const std::string path = tmpl + "/big.bin";
  // 3 MiB + 13 bytes: whole 1 MiB chunks and a ragged tail. Then 64 MiB,
  // about twice Fashion-MNIST's gzipped files, to time the hash.
  for (size_t size : {(size_t{3} << 20) + 13, size_t{64} << 20}) {
    std::string data(size, '\0');
    uint64_t s = size;
    for (size_t i = 0; i + 8 <= size; i += 8) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      std::memcpy(&data[i], &s, 8);
    }
    WriteFile(path, data);
    absl::StatusOr<FileDigest> d = HashCacheFile(path);
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(d->size, size);
    EXPECT_EQ(d->hash, HashCacheBytes(data.data(), data.size()));

    const auto t0 = std::chrono::steady_clock::now();
    const uint64_t h = HashCacheBytes(data.data(), data.size());
    const auto t1 = std::chrono::steady_clock::now();
    d = HashCacheFile(path);
    const auto t2 = std::chrono::steady_clock::now();
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->hash, h);
    const double mem_s = std::chrono::duration<double>(t1 - t0).count();
    const double file_s = std::chrono::duration<double>(t2 - t1).count();
    std::cout << "[ hash     ] " << size << " bytes: in memory "
              << size / mem_s / 1e9 << " GB/s, from the page cache "
              << size / file_s / 1e9 << " GB/s (" << file_s * 1e3 << " ms)\n";
  }
  std::filesystem::remove_all(tmpl);
}

// Sets or unsets environment variables for a scope, restoring them after.
class ScopedEnv {
 public:
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second) {
        ::setenv(it->first.c_str(), it->second->c_str(), 1);
      } else {
        ::unsetenv(it->first.c_str());
      }
    }
  }
  void Set(const std::string& name, const char* value) {
    const char* old = std::getenv(name.c_str());
    saved_.emplace_back(name,
                        old ? std::optional<std::string>(old) : std::nullopt);
    if (value != nullptr) {
      ::setenv(name.c_str(), value, 1);
    } else {
      ::unsetenv(name.c_str());
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

TEST(DataCacheDirTest, HonoursTheEnvironmentInOrder) {
  ScopedEnv env;
  env.Set("LRTUNE_CACHE_DIR", "/tmp/explicit");
  env.Set("XDG_CACHE_HOME", "/xdg");
  env.Set("HOME", "/home/u");
  EXPECT_EQ(DataCacheDir(), "/tmp/explicit");
  env.Set("LRTUNE_CACHE_DIR", "off");
  EXPECT_EQ(DataCacheDir(), "");
  env.Set("LRTUNE_CACHE_DIR", "0");
  EXPECT_EQ(DataCacheDir(), "");
  env.Set("LRTUNE_CACHE_DIR", "");
  EXPECT_EQ(DataCacheDir(), "/xdg/lrtune");
  env.Set("LRTUNE_CACHE_DIR", nullptr);
  EXPECT_EQ(DataCacheDir(), "/xdg/lrtune");
  env.Set("XDG_CACHE_HOME", "relative/ignored");
  EXPECT_EQ(DataCacheDir(), "/home/u/.cache/lrtune");
  env.Set("XDG_CACHE_HOME", nullptr);
  EXPECT_EQ(DataCacheDir(), "/home/u/.cache/lrtune");
  env.Set("HOME", nullptr);
  EXPECT_EQ(DataCacheDir(), "");
}

}  // namespace
}  // namespace lrtune::engine
