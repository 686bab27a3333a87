// FakeCuda: a CudaApi on host memory for tests of the GPU path without a GPU.
//
// "Device" memory is heap memory. Each stream is a worker thread that runs its copies in
// order, after a small random delay, so copies really are asynchronous: a pipeline that
// reused a staging slot before its copy finished would deliver wrong bytes. Events
// complete when the stream reaches them. Failures can be injected into the Nth copy.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "cuda/cuda_api.h"

namespace tensorstream::testing {

class FakeCuda final : public CudaApi {
 public:
  explicit FakeCuda(int devices = 1) : devices_(devices) {}
  ~FakeCuda() override;

  Result<int> DeviceCount() override { return devices_; }
  Result<int> GetDevice() override;
  Status SetDevice(int device) override;
  Result<void*> HostAllocPinned(size_t bytes) override;
  void HostFreePinned(void* ptr) override;
  Result<void*> DeviceAlloc(size_t bytes) override;
  void DeviceFree(void* ptr) override;
  Result<StreamHandle> StreamCreate() override;
  void StreamDestroy(StreamHandle stream) override;
  Status CopyToDeviceAsync(void* dst, const void* src, size_t bytes, StreamHandle stream) override;
  Result<EventHandle> EventCreate() override;
  void EventDestroy(EventHandle event) override;
  Status EventRecord(EventHandle event, StreamHandle stream) override;
  Status EventSynchronize(EventHandle event) override;

  // The copy with this 1-based sequence number fails asynchronously (reported by the next
  // EventSynchronize on its stream), as a real kernel/copy fault would be.
  void FailCopy(int64_t nth) { fail_copy_ = nth; }

  int64_t pinned_allocations() const { return pinned_allocations_; }
  int64_t live_pinned() const { return live_pinned_; }
  int64_t live_device() const { return live_device_; }
  // Bytes of device memory allocated and not freed, now and at most so far.
  int64_t live_device_bytes() const {
    std::lock_guard lock(mu_);
    return live_device_bytes_;
  }
  int64_t peak_device_bytes() const {
    std::lock_guard lock(mu_);
    return peak_device_bytes_;
  }
  int64_t live_streams() const { return live_streams_; }
  int64_t copies() const { return copies_; }
  // Copies whose source was not pinned memory from HostAllocPinned.
  int64_t unpinned_copies() const { return unpinned_copies_; }

 private:
  struct Stream;
  struct Event;

  const int devices_;
  static thread_local int current_device_;  // like the runtime: per thread
  std::atomic<int64_t> fail_copy_{0};
  std::atomic<int64_t> pinned_allocations_{0};
  std::atomic<int64_t> live_pinned_{0};
  std::atomic<int64_t> live_device_{0};
  std::atomic<int64_t> live_streams_{0};
  std::atomic<int64_t> copies_{0};
  std::atomic<int64_t> unpinned_copies_{0};
  mutable std::mutex mu_;
  std::map<const char*, size_t> pinned_;  // start → size, to check copy sources
  std::map<void*, size_t> device_;        // start → size
  int64_t live_device_bytes_ = 0;         // guarded by mu_
  int64_t peak_device_bytes_ = 0;         // guarded by mu_
};

}  // namespace tensorstream::testing
