// Local files at the edges: special files are refused without blocking, thousands of files
// stream under a low descriptor limit, a file replaced mid-stream is an error.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>

#include "pipeline/streamer.h"
#include "safetensors_writer.h"
#include "storage/source.h"

namespace tensorstream {
namespace {

using testing::MakeTensor;
using testing::SafetensorsImage;
using testing::TempDir;
using testing::WriteFile;

TEST(LocalSource, RefusesAFifoWithoutBlocking) {
  TempDir dir("fifo");
  const std::string fifo = dir / "pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Opening a FIFO for reading would wait for a writer; run it aside to fail, not hang.
  auto opened = std::async(std::launch::async, [&] { return OpenSource(fifo, {}).status(); });
  ASSERT_EQ(opened.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "open() of a FIFO blocked";
  const Status status = opened.get();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("is a FIFO, not a regular file"), std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find(fifo), std::string::npos);
}

TEST(LocalSource, RefusesDevicesAndDirectories) {
  for (const char* path : {"/dev/zero", "/dev/null"}) {
    const Status status = OpenSource(path, {}).status();
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << path;
    EXPECT_NE(status.message().find("character device"), std::string::npos) << status.message();
  }
  TempDir dir("dir");
  const Status status = OpenSource(dir.path(), {}).status();
  EXPECT_NE(status.message().find("is a directory"), std::string::npos) << status.message();
}

TEST(LocalSource, ThousandsOfFilesUnderALowDescriptorLimit) {
  // The descriptor cache sizes itself from the limit at first use: lower it first.
  rlimit limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
  limit.rlim_cur = std::min<rlim_t>(limit.rlim_max, 256);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &limit), 0);
  TempDir dir("many-files");
  const int files = 10000;
  Streamer streamer(StreamOptions{});
  for (int i = 0; i < files; ++i) {
    const std::string path =
        dir / std::string("shard-").append(std::to_string(i)).append(".safetensors");
    const std::string name = std::string("t").append(std::to_string(i));
    WriteFile(path, SafetensorsImage({MakeTensor(name, "I32", {3}, i)}));
    auto index = streamer.AddSafetensorsFile(path);
    ASSERT_TRUE(index.ok()) << "file " << i << ": " << index.status().message();
  }
  ASSERT_TRUE(streamer.Start().ok());
  int delivered = 0;
  while (true) {
    auto next = streamer.Next();
    ASSERT_TRUE(next.ok()) << next.status().message();
    if (*next == nullptr) break;
    const auto expected = MakeTensor("", "I32", {3}, (*next)->item().file_index).bytes;
    EXPECT_EQ(std::string(static_cast<const char*>((*next)->data()), 12), expected);
    ++delivered;
  }
  EXPECT_EQ(delivered, files);
}

TEST(LocalSource, AFileReplacedWhileItsDescriptorWasClosedIsAnError) {
  TempDir dir("replaced");
  const std::string path = dir / "victim.bin";
  WriteFile(path, std::string(100, 'a'));
  auto victim = OpenSource(path, {});
  ASSERT_TRUE(victim.ok());
  // More sources than the descriptor cache holds (at most 512) push the victim's out.
  std::vector<std::unique_ptr<Source>> others;
  for (int i = 0; i < 600; ++i) {
    WriteFile(dir / ("other" + std::to_string(i)), "x");
    others.push_back(std::move(OpenSource(dir / ("other" + std::to_string(i)), {})).value());
  }
  std::filesystem::remove(path);
  WriteFile(path, std::string(100, 'b'));  // same path and size, another file
  char buffer[100];
  const std::atomic<bool> cancelled{false};
  const Status status = (*victim)->ReadAt(0, 100, buffer, cancelled);
  EXPECT_EQ(status.code(), StatusCode::kIoError);
  EXPECT_NE(status.message().find("replaced"), std::string::npos) << status.message();
}

TEST(LocalSource, AFileThatShrinksWhileStreamingIsAnError) {
  TempDir dir("shrinks");
  const std::string path = dir / "m.safetensors";
  WriteFile(path, SafetensorsImage(
                      {MakeTensor("a", "U8", {1 << 16}, 1), MakeTensor("b", "U8", {1 << 16}, 2)}));
  StreamOptions options;
  options.map_files = false;  // private: read into buffers
  Streamer streamer(options);
  ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
  ASSERT_EQ(::truncate(path.c_str(), 1000), 0);  // cut after the header was read
  ASSERT_TRUE(streamer.Start().ok());
  Status status;
  while (status.ok()) {
    auto next = streamer.Next();
    if (!next.ok()) status = next.status();
    if (next.ok() && *next == nullptr) break;
  }
  EXPECT_EQ(status.code(), StatusCode::kIoError);
  EXPECT_NE(status.message().find("shrank"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find(path), std::string::npos) << status.message();
}

TEST(LocalSource, AColdFileReadIntoBuffersSwitchesToDirectIo) {
  TempDir dir("cold");
  const std::string path = dir / "cold.bin";
  const std::string data = testing::RandomBytes(80 << 20, 9);
  WriteFile(path, data);
  const int probe = ::open(path.c_str(), O_RDONLY | O_DIRECT);
  const bool direct_supported = probe >= 0;  // tmpfs and some overlays refuse O_DIRECT
  if (probe >= 0) ::close(probe);

  auto warm = OpenSource(path, {});  // just written: in the page cache
  ASSERT_TRUE(warm.ok());
  (*warm)->PreferDirectIfCold();
  EXPECT_EQ((*warm)->RequiredAlignment(), 1u);

  const int fd = ::open(path.c_str(), O_RDONLY);  // evict the file's pages
  ::fsync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  auto cold = OpenSource(path, {});
  ASSERT_TRUE(cold.ok());
  (*cold)->PreferDirectIfCold();
  EXPECT_EQ((*cold)->RequiredAlignment(), direct_supported ? 4096u : 1u);
  std::string got(1 << 20, '\0');
  const std::atomic<bool> never{false};
  ASSERT_TRUE(ReadUnaligned(**cold, 12345, got.size(), got.data(), never).ok());
  EXPECT_EQ(got, data.substr(12345, got.size()));
}

}  // namespace
}  // namespace tensorstream
