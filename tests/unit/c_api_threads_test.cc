// The C API's threading contract: destroy while the consumer waits in next.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "safetensors_writer.h"
#include "tensorstream/tensorstream.h"

namespace {

using tensorstream::testing::MakeTensor;
using tensorstream::testing::SafetensorsImage;
using tensorstream::testing::TempDir;
using tensorstream::testing::WriteFile;

// A stream whose consumer holds the first tensor under a limit of one tensor, so that
// its next call waits (the readers wait for memory the consumer does not give back).
tensorstream_stream* BlockedStream(const std::string& path) {
  WriteFile(path, SafetensorsImage({MakeTensor("a", "U8", {1 << 20}, 1),
                                    MakeTensor("b", "U8", {1 << 20}, 2),
                                    MakeTensor("c", "U8", {1 << 20}, 3)}));
  tensorstream_options* options = nullptr;
  EXPECT_EQ(tensorstream_options_create(&options), TENSORSTREAM_OK);
  EXPECT_EQ(tensorstream_options_set(options, "memory_limit", "0"), TENSORSTREAM_OK);
  tensorstream_stream* stream = nullptr;
  EXPECT_EQ(tensorstream_stream_create(options, &stream), TENSORSTREAM_OK);
  tensorstream_options_destroy(options);
  EXPECT_EQ(tensorstream_stream_add_file(stream, path.c_str(), nullptr), TENSORSTREAM_OK);
  EXPECT_EQ(tensorstream_stream_start(stream), TENSORSTREAM_OK);
  return stream;
}

TEST(CApiThreads, DestroyWhileTheConsumerWaitsInNext) {
  TempDir dir("capi-threads");
  tensorstream_stream* stream = BlockedStream(dir / "m.safetensors");
  tensorstream_tensor* held = nullptr;
  ASSERT_EQ(tensorstream_stream_next(stream, &held), TENSORSTREAM_OK);
  std::thread closer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    tensorstream_stream_destroy(stream);  // returns once the consumer left next
  });
  tensorstream_tensor* next = nullptr;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(tensorstream_stream_next(stream, &next), TENSORSTREAM_CANCELLED);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  closer.join();
  // A tensor taken before destroy stays valid, and is released after it.
  EXPECT_EQ(static_cast<const unsigned char*>(tensorstream_tensor_data(held))[7],
            static_cast<unsigned char>(MakeTensor("", "U8", {1 << 20}, 1).bytes[7]));
  tensorstream_tensor_release(held);
}

TEST(CApiThreads, DestroyWhileTheConsumerWaitsInNextBatch) {
  TempDir dir("capi-threads-batch");
  tensorstream_stream* stream = BlockedStream(dir / "m.safetensors");
  tensorstream_delivery first[4];
  size_t count = 0;
  ASSERT_EQ(tensorstream_stream_next_batch(stream, first, 4, 0, -1, &count), TENSORSTREAM_OK);
  ASSERT_EQ(count, 1u);
  std::thread closer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    tensorstream_stream_destroy(stream);
  });
  tensorstream_delivery more[4];
  // (A binding that polls with a timeout must itself keep destroy from running between
  // two of its calls: no call may start once destroy has begun.)
  EXPECT_EQ(tensorstream_stream_next_batch(stream, more, 4, 0, -1, &count), TENSORSTREAM_CANCELLED);
  EXPECT_EQ(count, 0u);
  closer.join();
  tensorstream_deliveries_release(first, 1);
}

}  // namespace
