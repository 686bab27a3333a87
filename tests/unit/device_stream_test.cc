// The GPU path (pinned staging, async copies, events) against FakeCuda: ordering, slot
// wrap-around, destinations, errors mid-copy, cancellation, the memory limit, and pinned
// staging kept between streams (PinnedCache).
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
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

StreamOptions DeviceOptions(std::shared_ptr<FakeCuda> cuda, int concurrency,
                            uint64_t chunk_bytes = 0, int64_t limit = -1, int device = 0) {
  StreamOptions o;
  o.concurrency = concurrency;
  o.chunk_bytes = chunk_bytes;
  o.memory_limit = limit;
  o.device = device;
  o.cuda = std::move(cuda);
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
  auto cuda = std::make_shared<FakeCuda>();
  {
    Streamer streamer(DeviceOptions(cuda, 4, 4096));
    ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
    ASSERT_TRUE(streamer.Start().ok());
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

StreamOptions LimitedDeviceOptions(std::shared_ptr<FakeCuda> cuda, int64_t device_limit) {
  StreamOptions options = DeviceOptions(std::move(cuda), 4, 256 << 10);
  options.device_memory_limit = device_limit;
  return options;
}

TEST(DeviceStream, AModelLargerThanTheDeviceLimitStreamsWhileTheConsumerReleases) {
  const auto tensors = LargeTensors(20);  // 24 MB against a limit of 3 tensors
  const std::string path = WriteModel(tensors);
  auto cuda = std::make_shared<FakeCuda>();
  const int64_t limit = 3 * kLargeTensorBytes;
  Streamer streamer(LimitedDeviceOptions(cuda, limit));
  ASSERT_TRUE(streamer.AddSafetensorsFile(path).ok());
  ASSERT_TRUE(streamer.Start().ok());
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

}  // namespace
}  // namespace tensorstream
