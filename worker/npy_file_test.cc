// .npy headers as NumPy writes them (the literals below are np.save's own
// bytes, NumPy 1.24), the headers refused, and files mapped read-only.
#include "worker/npy_file.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lrtune::engine {
namespace {

using ::testing::HasSubstr;

// A header dict padded as NumPy pads it: magic, version, length, the dict,
// spaces and '\n' up to a multiple of `align` bytes.
std::string Npy(const std::string& dict, int major = 1, size_t align = 64) {
  const size_t len_bytes = major == 1 ? 2 : 4;
  const size_t fixed = 8 + len_bytes;
  std::string header = dict;
  while ((fixed + header.size() + 1) % align != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  for (size_t i = 0; i < len_bytes; ++i) {
    out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  }
  return out + header;
}

TEST(NpyHeader, ReadsNumpysOwnBytes) {
  // np.save(f, np.arange(6, dtype=np.float32).reshape(2, 3))
  const std::string f32 =
      std::string("\x93NUMPY\x01\x00v\x00", 10) +
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" +
      std::string(58, ' ') + "\n";
  ASSERT_EQ(f32.size(), 128u);
  absl::StatusOr<NpyHeader> h = ParseNpyHeader(f32);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->major_version, 1);
  EXPECT_EQ(h->descr, "<f4");
  EXPECT_EQ(h->dtype, NpyDType::kFloat32);
  EXPECT_EQ(h->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(h->data_offset, 128u);
  EXPECT_EQ(h->data_bytes, 24u);

  // np.save(f, np.zeros((0,), np.int32)): an empty array.
  const std::string i32 =
      std::string("\x93NUMPY\x01\x00v\x00", 10) +
      "{'descr': '<i4', 'fortran_order': False, 'shape': (0,), }" +
      std::string(60, ' ') + "\n";
  h = ParseNpyHeader(i32);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->dtype, NpyDType::kInt32);
  EXPECT_EQ(h->shape, std::vector<int64_t>{0});
  EXPECT_EQ(h->data_bytes, 0u);
}

TEST(NpyHeader, ReadsOtherWritersSpellings) {
  // Version 2.0 (a uint32 length), as np.lib.format.write_array writes it.
  absl::StatusOr<NpyHeader> h = ParseNpyHeader(
      Npy("{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }", 2));
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->major_version, 2);
  EXPECT_EQ(h->data_offset, 128u);
  EXPECT_EQ(h->data_bytes, 40u);
  // Python 2's longs, double quotes, no trailing comma, NumPy < 1.14's
  // 16-byte alignment, a scalar's ().
  h = ParseNpyHeader(
      Npy("{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2L, 3L)}",
          1, 16));
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(h->data_offset % 16, 0u);
  h = ParseNpyHeader(
      Npy("{'shape': (), 'fortran_order': False, 'descr': '<f4'}"));
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_TRUE(h->shape.empty());
  EXPECT_EQ(h->data_bytes, 4u);
}

TEST(NpyHeader, RefusesWhatItCannotReadInPlace) {
  const std::string ok_tail = "'fortran_order': False, 'shape': (2, 3), }";
  struct Case {
    std::string bytes;
    const char* message;
  };
  std::string v4 = Npy("{'descr': '<f4', " + ok_tail);
  v4[6] = 4;
  std::string long_header = "\x93NUMPY\x02";
  long_header += std::string("\x00\xff\xff\xff\xff", 5);
  const Case cases[] = {
      {"", "not a .npy file"},
      {"PK\x03\x04 a zip", "not a .npy file"},
      {v4, "version 4.0 is not 1.0, 2.0 or 3.0"},
      {Npy("{'descr': '<f4', " + ok_tail).substr(0, 40), "truncated"},
      {long_header, "over the limit"},
      {Npy("{'descr': '>f4', " + ok_tail),
       "dtype '>f4' is not supported: use float32 ('<f4')"},
      {Npy("{'descr': '<f8', " + ok_tail), "dtype '<f8' is not supported"},
      {Npy("{'descr': [('a', '<f4')], " + ok_tail),
       "structured dtypes are not supported"},
      {Npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }"),
       "Fortran order"},
      {Npy("{'descr': '<f4', 'fortran_order': False, }"), "lacks one of"},
      {Npy("{'descr': '<f4', 'extra': 1, " + ok_tail), "has a value"},
      {Npy("{'descr': '<f4', 'more': '', " + ok_tail), "unknown key 'more'"},
      {Npy("{'descr': '<f4', 'descr': '<f4', " + ok_tail), "repeats"},
      {Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }"),
       "non-negative integers"},
      {Npy("{'descr': '<f4', 'fortran_order': False, 'shape': "
           "(4611686018427387904, 4), }"),
       "overflows"},
      {Npy("{'descr': '<f4', 'fortran_order': False, 'shape': "
           "(99999999999999999999,), }"),
       "over 2^63"},
      {Npy("{'descr': '<f4', " + ok_tail + " x"), "not padding"},
      {Npy("{'descr': '<f4\\n', " + ok_tail), "escape or control byte"},
      // Data at byte 20: fine for float32, not for int64.
      {Npy("{'descr': '<i8', 'fortran_order': False, 'shape': (2,)}", 1, 4),
       "not a multiple of its 8-byte elements"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<NpyHeader> h = ParseNpyHeader(c.bytes);
    EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument)
        << c.message;
    EXPECT_THAT(h.status().message(), HasSubstr(c.message));
  }
}

class NpyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("lrtune_npy_file_test_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  std::filesystem::path dir_;
};

TEST_F(NpyFileTest, MapsTheDataInPlace) {
  std::string bytes =
      Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }");
  const float values[6] = {0.5f, 1, 2, 3, 4, -7.25f};
  bytes.append(reinterpret_cast<const char*>(values), sizeof(values));
  const std::string path = Write("x.npy", bytes);
  absl::StatusOr<std::shared_ptr<const MappedNpy>> x = MappedNpy::Open(path);
  ASSERT_TRUE(x.ok()) << x.status();
  EXPECT_EQ((*x)->shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ((*x)->dtype(), NpyDType::kFloat32);
  EXPECT_EQ(reinterpret_cast<uintptr_t>((*x)->data()) % 64, 0u);
  EXPECT_EQ(std::memcmp((*x)->data(), values, sizeof(values)), 0);
  // The mapping outlives the file's name: the data stays readable.
  std::filesystem::remove(path);
  EXPECT_EQ(static_cast<const float*>((*x)->data())[5], -7.25f);
}

TEST_F(NpyFileTest, RefusesFilesThatAreNotWholeArrays) {
  const std::string header =
      Npy("{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }");
  const std::string short_path =
      Write("short.npy", header + std::string(31, 0));
  absl::StatusOr<NpyHeader> h = ReadNpyHeader(short_path);
  EXPECT_EQ(h.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(h.status().message(), HasSubstr(short_path));
  EXPECT_THAT(h.status().message(),
              HasSubstr("need 32 data bytes after 128 header bytes, but "
                        "the file has 159 bytes"));
  const std::string long_path = Write("long.npy", header + std::string(40, 0));
  EXPECT_EQ(MappedNpy::Open(long_path).status().code(),
            absl::StatusCode::kDataLoss);
  const std::string bad_path = Write("bad.npy", "{'descr': '<f4'}");
  h = ReadNpyHeader(bad_path);
  EXPECT_THAT(h.status().message(), HasSubstr(bad_path + ": not a .npy file"));
  EXPECT_EQ(ReadNpyHeader((dir_ / "none.npy").string()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadNpyHeader(dir_.string()).status().code(),
            absl::StatusCode::kDataLoss);  // a directory
}

}  // namespace
}  // namespace lrtune::engine
