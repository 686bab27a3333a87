// CheckRelativePath (what keeps pull inside its destination whatever the object keys are)
// and Download of local files: byte-exact, nested directories, progress, and no file left
// behind under either name when a download fails. The S3 side runs in
// s3_integration_test.cc and tests/stores/test_python_s3.py against a server.
#include "pipeline/download.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "safetensors_writer.h"

namespace tensorstream {
namespace {

namespace fs = std::filesystem;

TEST(CheckRelativePath, AcceptsPlainAndNestedPaths) {
  for (const char* ok : {"a.bin", "sub/deeper/model.safetensors", "..hidden", "a..b/c", ".config",
                         "x/.../y", "ünï code+plus=&.bin"}) {
    EXPECT_TRUE(CheckRelativePath(ok).ok()) << ok;
  }
}

TEST(CheckRelativePath, RefusesPathsThatLeaveTheDestination) {
  using std::string_literals::operator""s;
  for (const std::string& bad :
       {""s, "/etc/passwd"s, ".."s, "../x"s, "a/../../x"s, "a/.."s, "./a"s, "a/./b"s, "a//b"s,
        "a/"s, "//a"s, "a\\..\\b"s, "C:\\x"s, "a\0b"s}) {
    const Status status = CheckRelativePath(bad);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(status.message().find("refusing to write"), std::string::npos) << bad;
  }
}

class DownloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(temp_.path());
    fs::create_directories(dir_ / "src");
    fs::create_directories(dir_ / "dst");
  }

  // Writes `n` seeded random bytes to src/`name` and returns them.
  std::string WriteSource(const std::string& name, size_t n) {
    std::mt19937_64 random(n);
    std::string data(n, '\0');
    for (char& c : data) c = static_cast<char>(random());
    std::ofstream(dir_ / "src" / name, std::ios::binary) << data;
    return data;
  }
  static std::string ReadAll(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  // Every file below dst/, as paths relative to it.
  std::vector<std::string> DstFiles() const {
    std::vector<std::string> files;
    for (const auto& entry : fs::recursive_directory_iterator(dir_ / "dst")) {
      if (entry.is_regular_file()) files.push_back(fs::relative(entry.path(), dir_ / "dst"));
    }
    std::sort(files.begin(), files.end());
    return files;
  }
  StreamOptions Options(uint64_t chunk_bytes) const {
    StreamOptions options;
    options.concurrency = 4;
    options.chunk_bytes = chunk_bytes;
    return options;
  }

  tensorstream::testing::TempDir temp_{"download"};
  fs::path dir_;
};

TEST_F(DownloadTest, CopiesBytesExactlyIntoNestedDirectories) {
  // Several chunks plus a partial one, read by 4 threads, under a memory limit of 2 chunks.
  const std::string data = WriteSource("model.bin", 5 * 65536 + 123);
  StreamOptions options = Options(65536);
  options.memory_limit = 2 * 65536;
  std::vector<uint64_t> progress;
  auto written =
      Download((dir_ / "src" / "model.bin").string(), (dir_ / "dst").string(), "a/b/c/model.bin",
               options, [&](uint64_t done) { progress.push_back(done); });
  ASSERT_TRUE(written.ok()) << written.status().message();
  EXPECT_EQ(*written, data.size());
  EXPECT_EQ(ReadAll(dir_ / "dst" / "a/b/c/model.bin"), data);
  EXPECT_EQ(DstFiles(), (std::vector<std::string>{"a/b/c/model.bin"}));
  ASSERT_EQ(progress.size(), 6u);  // one report per chunk, increasing, ending at the size
  EXPECT_TRUE(std::is_sorted(progress.begin(), progress.end()));
  EXPECT_EQ(progress.back(), data.size());
}

TEST_F(DownloadTest, ConcurrentDownloadsOfOneObjectIntoOneDirectory) {
  // Each download writes a partial file of its own: neither truncates the other's, and
  // whichever renames last leaves exactly the object's bytes.
  const std::string data = WriteSource("model.bin", 3 << 20);
  std::vector<std::thread> pulls;
  std::vector<Status> results(4);
  for (size_t i = 0; i < results.size(); ++i) {
    pulls.emplace_back([&, i] {
      results[i] = Download((dir_ / "src" / "model.bin").string(), (dir_ / "dst").string(),
                            "model.bin", Options(65536), nullptr)
                       .status();
    });
  }
  for (std::thread& t : pulls) t.join();
  for (const Status& s : results) EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(ReadAll(dir_ / "dst" / "model.bin"), data);
  EXPECT_EQ(DstFiles(), (std::vector<std::string>{"model.bin"}));
}

TEST_F(DownloadTest, EmptyFileAndOverwrite) {
  WriteSource("empty.bin", 0);
  std::ofstream(dir_ / "dst" / "empty.bin") << "stale contents";
  auto written = Download((dir_ / "src" / "empty.bin").string(), (dir_ / "dst").string(),
                          "empty.bin", Options(0), nullptr);
  ASSERT_TRUE(written.ok()) << written.status().message();
  EXPECT_EQ(*written, 0u);
  EXPECT_EQ(fs::file_size(dir_ / "dst" / "empty.bin"), 0u);
}

TEST_F(DownloadTest, RefusesUnsafeRelativePathBeforeWritingAnything) {
  WriteSource("x.bin", 100);
  for (const char* bad : {"../x.bin", "sub/../../x.bin", "/tmp/x.bin"}) {
    auto written = Download((dir_ / "src" / "x.bin").string(), (dir_ / "dst").string(), bad,
                            Options(0), nullptr);
    EXPECT_EQ(written.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(DstFiles().empty());
  EXPECT_FALSE(fs::exists(dir_ / "x.bin"));
  EXPECT_FALSE(fs::exists(dir_ / "dst" / "sub"));
}

TEST_F(DownloadTest, MissingSourceLeavesNoFile) {
  auto written = Download((dir_ / "src" / "nope.bin").string(), (dir_ / "dst").string(), "nope.bin",
                          Options(0), nullptr);
  EXPECT_EQ(written.status().code(), StatusCode::kNotFound);
  EXPECT_NE(written.status().message().find("nope.bin"), std::string::npos);
  EXPECT_TRUE(DstFiles().empty());
}

TEST_F(DownloadTest, FailureAfterWritingRemovesThePartialFile) {
  // Every byte is read and written, then the rename fails (a directory holds the final
  // name): neither the final name nor the temporary file may remain as a file.
  WriteSource("model.bin", 3 * 4096);
  fs::create_directories(dir_ / "dst" / "model.bin" / "occupied");
  auto written = Download((dir_ / "src" / "model.bin").string(), (dir_ / "dst").string(),
                          "model.bin", Options(4096), nullptr);
  EXPECT_FALSE(written.ok());
  EXPECT_NE(written.status().message().find("model.bin"), std::string::npos);
  EXPECT_TRUE(DstFiles().empty());
}

TEST_F(DownloadTest, MemoryLimitBelowAChunkFailsWithoutAFile) {
  WriteSource("model.bin", 4 * 65536);
  StreamOptions options = Options(65536);
  options.memory_limit = 1000;
  auto written = Download((dir_ / "src" / "model.bin").string(), (dir_ / "dst").string(),
                          "model.bin", options, nullptr);
  EXPECT_EQ(written.status().code(), StatusCode::kMemoryLimit);
  EXPECT_TRUE(DstFiles().empty());
}

}  // namespace
}  // namespace tensorstream
