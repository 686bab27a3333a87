// The GPU path (pinned staging, async copies, events) against FakeCuda: ordering, slot
// wrap-around, destinations, errors mid-copy, cancellation, the memory limit, pinned
// staging kept between streams (PinnedCache), and the register strategy (windows of a
// read-only file mapping registered with the runtime, copied from directly).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <thread>

#include "fake_cuda.h"
#include "pipeline/streamer.h"
#include "safetensors_writer.h"

namespace tensorstream {
namespace {

using testing::FakeCuda;
using testing::MakeTempDir;
using testing::MakeTensor;
using testing::SafetensorsImage;
using testing::TestTensor;
using testing::WriteFile;

// Staging unless a test asks otherwise: the fixtures were just written, so they are in
// the page cache, and kAuto would register them.
StreamOptions DeviceOptions(std::shared_ptr<FakeCuda> cuda, int concurrency,
                            uint64_t chunk_bytes = 0, int64_t limit = -1, int device = 0,
                            GpuStrategy strategy = GpuStrategy::kStaging) {
  StreamOptions o;
  o.concurrency = concurrency;
  o.chunk_bytes = chunk_bytes;
  o.memory_limit = limit;
  o.device = device;
  o.cuda = std::move(cuda);
  o.gpu_strategy = strategy;
  return o;
}

std::vector<TestTensor> Tensors() {
  std::vector<TestTensor> tensors;
  uint64_t seed = 100;
  for (int i = 0; i < 200; ++i)
    tensors.push_back(MakeTensor("small." + std::to_string(i), "BF16", {7, i % 9}, seed++));
  for (int i = 0; i < 6; ++i)
    tensors.push_back(MakeTensor("large." + std::to_string(i), "F32", {300 + i, 1000}, seed++));
  tensors.push_back(MakeTensor("empty", "F16", {0}, seed++));
  return tensors;
}

std::string WriteModel(const std::vector<TestTensor>& tensors) {
  const std::string path = MakeTempDir("device") + "/model.safetensors";
  WriteFile(path, SafetensorsImage(tensors));
  return path;
}

// Streams everything (starting the stream unless `started`) and returns name → bytes read
// back from the (fake) device memory.
std::map<std::string, std::string> StreamToDevice(Streamer& streamer, bool started = false) {
  std::map<std::string, std::string> got;
  const Status start = started ? Status::Ok() : streamer.Start();
  EXPECT_TRUE(start.ok()) << start.message();
  if (!start.ok()) return got;
  while (true) {
    auto next = streamer.Next();
    EXPECT_TRUE(next.ok()) << next.status().message();
    if (!next.ok() || *next == nullptr) break;
    const Item& item = (*next)->item();
    got[item.name] = std::string(static_cast<const char*>((*next)->data()), item.nbytes);
  }
  return got;
}

// Takes every tensor of a started stream and keeps them all.
std::vector<std::unique_ptr<DeliveredTensor>> TakeAll(Streamer& streamer) {
  std::vector<std::unique_ptr<DeliveredTensor>> kept;
  while (true) {
    auto next = streamer.Next();
    EXPECT_TRUE(next.ok()) << next.status().message();
    if (!next.ok() || *next == nullptr) break;
    kept.push_back(std::move(*next));
  }
  return kept;
}

TEST(DeviceStream, ByteExactWithSlotWrapAroundAtManyChunkSizes) {
  const auto tensors = Tensors();
  const std::string path = WriteModel(tensors);
  for (const uint64_t chunk : {uint64_t{4096}, uint64_t{65536}, uint64_t{1} << 20}) {
    for (const int concurrency : {1, 3, 8}) {
      SCOPED_TRACE("chunk " + std::to_string(chunk) + " concurrency " +
                   std::to_string(concurrency));
      auto cuda = std::make_shared<FakeCuda>();
      {
        Streamer streamer(DeviceOptions(cuda, concurrency, chunk));
        ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
        const auto got = StreamToDevice(streamer);
        ASSERT_EQ(got.size(), tensors.size());
        for (const TestTensor& t : tensors) EXPECT_TRUE(got.at(t.name) == t.bytes) << t.name;
        EXPECT_EQ(cuda->unpinned_copies(), 0);
        EXPECT_LE(cuda->pinned_allocations(), 2 * concurrency);  // once per stream
      }
      EXPECT_EQ(cuda->live_pinned(), 0);
      EXPECT_EQ(cuda->live_streams(), 0);
      EXPECT_EQ(cuda->live_device(), 0);  // stream-allocated memory freed with the tensors
    }
  }
}

TEST(DeviceStream, WritesIntoCallerDestinations) {
  const auto tensors = Tensors();
  const std::string path = WriteModel(tensors);
  auto cuda = std::make_shared<FakeCuda>();
  Streamer streamer(DeviceOptions(cuda, 4, 65536));
  ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
  const auto& items = streamer.file(0).items;
  std::vector<std::string> destinations(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    destinations[i].assign(items[i].nbytes, '\0');
    ASSERT_TRUE(streamer.SetDestination(0, i, destinations[i].data()).ok());
  }
  size_t delivered = 0;
  ASSERT_TRUE(streamer.Start().ok());
  while (true) {
    auto next = streamer.Next();
    ASSERT_TRUE(next.ok()) << next.status().message();
    if (*next == nullptr) break;
    const Item& item = (*next)->item();
    if (item.nbytes > 0) {
      EXPECT_EQ((*next)->data(), destinations[item.index].data());
    }
    ++delivered;
  }
  EXPECT_EQ(delivered, tensors.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& expected = std::find_if(tensors.begin(), tensors.end(), [&](const TestTensor& t) {
      return t.name == items[i].name;
    });
    EXPECT_TRUE(destinations[i] == expected->bytes) << items[i].name;
  }
  EXPECT_EQ(cuda->live_device(), 0);  // nothing allocated by the stream
}

TEST(DeviceStream, CopyErrorMidStreamNamesTheFileAndTensor) {
  const auto tensors = Tensors();
  const std::string path = WriteModel(tensors);
  auto cuda = std::make_shared<FakeCuda>();
  cuda->FailCopy(40);
  Streamer streamer(DeviceOptions(cuda, 4, 4096));
  ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
  ASSERT_TRUE(streamer.Start().ok());
  Status error;
  for (size_t i = 0; i <= tensors.size() && error.ok(); ++i) {
    auto next = streamer.Next();
    if (!next.ok()) {
      error = next.status();
    } else {
      ASSERT_NE(*next, nullptr) << "stream ended without reporting the failed copy";
    }
  }
  EXPECT_EQ(error.code(), StatusCode::kUnavailable);
  EXPECT_NE(error.message().find("illegal memory access"), std::string::npos) << error.message();
  EXPECT_NE(error.message().find("model.safetensors"), std::string::npos) << error.message();
}

TEST(DeviceStream, CancelMidStreamFreesEverything) {
  const auto tensors = Tensors();
  const std::string path = WriteModel(tensors);
  for (const GpuStrategy strategy : {GpuStrategy::kStaging, GpuStrategy::kRegister}) {
    SCOPED_TRACE(GpuStrategyName(strategy));
    auto cuda = std::make_shared<FakeCuda>();
    {
      StreamOptions options = DeviceOptions(cuda, 4, 4096, -1, 0, strategy);
      options.gpu_window_bytes = 16384;
      Streamer streamer(options);
      ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
      ASSERT_TRUE(streamer.Start().ok());
      EXPECT_EQ(streamer.gpu_strategy(), strategy);
      auto first = streamer.Next();
      ASSERT_TRUE(first.ok());
      const auto start = std::chrono::steady_clock::now();
      streamer.Cancel();
      auto next = streamer.Next();
      while (next.ok() && *next != nullptr) next = streamer.Next();
      EXPECT_FALSE(next.ok());
      EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
    }
    EXPECT_EQ(cuda->live_pinned(), 0);
    EXPECT_EQ(cuda->live_streams(), 0);
    EXPECT_EQ(cuda->live_device(), 0);
    EXPECT_EQ(cuda->live_registrations(), 0);
    EXPECT_TRUE(cuda->violations().empty()) << cuda->violations().front();
  }
}

TEST(DeviceStream, NoDeviceFailsBeforeAnyRead) {
  const std::string path = WriteModel(Tensors());
  for (const auto& [devices, device] : {std::pair{0, 0}, std::pair{1, 3}}) {
    Streamer streamer(DeviceOptions(std::make_shared<FakeCuda>(devices), 2, 0, -1, device));
    ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
    const Status status = streamer.Start();
    EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.message();
    EXPECT_NE(status.message().find("CUDA device " + std::to_string(device)), std::string::npos);
    EXPECT_EQ(streamer.bytes_read(), 0u);
  }
}

TEST(DeviceStream, PinnedStagingStaysWithinTheMemoryLimit) {
  const auto tensors = Tensors();
  const std::string path = WriteModel(tensors);
  auto cuda = std::make_shared<FakeCuda>();
  Streamer streamer(DeviceOptions(cuda, 16, 2 << 20, 1 << 20));
  ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
  const auto got = StreamToDevice(streamer);
  EXPECT_EQ(got.size(), tensors.size());
  EXPECT_LE(streamer.peak_reserved_bytes(), 1u << 20);

  Streamer tiny(DeviceOptions(cuda, 2, 0, 1000));
  ASSERT_TRUE(tiny.AddSafetensorsFile(path).ok());
  EXPECT_EQ(tiny.Start().code(), StatusCode::kMemoryLimit);
}

TEST(DeviceStream, StreamAllocatedMemoryIsFreedWithEachTensor) {
  const auto tensors = Tensors();
  const std::string path = WriteModel(tensors);
  auto cuda = std::make_shared<FakeCuda>();
  Streamer streamer(DeviceOptions(cuda, 2, 65536));
  ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
  ASSERT_TRUE(streamer.Start().ok());
  std::vector<std::unique_ptr<DeliveredTensor>> kept = TakeAll(streamer);
  // Every read is over: releasing a tensor frees its device memory, and only its.
  for (auto& tensor : kept) {
    const int64_t before = cuda->live_device_bytes();
    const auto nbytes = static_cast<int64_t>(tensor->item().nbytes);
    tensor.reset();
    EXPECT_EQ(cuda->live_device_bytes(), before - nbytes);
  }
  EXPECT_EQ(cuda->live_device(), 0);
}

TEST(DeviceStream, FailureOfTheLastCopyNamesItsTensor) {
  const std::vector<TestTensor> tensors = {MakeTensor("only", "F32", {1000}, 1)};
  const std::string path = WriteModel(tensors);
  auto cuda = std::make_shared<FakeCuda>();
  cuda->FailCopy(1);
  Streamer streamer(DeviceOptions(cuda, 1));
  ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
  ASSERT_TRUE(streamer.Start().ok());
  auto next = streamer.Next();
  ASSERT_FALSE(next.ok());
  EXPECT_NE(next.status().message().find("tensor 'only'"), std::string::npos)
      << next.status().message();
  EXPECT_NE(next.status().message().find("model.safetensors"), std::string::npos);
}

TEST(DeviceStream, StartLeavesTheCallersCurrentDevice) {
  const std::string path = WriteModel(Tensors());
  auto cuda = std::make_shared<FakeCuda>(4);
  ASSERT_TRUE(cuda->SetDevice(1).ok());
  Streamer streamer(DeviceOptions(cuda, 2, 0, -1, /*device=*/3));
  ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
  ASSERT_TRUE(streamer.Start().ok());
  EXPECT_EQ(*cuda->GetDevice(), 1);
}

// `count` tensors of 1.2 MB each (F32, 300 x 1000).
std::vector<TestTensor> LargeTensors(int count) {
  std::vector<TestTensor> tensors;
  for (int i = 0; i < count; ++i) {
    tensors.push_back(MakeTensor("big." + std::to_string(i), "F32", {300, 1000}, 500 + i));
  }
  return tensors;
}
constexpr int64_t kLargeTensorBytes = 300 * 1000 * 4;

StreamOptions LimitedDeviceOptions(std::shared_ptr<FakeCuda> cuda, int64_t device_limit,
                                   GpuStrategy strategy = GpuStrategy::kStaging) {
  StreamOptions options = DeviceOptions(std::move(cuda), 4, 256 << 10, -1, 0, strategy);
  options.device_memory_limit = device_limit;
  options.gpu_window_bytes = 512 << 10;  // tensors cross windows
  return options;
}

TEST(DeviceStream, AModelLargerThanTheDeviceLimitStreamsWhileTheConsumerReleases) {
  const auto tensors = LargeTensors(20);  // 24 MB against a limit of 3 tensors
  const std::string path = WriteModel(tensors);
  for (const GpuStrategy strategy : {GpuStrategy::kStaging, GpuStrategy::kRegister}) {
    SCOPED_TRACE(GpuStrategyName(strategy));
    auto cuda = std::make_shared<FakeCuda>();
    const int64_t limit = 3 * kLargeTensorBytes;
    Streamer streamer(LimitedDeviceOptions(cuda, limit, strategy));
    ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
    ASSERT_TRUE(streamer.Start().ok());
    EXPECT_EQ(streamer.gpu_strategy(), strategy);
    size_t delivered = 0;
    while (true) {
      auto next = streamer.Next();
      ASSERT_TRUE(next.ok()) << next.status().message();
      if (*next == nullptr) break;
      const Item& item = (*next)->item();
      EXPECT_TRUE(std::string(static_cast<const char*>((*next)->data()), item.nbytes) ==
                  tensors[item.index].bytes)
          << item.name;
      ++delivered;  // and released: the tensor's device memory is freed here
    }
    EXPECT_EQ(delivered, tensors.size());
    // Never more than the limit ahead of the consumer, plus the one tensor it holds.
    EXPECT_LE(cuda->peak_device_bytes(), limit + kLargeTensorBytes);
    EXPECT_EQ(cuda->live_device_bytes(), 0);
    EXPECT_TRUE(cuda->violations().empty()) << cuda->violations().front();
  }
}

TEST(DeviceStream, SmallTensorsAreNotCoalescedBeyondTheDeviceLimit) {
  // 200 tensors of 16 KiB would make a few coalesced reads of 8 MiB chunks; each read
  // group's device memory is allocated at once, so the limit caps the groups too.
  std::vector<TestTensor> tensors;
  for (int i = 0; i < 200; ++i) {
    tensors.push_back(MakeTensor("small." + std::to_string(i), "F32", {64, 64}, 900 + i));
  }
  const std::string path = WriteModel(tensors);
  const int64_t limit = 64 << 10;
  for (const GpuStrategy strategy : {GpuStrategy::kStaging, GpuStrategy::kRegister}) {
    SCOPED_TRACE(GpuStrategyName(strategy));
    auto cuda = std::make_shared<FakeCuda>();
    StreamOptions options = DeviceOptions(cuda, 2, 8 << 20, -1, 0, strategy);
    options.device_memory_limit = limit;
    Streamer streamer(options);
    ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
    const auto got = StreamToDevice(streamer);
    ASSERT_EQ(got.size(), tensors.size());
    for (const TestTensor& t : tensors) EXPECT_EQ(got.at(t.name), t.bytes) << t.name;
    EXPECT_LE(cuda->peak_device_bytes(), limit + (16 << 10));
    EXPECT_EQ(cuda->live_device_bytes(), 0);
  }
}

TEST(DeviceStream, ReadersStopAtTheDeviceLimitUntilTheConsumerTakes) {
  const auto tensors = LargeTensors(10);
  const std::string path = WriteModel(tensors);
  auto cuda = std::make_shared<FakeCuda>();
  const int64_t limit = 2 * kLargeTensorBytes;
  Streamer streamer(LimitedDeviceOptions(cuda, limit));
  ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
  ASSERT_TRUE(streamer.Start().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // nobody takes anything
  EXPECT_GT(cuda->peak_device_bytes(), 0);
  EXPECT_LE(cuda->peak_device_bytes(), limit);  // not the whole model up front
  EXPECT_EQ(StreamToDevice(streamer, /*started=*/true).size(), tensors.size());
}

TEST(DeviceStream, AConsumerThatKeepsEveryTensorStillGetsThemAll) {
  // Delivered tensors are the consumer's: they no longer count against the limit.
  const auto tensors = LargeTensors(8);
  const std::string path = WriteModel(tensors);
  auto cuda = std::make_shared<FakeCuda>();
  Streamer streamer(LimitedDeviceOptions(cuda, 2 * kLargeTensorBytes));
  ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
  ASSERT_TRUE(streamer.Start().ok());
  std::vector<std::unique_ptr<DeliveredTensor>> kept = TakeAll(streamer);
  ASSERT_EQ(kept.size(), tensors.size());
  for (const auto& tensor : kept) {
    EXPECT_TRUE(std::string(static_cast<const char*>(tensor->data()), tensor->item().nbytes) ==
                tensors[tensor->item().index].bytes);
  }
  EXPECT_EQ(cuda->live_device_bytes(), 8 * kLargeTensorBytes);
  kept.clear();
  EXPECT_EQ(cuda->live_device_bytes(), 0);
}

TEST(DeviceStream, ADeviceLimitBelowTheLargestTensorIsRefusedAtStart) {
  const std::string path = WriteModel(LargeTensors(2));
  auto cuda = std::make_shared<FakeCuda>();
  Streamer streamer(LimitedDeviceOptions(cuda, kLargeTensorBytes - 1));
  ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
  const Status started = streamer.Start();
  EXPECT_EQ(started.code(), StatusCode::kMemoryLimit);
  EXPECT_NE(started.message().find("tensor 'big."), std::string::npos) << started.message();
  EXPECT_EQ(cuda->live_device(), 0);
}

TEST(DeviceStream, AThousandStreamsPinTheirStagingOnce) {
  const std::vector<TestTensor> tensors = {MakeTensor("a", "F32", {64, 64}, 1),
                                           MakeTensor("b", "BF16", {300}, 2),
                                           MakeTensor("c", "U8", {50000}, 3)};
  const std::string path = WriteModel(tensors);
  auto cuda = std::make_shared<FakeCuda>();
  {
    auto cache = std::make_shared<PinnedCache>(cuda, 64 << 20);
    int64_t first = 0;
    for (int i = 0; i < 1000; ++i) {
      StreamOptions options = DeviceOptions(cuda, 2, 16384);
      options.pinned_cache = cache;
      Streamer streamer(options);
      ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
      const auto got = StreamToDevice(streamer);
      ASSERT_EQ(got.size(), tensors.size());
      for (const TestTensor& t : tensors) ASSERT_TRUE(got.at(t.name) == t.bytes) << t.name;
      if (i == 0) first = cuda->pinned_allocations();
    }
    EXPECT_EQ(first, 2 * DeviceStaging::kSlots);   // two readers' slots, once
    EXPECT_EQ(cuda->pinned_allocations(), first);  // never again
    EXPECT_EQ(cuda->live_pinned(), first);         // kept, not leaked
    EXPECT_EQ(cache->kept_bytes(), uint64_t(first) * 16384);
    EXPECT_EQ(cuda->unpinned_copies(), 0);
  }
  EXPECT_EQ(cuda->live_pinned(), 0);  // freed with the cache
  EXPECT_EQ(cuda->live_streams(), 0);
  EXPECT_EQ(cuda->live_device(), 0);
}

TEST(DeviceStream, ConcurrentStreamsBorrowSeparateSlots) {
  const std::string path = WriteModel(Tensors());
  auto cuda = std::make_shared<FakeCuda>();
  auto cache = std::make_shared<PinnedCache>(cuda, 64 << 20);
  StreamOptions options = DeviceOptions(cuda, 3, 65536);
  options.pinned_cache = cache;
  {
    Streamer one(options), two(options);
    ASSERT_TRUE(one.AddSafetensorsFile(path).ok());
    ASSERT_TRUE(two.AddSafetensorsFile(path).ok());
    ASSERT_TRUE(one.Start().ok());
    ASSERT_TRUE(two.Start().ok());
    EXPECT_EQ(cuda->pinned_allocations(), 2 * 3 * DeviceStaging::kSlots);
    EXPECT_EQ(cache->kept_bytes(), 0u);  // all lent out
  }
  EXPECT_EQ(cuda->live_pinned(), 2 * 3 * DeviceStaging::kSlots);  // both sets kept
  Streamer three(options);
  ASSERT_TRUE(three.AddSafetensorsFile(path).ok());
  ASSERT_EQ(StreamToDevice(three).size(), Tensors().size());
  EXPECT_EQ(cuda->pinned_allocations(), 2 * 3 * DeviceStaging::kSlots);  // reused
}

TEST(PinnedCache, KeepsSlotsPerDeviceAndSizeUpToItsLimit) {
  auto cuda = std::make_shared<FakeCuda>(2);
  {
    PinnedCache cache(cuda, 3 * 4096 - 1);  // room for two 4096-byte slots, not three
    void* a = *cache.Acquire(0, 4096);
    void* b = *cache.Acquire(0, 4096);
    cache.Release(0, 4096, a);
    cache.Release(0, 4096, b);
    EXPECT_EQ(cache.kept_bytes(), 2u * 4096);
    void* other_device = *cache.Acquire(1, 4096);  // another device: a new slot
    EXPECT_EQ(cuda->pinned_allocations(), 3);
    void* larger = *cache.Acquire(0, 8192);  // another size: a new slot
    EXPECT_EQ(cuda->pinned_allocations(), 4);
    void* again = *cache.Acquire(0, 4096);  // the same device and size: a kept one
    EXPECT_TRUE(again == a || again == b);
    EXPECT_EQ(cuda->pinned_allocations(), 4);
    cache.Release(0, 8192, larger);  // 4096 + 8192 would pass the limit: freed
    EXPECT_EQ(cache.kept_bytes(), 4096u);
    EXPECT_EQ(cuda->live_pinned(), 3);
    cache.Release(1, 4096, other_device);  // kept
    cache.Release(0, 4096, again);         // a third would pass the limit: freed
    EXPECT_EQ(cache.kept_bytes(), 2u * 4096);
    EXPECT_EQ(cuda->live_pinned(), 2);
  }
  EXPECT_EQ(cuda->live_pinned(), 0);
}

TEST(PinnedCache, TheRuntimeCacheSettingIsChecked) {
  auto cuda = std::make_shared<FakeCuda>();
  ::setenv("TENSORSTREAM_PINNED_CACHE_BYTES", "lots", 1);
  auto bad = PinnedCache::ForRuntime(cuda);
  ::unsetenv("TENSORSTREAM_PINNED_CACHE_BYTES");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("TENSORSTREAM_PINNED_CACHE_BYTES"), std::string::npos);
  auto good = PinnedCache::ForRuntime(cuda);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*PinnedCache::ForRuntime(cuda), *good);  // one per runtime
}

TEST(DeviceStream, ParseDevice) {
  EXPECT_EQ(*ParseDevice("cpu"), -1);
  EXPECT_EQ(*ParseDevice("cuda"), 0);
  EXPECT_EQ(*ParseDevice("cuda:3"), 3);
  EXPECT_FALSE(ParseDevice("cuda:x").ok());
  EXPECT_FALSE(ParseDevice("gpu").ok());
}

// ---- The register strategy -------------------------------------------------------------

constexpr uint64_t kWindow = 64 << 10;  // small windows, so that tensors cross them

// Three files of tensors from a few bytes to several windows long, at offsets that fall
// anywhere relative to the window boundaries. Names are unique across the files.
std::vector<std::vector<TestTensor>> MultiFileTensors() {
  std::vector<std::vector<TestTensor>> files(3);
  uint64_t seed = 900;
  for (size_t f = 0; f < files.size(); ++f) {
    const std::string prefix = "f" + std::to_string(f) + ".";
    for (int i = 0; i < 40; ++i) {
      files[f].push_back(MakeTensor(prefix + "small." + std::to_string(i), "BF16",
                                    {13, 1 + (i * 7) % 50}, seed++));
    }
    for (int i = 0; i < 5; ++i) {  // 52 KB .. 208 KB: within, across and beyond windows
      files[f].push_back(
          MakeTensor(prefix + "large." + std::to_string(i), "F32", {13000 * (1 + i)}, seed++));
    }
    files[f].push_back(MakeTensor(prefix + "empty", "F16", {0}, seed++));
  }
  return files;
}

// Whether some tensor of the file crosses a window boundary (the fixture must have one).
bool SomeTensorCrossesAWindow(Streamer& streamer, size_t file) {
  const StreamFile& f = streamer.file(file);
  for (const Item& item : f.items) {
    if (item.nbytes > 0 && item.offset / kWindow != (item.offset + item.nbytes - 1) / kWindow) {
      return true;
    }
  }
  return false;
}

// How many mappings of `path` the process has (/proc/self/maps).
int MappingsOf(const std::string& path) {
  std::ifstream maps("/proc/self/maps");
  int count = 0;
  for (std::string line; std::getline(maps, line);) count += line.find(path) != std::string::npos;
  return count;
}

StreamOptions RegisterOptions(std::shared_ptr<FakeCuda> cuda, int concurrency,
                              uint64_t chunk_bytes = 0) {
  StreamOptions options =
      DeviceOptions(std::move(cuda), concurrency, chunk_bytes, -1, 0, GpuStrategy::kRegister);
  options.gpu_window_bytes = kWindow;
  return options;
}

void ExpectNothingLeft(const FakeCuda& cuda, const std::vector<std::string>& paths) {
  EXPECT_EQ(cuda.live_registrations(), 0);
  EXPECT_EQ(cuda.live_pinned(), 0);
  EXPECT_EQ(cuda.live_streams(), 0);
  EXPECT_EQ(cuda.live_device(), 0);
  for (const std::string& path : paths) EXPECT_EQ(MappingsOf(path), 0) << path;
  const auto violations = cuda.violations();
  EXPECT_TRUE(violations.empty()) << violations.front();
}

TEST(DeviceStream, BothStrategiesDeliverManyFilesByteExactAcrossWindowBoundaries) {
  const auto files = MultiFileTensors();
  const std::string dir = MakeTempDir("register");
  std::vector<std::string> paths;
  for (size_t f = 0; f < files.size(); ++f) {
    paths.push_back(dir + "/model-" + std::to_string(f) + ".safetensors");
    WriteFile(paths.back(), SafetensorsImage(files[f]));
  }
  for (const GpuStrategy strategy : {GpuStrategy::kStaging, GpuStrategy::kRegister}) {
    for (const uint64_t chunk : {uint64_t{4096}, kWindow, uint64_t{1} << 20}) {
      for (const int concurrency : {1, 3}) {
        SCOPED_TRACE(std::string(GpuStrategyName(strategy)) + " chunk " + std::to_string(chunk) +
                     " concurrency " + std::to_string(concurrency));
        auto cuda = std::make_shared<FakeCuda>();
        {
          StreamOptions options = RegisterOptions(cuda, concurrency, chunk);
          options.gpu_strategy = strategy;
          Streamer streamer(options);
          for (const std::string& path : paths) ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
          for (size_t f = 0; f < files.size(); ++f)
            ASSERT_TRUE(SomeTensorCrossesAWindow(streamer, f));
          const auto got = StreamToDevice(streamer);
          EXPECT_EQ(streamer.gpu_strategy(), strategy) << streamer.gpu_strategy_reason();
          size_t expected = 0;
          for (const auto& tensors : files) {
            expected += tensors.size();
            for (const TestTensor& t : tensors) EXPECT_TRUE(got.at(t.name) == t.bytes) << t.name;
          }
          EXPECT_EQ(got.size(), expected);
          EXPECT_EQ(cuda->unpinned_copies(), 0);
          if (strategy == GpuStrategy::kRegister) {
            EXPECT_EQ(cuda->pinned_allocations(), 0);  // nothing read into pinned slots
            // Every window of every file (the probe's registration is the one more).
            uint64_t windows = 0;
            for (size_t f = 0; f < files.size(); ++f) {
              windows += (streamer.file(f).source->Size() + kWindow - 1) / kWindow;
            }
            EXPECT_EQ(cuda->registrations(), static_cast<int64_t>(windows) + 1);
            EXPECT_LE(cuda->peak_registrations(),
                      static_cast<int64_t>(WindowRegistry::kMaxRegistered));
          } else {
            EXPECT_EQ(cuda->registrations(), 0);
          }
        }
        ExpectNothingLeft(*cuda, paths);
      }
    }
  }
}

TEST(DeviceStream, SelectedTensorsRegisterOnlyTheirWindows) {
  std::vector<TestTensor> tensors;
  for (int i = 0; i < 12; ++i)
    tensors.push_back(MakeTensor("t" + std::to_string(i), "F32", {20000}, 40 + i));  // 80 KB
  const std::string path = WriteModel(tensors);
  auto cuda = std::make_shared<FakeCuda>();
  {
    Streamer streamer(RegisterOptions(cuda, 2));
    ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
    ASSERT_TRUE(streamer.Select(0, {"t2", "t9"}).ok());
    const auto got = StreamToDevice(streamer);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_TRUE(got.at("t2") == tensors[2].bytes);
    EXPECT_TRUE(got.at("t9") == tensors[9].bytes);
    // Each 80 KB tensor spans two or three 64 KiB windows; the file has 15.
    EXPECT_GE(cuda->registrations(), 1 + 4);
    EXPECT_LE(cuda->registrations(), 1 + 6);
  }
  ExpectNothingLeft(*cuda, {path});
}

// Evicts `path` from the page cache; false when the filesystem keeps it (tmpfs).
bool Evict(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return false;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  auto source = OpenSource(path, StorageOptions());
  auto mapping = (*source)->MapShared();
  return (*mapping)->ResidentFraction(0, (*source)->Size()) < 0.5;
}

TEST(DeviceStream, AutoRegistersCachedFilesAndTheSettingForcesEither) {
  const auto tensors = Tensors();
  const std::string path = WriteModel(tensors);
  const auto strategy_of = [&](GpuStrategy asked, std::string* reason) {
    auto cuda = std::make_shared<FakeCuda>();
    Streamer streamer(DeviceOptions(cuda, 2, 0, -1, 0, asked));
    EXPECT_TRUE(streamer.AddSafetensorsFile(path).ok());
    EXPECT_EQ(StreamToDevice(streamer).size(), tensors.size());
    *reason = streamer.gpu_strategy_reason();
    return streamer.gpu_strategy();
  };
  std::string reason;
  {  // Reading the file puts it in the page cache (writing it did too).
    std::ifstream in(path, std::ios::binary);
    ASSERT_FALSE(std::string(std::istreambuf_iterator<char>(in), {}).empty());
  }
  EXPECT_EQ(strategy_of(GpuStrategy::kAuto, &reason), GpuStrategy::kRegister) << reason;
  EXPECT_NE(reason.find("100 % of the selected bytes are in the page cache"), std::string::npos)
      << reason;
  EXPECT_EQ(strategy_of(GpuStrategy::kStaging, &reason), GpuStrategy::kStaging) << reason;
  if (!Evict(path)) GTEST_SKIP() << "this filesystem keeps files in memory: no cold case";
  EXPECT_EQ(strategy_of(GpuStrategy::kAuto, &reason), GpuStrategy::kStaging) << reason;
  EXPECT_NE(reason.find("in the page cache: staging"), std::string::npos) << reason;
  ASSERT_TRUE(Evict(path));
  EXPECT_EQ(strategy_of(GpuStrategy::kRegister, &reason), GpuStrategy::kRegister) << reason;
}

TEST(DeviceStream, RegisterFallsBackToStagingWithAReason) {
  const auto tensors = Tensors();
  const std::string path = WriteModel(tensors);
  {  // The runtime refuses read-only registration (its first registration is the probe).
    auto cuda = std::make_shared<FakeCuda>();
    cuda->FailRegistration(1);
    {
      Streamer streamer(RegisterOptions(cuda, 2));
      ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
      const auto got = StreamToDevice(streamer);
      EXPECT_EQ(got.size(), tensors.size());
      EXPECT_EQ(streamer.gpu_strategy(), GpuStrategy::kStaging);
      EXPECT_NE(streamer.gpu_strategy_reason().find("operation not supported"), std::string::npos)
          << streamer.gpu_strategy_reason();
      EXPECT_GT(cuda->pinned_allocations(), 0);
    }
    ExpectNothingLeft(*cuda, {path});
  }
  {  // Overlapping ranges would need overlapping windows.
    auto cuda = std::make_shared<FakeCuda>();
    Streamer streamer(RegisterOptions(cuda, 2));
    ASSERT_TRUE(streamer.AddRanges(path, {100, 50}, {200, 100}).ok());
    ASSERT_TRUE(streamer.Start().ok());
    EXPECT_EQ(streamer.gpu_strategy(), GpuStrategy::kStaging);
    EXPECT_NE(streamer.gpu_strategy_reason().find("overlapping ranges"), std::string::npos)
        << streamer.gpu_strategy_reason();
    EXPECT_EQ(TakeAll(streamer).size(), 2u);
  }
}

// Streams until the error; it must name the file and a tensor.
Status StreamUntilError(Streamer& streamer) {
  EXPECT_TRUE(streamer.Start().ok());
  while (true) {
    auto next = streamer.Next();
    if (!next.ok()) return next.status();
    if (*next == nullptr) return Status::Ok();
  }
}

TEST(DeviceStream, RegistrationFailureMidwayNamesTheFileAndTensorAndLeavesNothing) {
  const auto tensors = LargeTensors(4);  // 4.8 MB: 74 windows
  const std::string path = WriteModel(tensors);
  for (const int64_t nth : {2, 3, 30}) {  // the probe is registration 1
    SCOPED_TRACE("registration " + std::to_string(nth));
    auto cuda = std::make_shared<FakeCuda>();
    cuda->FailRegistration(nth);
    {
      Streamer streamer(RegisterOptions(cuda, 3));
      ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
      const Status error = StreamUntilError(streamer);
      EXPECT_EQ(streamer.gpu_strategy(), GpuStrategy::kRegister);
      EXPECT_EQ(error.code(), StatusCode::kUnavailable) << error.message();
      EXPECT_NE(error.message().find("operation not supported"), std::string::npos)
          << error.message();
      EXPECT_NE(error.message().find("model.safetensors: tensor 'big."), std::string::npos)
          << error.message();
      EXPECT_NE(error.message().find("cannot register bytes"), std::string::npos)
          << error.message();
    }
    ExpectNothingLeft(*cuda, {path});
  }
}

TEST(DeviceStream, CopyFailureFromARegisteredWindowNamesTheTensorAndLeavesNothing) {
  const auto tensors = LargeTensors(4);
  const std::string path = WriteModel(tensors);
  for (const int64_t nth : {1, 17, 60}) {
    SCOPED_TRACE("copy " + std::to_string(nth));
    auto cuda = std::make_shared<FakeCuda>();
    cuda->FailCopy(nth);
    {
      Streamer streamer(RegisterOptions(cuda, 3, 16384));
      ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
      const Status error = StreamUntilError(streamer);
      EXPECT_EQ(error.code(), StatusCode::kUnavailable) << error.message();
      EXPECT_NE(error.message().find("illegal memory access"), std::string::npos)
          << error.message();
      EXPECT_NE(error.message().find("model.safetensors: tensor 'big."), std::string::npos)
          << error.message();
    }
    ExpectNothingLeft(*cuda, {path});
  }
}

TEST(DeviceStream, TheNextWindowIsRegisteredWhileThePreviousOnesCopiesRun) {
  const auto tensors = LargeTensors(2);  // 2.4 MB: 37 windows
  const std::string path = WriteModel(tensors);
  auto cuda = std::make_shared<FakeCuda>();
  // No copy runs before the probe, window 0 and window 1 are registered, unless that
  // takes seconds: then window 1 is registered only after window 0's copies completed.
  cuda->HoldCopiesUntilRegistrations(3, std::chrono::seconds(2));
  {
    Streamer streamer(RegisterOptions(cuda, 1));  // one reader: the registrar overlaps it
    ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
    EXPECT_EQ(StreamToDevice(streamer).size(), tensors.size());
  }
  ExpectNothingLeft(*cuda, {path});
  const auto history = cuda->history();
  std::vector<size_t> registrations;  // indices into history
  for (size_t i = 0; i < history.size(); ++i) {
    if (history[i].kind == FakeCuda::HistoryEntry::kRegister) registrations.push_back(i);
  }
  ASSERT_GE(registrations.size(), 3u);
  const FakeCuda::HistoryEntry& window0 = history[registrations[1]];
  size_t last_copy_from_window0 = 0;
  for (size_t i = 0; i < history.size(); ++i) {
    const auto& e = history[i];
    if (e.kind == FakeCuda::HistoryEntry::kCopyDone && e.host >= window0.host &&
        e.host < window0.host + window0.bytes) {
      last_copy_from_window0 = i;
    }
  }
  ASSERT_GT(last_copy_from_window0, 0u);
  EXPECT_LT(registrations[2], last_copy_from_window0);
  EXPECT_LE(cuda->peak_registrations(), static_cast<int64_t>(WindowRegistry::kMaxRegistered));
}

TEST(DeviceStream, GpuStrategySettingIsChecked) {
  StreamOptions options;
  ASSERT_TRUE(SetOption(options, "gpu_strategy", "register").ok());
  EXPECT_EQ(options.gpu_strategy, GpuStrategy::kRegister);
  const Status bad = SetOption(options, "gpu_strategy", "fastest");
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("gpu_strategy"), std::string::npos) << bad.message();
  EXPECT_NE(bad.message().find("fastest"), std::string::npos) << bad.message();
  EXPECT_EQ(options.gpu_strategy, GpuStrategy::kRegister);  // unchanged

  ::setenv("TENSORSTREAM_GPU_STRATEGY", "staging", 1);
  auto from_env = StreamOptionsFromEnvironment();
  ASSERT_TRUE(from_env.ok());
  EXPECT_EQ(from_env->gpu_strategy, GpuStrategy::kStaging);
  ::setenv("TENSORSTREAM_GPU_STRATEGY", "mmap", 1);
  from_env = StreamOptionsFromEnvironment();
  const Status checked = CheckEnvironmentVariable("TENSORSTREAM_GPU_STRATEGY");
  ::unsetenv("TENSORSTREAM_GPU_STRATEGY");
  ASSERT_FALSE(from_env.ok());
  EXPECT_NE(from_env.status().message().find("TENSORSTREAM_GPU_STRATEGY"), std::string::npos);
  EXPECT_NE(from_env.status().message().find("mmap"), std::string::npos);
  EXPECT_EQ(checked.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(StreamOptionsFromEnvironment()->gpu_strategy, GpuStrategy::kAuto);
}

}  // namespace
}  // namespace tensorstream
