// The pipeline end to end on local files: byte-exact delivery, coalescing, selection,
// memory budget, cancellation, concurrency between streamers.
#include "pipeline/streamer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <thread>

#include "safetensors_writer.h"

namespace tensorstream {
namespace {

using testing::MakeTempDir;
using testing::MakeTensor;
using testing::SafetensorsImage;
using testing::TestTensor;
using testing::WriteFile;

StreamOptions Options(int concurrency, int64_t memory_limit, uint64_t chunk_bytes = 0,
                      bool direct = false) {
  StreamOptions o;
  o.concurrency = concurrency;
  o.memory_limit = memory_limit;
  o.chunk_bytes = chunk_bytes;
  o.storage.direct_io = direct;
  return o;
}

// "w7" for ("w", 7); built by appending, which also keeps GCC 12's -Wrestrict quiet.
std::string Indexed(const char* prefix, int index) {
  std::string name = prefix;
  name += std::to_string(index);
  return name;
}

std::string WriteModel(const std::string& tag, const std::vector<TestTensor>& tensors) {
  const std::string path = MakeTempDir(tag) + "/model.safetensors";
  WriteFile(path, SafetensorsImage(tensors));
  return path;
}

// Streams every file and returns name → bytes; fails the test on any error.
std::map<std::string, std::string> StreamAll(Streamer& streamer) {
  std::map<std::string, std::string> out;
  Status started = streamer.Start();
  EXPECT_TRUE(started.ok()) << started.message();
  if (!started.ok()) return out;
  while (true) {
    auto next = streamer.Next();
    EXPECT_TRUE(next.ok()) << next.status().message();
    if (!next.ok() || *next == nullptr) break;
    const DeliveredTensor& t = **next;
    const auto* bytes = static_cast<const char*>(t.data());
    EXPECT_TRUE(out.emplace(t.item().name, std::string(bytes, t.item().nbytes)).second)
        << "tensor delivered twice: " << t.item().name;
  }
  return out;
}

std::vector<TestTensor> MixedTensors() {
  std::vector<TestTensor> tensors;
  uint64_t seed = 11;
  for (const char* dtype : {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL",
                            "C64", "U16", "U32", "U64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4"}) {
    tensors.push_back(MakeTensor(std::string("t_") + dtype, dtype, {5, 6}, seed++));
  }
  tensors.push_back(MakeTensor("zero", "F32", {0}, seed++));
  tensors.push_back(MakeTensor("scalar", "F32", {}, seed++));
  tensors.push_back(MakeTensor("big", "F32", {3, 1000, 1001}, seed++));  // ~12 MB, many chunks
  tensors.push_back(MakeTensor("zero_tail", "BF16", {4, 0}, seed++));
  return tensors;
}

void ExpectSame(const std::vector<TestTensor>& tensors,
                const std::map<std::string, std::string>& got) {
  ASSERT_EQ(got.size(), tensors.size());
  for (const TestTensor& t : tensors) {
    auto it = got.find(t.name);
    ASSERT_NE(it, got.end()) << t.name;
    EXPECT_TRUE(it->second == t.bytes) << "bytes differ for " << t.name;
  }
}

TEST(Streamer, EveryDtypeByteExactAcrossSettings) {
  const auto tensors = MixedTensors();
  const std::string path = WriteModel("dtypes", tensors);
  struct Setting {
    int concurrency;
    int64_t limit;
    uint64_t chunk;
    bool direct;
  };
  for (const Setting s :
       {Setting{1, -1, 0, false}, Setting{8, -1, 4096, false}, Setting{4, 0, 65536, false},
        Setting{3, 20 << 20, 0, true}, Setting{16, 0, 1 << 20, true}}) {
    SCOPED_TRACE("concurrency " + std::to_string(s.concurrency) + " limit " +
                 std::to_string(s.limit) + " chunk " + std::to_string(s.chunk) + " direct " +
                 std::to_string(s.direct));
    Streamer streamer(Options(s.concurrency, s.limit, s.chunk, s.direct));
    ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
    ExpectSame(tensors, StreamAll(streamer));
  }
}

TEST(Streamer, HundredThousandTinyTensorsAreCoalesced) {
  std::vector<TestTensor> tensors;
  for (int i = 0; i < 100000; ++i) {
    tensors.push_back(MakeTensor("layer." + std::to_string(i), "F16", {3 + i % 5}, i));
  }
  const std::string path = WriteModel("tiny", tensors);
  Streamer streamer(Options(4, -1));
  ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
  ExpectSame(tensors, StreamAll(streamer));
  // ~1 MiB of data in 2 MiB chunks: a handful of reads, not 100,000.
  EXPECT_LE(streamer.bytes_read(), 2u << 20);
}

TEST(Streamer, MemoryBudgetIsNeverExceeded) {
  std::vector<TestTensor> tensors;
  for (int i = 0; i < 40; ++i)
    tensors.push_back(MakeTensor(Indexed("w", i), "U8", {300000 + i * 1000}, i));
  const std::string path = WriteModel("budget", tensors);
  for (const int64_t limit : {int64_t{0}, int64_t{400000}, int64_t{1000000}}) {
    SCOPED_TRACE("limit " + std::to_string(limit));
    Streamer streamer(Options(8, limit, 65536));
    ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
    ExpectSame(tensors, StreamAll(streamer));
    const uint64_t effective = limit == 0 ? 339000 : static_cast<uint64_t>(limit);
    EXPECT_LE(streamer.peak_reserved_bytes(), effective);
    EXPECT_GE(streamer.peak_reserved_bytes(), 300000u);
  }
}

TEST(Streamer, UnlimitedMemoryReadsAhead) {
  std::vector<TestTensor> tensors;
  for (int i = 0; i < 8; ++i) tensors.push_back(MakeTensor(Indexed("w", i), "U8", {1 << 20}, i));
  const std::string path = WriteModel("ahead", tensors);
  Streamer streamer(Options(4, -1));
  ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
  ASSERT_TRUE(streamer.Start().ok());
  // Without consuming anything, every byte gets read: reading never waits for the consumer.
  for (int i = 0; i < 500 && streamer.bytes_read() < (8u << 20); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(streamer.bytes_read(), 8u << 20);
}

TEST(Streamer, KeptTensorsFreeTheBudgetSoReadingContinues) {
  std::vector<TestTensor> tensors;
  for (int i = 0; i < 6; ++i) tensors.push_back(MakeTensor(Indexed("w", i), "U8", {100000}, i));
  const std::string path = WriteModel("keep", tensors);
  Streamer streamer(Options(2, 0));
  ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
  ASSERT_TRUE(streamer.Start().ok());
  std::vector<std::unique_ptr<DeliveredTensor>> kept;
  while (true) {
    auto next = streamer.Next();
    ASSERT_TRUE(next.ok()) << next.status().message();
    if (*next == nullptr) break;
    (*next)->Keep();
    kept.push_back(std::move(next).value());
  }
  ASSERT_EQ(kept.size(), tensors.size());
  for (const auto& t : kept) {
    EXPECT_EQ(std::string(static_cast<const char*>(t->data()), t->item().nbytes),
              tensors[t->item().index].bytes);
  }
}

TEST(Streamer, MemoryLimitBelowLargestTensorFailsBeforeReading) {
  const std::string path = WriteModel(
      "limit", {MakeTensor("small", "U8", {10}, 1), MakeTensor("huge", "F32", {1000}, 2)});
  Streamer streamer(Options(2, 100));
  ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
  const Status status = streamer.Start();
  ASSERT_EQ(status.code(), StatusCode::kMemoryLimit);
  EXPECT_NE(status.message().find("'huge'"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find(path), std::string::npos) << status.message();
  EXPECT_EQ(streamer.bytes_read(), 0u);
  auto next = streamer.Next();  // reports the failure again rather than waiting forever
  EXPECT_EQ(next.status().code(), StatusCode::kMemoryLimit);
}

TEST(Streamer, SelectionReadsOnlyTheNamedTensors) {
  std::vector<TestTensor> tensors;
  for (int i = 0; i < 10; ++i) tensors.push_back(MakeTensor(Indexed("w", i), "U8", {1 << 20}, i));
  const std::string path = WriteModel("select", tensors);
  Streamer streamer(Options(4, -1));
  auto file = streamer.AddSafetensorsFile(path);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE(streamer.Select(*file, {"w7", "w2"}).ok());
  const auto got = StreamAll(streamer);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_TRUE(got.at("w2") == tensors[2].bytes);
  EXPECT_TRUE(got.at("w7") == tensors[7].bytes);
  EXPECT_EQ(streamer.bytes_read(), 2u << 20);

  Streamer unknown(Options(1, -1));
  ASSERT_TRUE(unknown.AddSafetensorsFile(path).ok());
  const Status status = unknown.Select(0, {"w1", "nope"});
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_NE(status.message().find("'nope'"), std::string::npos);
}

TEST(Streamer, RawRangesOfAnyFile) {
  const std::string dir = MakeTempDir("ranges");
  const std::string bytes = testing::RandomBytes(5000, 3);
  WriteFile(dir + "/blob.bin", bytes);
  Streamer streamer(Options(3, -1, 4096));
  // Out of order, overlapping, empty and repeated ranges: each delivered under its position.
  ASSERT_TRUE(
      streamer
          .AddRanges(dir + "/blob.bin", {4110, 100, 105, 200, 100, 0}, {890, 10, 4000, 0, 10, 5000})
          .ok());
  const auto got = StreamAll(streamer);
  ASSERT_EQ(got.size(), 6u);
  EXPECT_EQ(got.at("0"), bytes.substr(4110, 890));
  EXPECT_EQ(got.at("1"), bytes.substr(100, 10));
  EXPECT_EQ(got.at("2"), bytes.substr(105, 4000));
  EXPECT_EQ(got.at("3"), "");
  EXPECT_EQ(got.at("4"), bytes.substr(100, 10));
  EXPECT_EQ(got.at("5"), bytes);

  Streamer beyond(Options(1, -1));
  const auto status = beyond.AddRanges(dir + "/blob.bin", {4000}, {2000});
  EXPECT_EQ(status.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.status().message().find("blob.bin"), std::string::npos);
}

TEST(Streamer, SeveralFilesInOneStream) {
  const auto a =
      std::vector<TestTensor>{MakeTensor("a.x", "F32", {100}, 1), MakeTensor("a.y", "U8", {3}, 2)};
  const auto b = std::vector<TestTensor>{MakeTensor("b.x", "I64", {7, 7}, 3)};
  Streamer streamer(Options(4, 0));
  ASSERT_EQ(*streamer.AddSafetensorsFile(WriteModel("multi-a", a)), 0u);
  ASSERT_EQ(*streamer.AddSafetensorsFile(WriteModel("multi-b", b)), 1u);
  auto all = a;
  all.insert(all.end(), b.begin(), b.end());
  ExpectSame(all, StreamAll(streamer));
}

TEST(Streamer, DestroyMidStreamReturnsQuickly) {
  std::vector<TestTensor> tensors;
  for (int i = 0; i < 64; ++i) tensors.push_back(MakeTensor(Indexed("w", i), "U8", {1 << 20}, i));
  const std::string path = WriteModel("cancel", tensors);
  for (int round = 0; round < 5; ++round) {
    auto streamer = std::make_unique<Streamer>(Options(8, 4 << 20, 1 << 18));
    ASSERT_TRUE(streamer->AddSafetensorsFile(path).ok());
    ASSERT_TRUE(streamer->Start().ok());
    auto first = streamer->Next();  // hold a tensor across the destruction
    ASSERT_TRUE(first.ok() && *first != nullptr);
    const auto start = std::chrono::steady_clock::now();
    streamer.reset();
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
    EXPECT_EQ(std::string(static_cast<const char*>((*first)->data()), (*first)->item().nbytes),
              tensors[(*first)->item().index].bytes);
  }
}

TEST(Streamer, CancelEndsNextWithCancelled) {
  std::vector<TestTensor> tensors;
  for (int i = 0; i < 16; ++i) tensors.push_back(MakeTensor(Indexed("w", i), "U8", {1 << 20}, i));
  const std::string path = WriteModel("cancel2", tensors);
  Streamer streamer(Options(2, 1 << 20));
  ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
  ASSERT_TRUE(streamer.Start().ok());
  std::thread canceller([&] { streamer.Cancel(); });
  canceller.join();
  size_t delivered = 0;
  while (true) {
    auto next = streamer.Next();
    if (!next.ok()) {
      EXPECT_EQ(next.status().code(), StatusCode::kCancelled);
      break;
    }
    ASSERT_NE(*next, nullptr) << "stream ended normally after cancel";
    ++delivered;
  }
  EXPECT_LT(delivered, tensors.size());
}

TEST(Streamer, ManyStreamersAtOnce) {
  std::vector<TestTensor> tensors;
  for (int i = 0; i < 30; ++i)
    tensors.push_back(MakeTensor(Indexed("w", i), "BF16", {100 + i, 300}, i));
  const std::string path = WriteModel("many", tensors);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      Streamer streamer(Options(1 + t, t % 2 == 0 ? -1 : 0, 4096 << t));
      if (!streamer.AddSafetensorsFile(path).ok()) ++failures;
      const auto got = StreamAll(streamer);
      for (const TestTensor& tensor : tensors) {
        auto it = got.find(tensor.name);
        if (it == got.end() || it->second != tensor.bytes) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(Streamer, MappedTensorsAreCopyOnWriteAndOutliveTheStream) {
  const std::vector<TestTensor> tensors = {MakeTensor("a", "F32", {1000}, 1),
                                           MakeTensor("b", "U8", {3 << 20}, 2)};
  const std::string path = WriteModel("mapped", tensors);
  std::vector<std::unique_ptr<DeliveredTensor>> kept;
  {
    Streamer streamer(Options(2, -1));
    ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
    ASSERT_TRUE(streamer.Start().ok());
    while (true) {
      auto next = streamer.Next();
      ASSERT_TRUE(next.ok()) << next.status().message();
      if (*next == nullptr) break;
      kept.push_back(std::move(next).value());
    }
    EXPECT_EQ(streamer.peak_reserved_bytes(), 0u);  // views of the page cache, no buffers
  }
  ASSERT_EQ(kept.size(), 2u);
  for (auto& t : kept) {
    EXPECT_EQ(std::string(static_cast<const char*>(t->data()), t->item().nbytes),
              tensors[t->item().index].bytes);
    const_cast<char*>(static_cast<const char*>(t->data()))[0] ^= 0x5a;  // a caller's write
  }
  Streamer again(Options(1, -1));  // the file itself is unchanged
  ASSERT_TRUE(again.AddSafetensorsFile(path).ok());
  ExpectSame(tensors, StreamAll(again));
}

TEST(Streamer, CopyModeWithoutLimitWhenMappingIsOff) {
  const auto tensors = MixedTensors();
  const std::string path = WriteModel("nomap", tensors);
  StreamOptions options = Options(4, -1);
  options.map_files = false;
  Streamer streamer(options);
  ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
  ExpectSame(tensors, StreamAll(streamer));
  EXPECT_GT(streamer.peak_reserved_bytes(), 0u);
}

TEST(Streamer, MissingFileNamesThePath) {
  Streamer streamer(Options(1, -1));
  const auto status = streamer.AddSafetensorsFile("/nonexistent/dir/model.safetensors");
  EXPECT_EQ(status.status().code(), StatusCode::kNotFound);
  EXPECT_NE(status.status().message().find("/nonexistent/dir/model.safetensors"),
            std::string::npos);
}

TEST(Streamer, CancelAfterTheLastTensorStillEndsTheStream) {
  const std::string path = WriteModel("late-cancel", {MakeTensor("a", "U8", {10}, 1)});
  Streamer streamer(Options(1, -1));
  ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
  ASSERT_TRUE(streamer.Start().ok());
  auto first = streamer.Next();
  ASSERT_TRUE(first.ok() && *first != nullptr);
  streamer.Cancel();
  auto end = streamer.Next();
  ASSERT_TRUE(end.ok()) << end.status().message();
  EXPECT_EQ(*end, nullptr);
}

TEST(Streamer, EmptyStreamEndsAtOnce) {
  Streamer streamer(Options(1, -1));
  ASSERT_TRUE(streamer.Start().ok());
  auto next = streamer.Next();
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, nullptr);
}

}  // namespace
}  // namespace tensorstream
