#include "pipeline/host_memory.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

namespace tensorstream {
namespace {

constexpr uint64_t kMiB = 1 << 20;

TEST(HostMemory, ReleasedBuffersAreReusedWithoutNewMemory) {
  auto memory = std::make_shared<HostMemory>(-1, 64 * kMiB);
  char* first = nullptr;
  {
    auto buffer = memory->Acquire(3 * kMiB, 64, 1);
    ASSERT_TRUE(buffer.ok());
    first = (*buffer)->data();
    (*buffer)->HolderDone(false);
  }
  auto again = memory->Acquire(3 * kMiB - 100, 64, 1);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->data(), first);
  EXPECT_EQ(memory->peak(), 3 * kMiB);
}

TEST(HostMemory, KeptBuffersLeaveTheAccountingAndAreNotReused) {
  auto memory = std::make_shared<HostMemory>(4 * kMiB, 0);
  auto kept = memory->Acquire(3 * kMiB, 64, 2);
  ASSERT_TRUE(kept.ok());
  (*kept)->HolderDone(true);
  (*kept)->HolderDone(false);
  // The 3 MiB no longer count: another 3 MiB fits under the 4 MiB limit at once.
  auto next = memory->Acquire(3 * kMiB, 64, 1);
  ASSERT_TRUE(next.ok());
  EXPECT_NE((*next)->data(), (*kept)->data());
  EXPECT_LE(memory->peak(), 4 * kMiB);
}

TEST(HostMemory, AcquireWaitsForReleaseAndCancelWakesIt) {
  auto memory = std::make_shared<HostMemory>(4 * kMiB, 0);
  auto held = memory->Acquire(3 * kMiB, 64, 1);
  ASSERT_TRUE(held.ok());
  auto waiting = std::async(std::launch::async, [&] { return memory->Acquire(2 * kMiB, 64, 1); });
  EXPECT_EQ(waiting.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  held->reset();  // the last reference: the 3 MiB go back
  auto got = waiting.get();
  ASSERT_TRUE(got.ok());
  EXPECT_LE(memory->peak(), 4 * kMiB);

  auto blocked = std::async(std::launch::async, [&] { return memory->Acquire(3 * kMiB, 64, 1); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  memory->Cancel();
  EXPECT_EQ(blocked.get().status().code(), StatusCode::kCancelled);
}

TEST(HostMemory, CachedBuffersAreEvictedToStayUnderTheLimit) {
  auto memory = std::make_shared<HostMemory>(6 * kMiB, 0);
  {
    auto a = memory->Acquire(2 * kMiB, 64, 1);
    auto b = memory->Acquire(2 * kMiB, 64, 1);
    ASSERT_TRUE(a.ok() && b.ok());
  }                                             // both cached now: 4 MiB held
  auto big = memory->Acquire(5 * kMiB, 64, 1);  // needs eviction, must not block
  ASSERT_TRUE(big.ok());
  EXPECT_LE(memory->peak(), 6 * kMiB);
}

}  // namespace
}  // namespace tensorstream
