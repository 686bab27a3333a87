// FakeCuda: a CudaApi on host memory for tests of the GPU path without a GPU.
//
// "Device" memory is heap memory. Each stream is a worker thread that runs its copies in
// order, after a small random delay, so copies really are asynchronous: a pipeline that
// reused a staging slot before its copy finished would deliver wrong bytes. Events
// complete when the stream reaches them. Failures can be injected into the Nth copy and
// the Nth registration.
//
// The real runtime's rules on host memory are checked, and every breach is recorded as a
// violation (tests assert there is none): a copy's source must lie within one pinned
// allocation or one registered range; registered ranges must not overlap (the
// registration also fails, as cudaErrorHostMemoryAlreadyRegistered); only a registered
// pointer may be unregistered, and not while a copy from its range is still pending.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

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
  Status HostRegisterReadOnly(const void* ptr, size_t bytes) override;
  Status HostUnregister(const void* ptr) override;
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
  // The registration with this 1-based sequence number fails, as a refusal would.
  void FailRegistration(int64_t nth) { fail_registration_ = nth; }
  // Streams run no copy until `count` registrations succeeded (or `timeout` passed for
  // that copy): then the history shows whether the pipeline registers ahead of copies
  // that are still to complete, or only after them.
  void HoldCopiesUntilRegistrations(int64_t count, std::chrono::milliseconds timeout) {
    std::lock_guard lock(mu_);
    hold_until_registrations_ = count;
    hold_timeout_ = timeout;
  }

  // What happened to host memory, in order, for tests of ordering.
  struct HistoryEntry {
    enum Kind { kRegister, kUnregister, kCopyDone } kind;
    const char* host;  // the range registered or unregistered, or the copy's source
    size_t bytes;      // 0 for kUnregister
  };
  std::vector<HistoryEntry> history() const {
    std::lock_guard lock(mu_);
    return history_;
  }
  std::vector<std::string> violations() const {
    std::lock_guard lock(mu_);
    return violations_;
  }
  int64_t registrations() const { return registrations_; }  // succeeded, in all
  int64_t live_registrations() const {
    std::lock_guard lock(mu_);
    return static_cast<int64_t>(registered_.size());
  }
  int64_t peak_registrations() const {
    std::lock_guard lock(mu_);
    return peak_registrations_;
  }

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
  // Copies whose source was neither pinned memory from HostAllocPinned nor registered.
  int64_t unpinned_copies() const { return unpinned_copies_; }

 private:
  struct Stream;
  struct Event;

  const int devices_;
  static thread_local int current_device_;  // like the runtime: per thread
  std::atomic<int64_t> fail_copy_{0};
  std::atomic<int64_t> fail_registration_{0};
  std::atomic<int64_t> registration_calls_{0};
  std::atomic<int64_t> registrations_{0};
  std::atomic<int64_t> pinned_allocations_{0};
  std::atomic<int64_t> live_pinned_{0};
  std::atomic<int64_t> live_device_{0};
  std::atomic<int64_t> live_streams_{0};
  std::atomic<int64_t> copies_{0};
  std::atomic<int64_t> unpinned_copies_{0};
  mutable std::mutex mu_;
  std::map<const char*, size_t> pinned_;       // start → size, to check copy sources
  std::map<void*, size_t> device_;             // start → size
  std::map<const char*, size_t> registered_;   // start → size; guarded by mu_
  std::map<const char*, int> pending_copies_;  // source → copies queued, not yet run; mu_
  std::vector<HistoryEntry> history_;          // guarded by mu_
  std::vector<std::string> violations_;        // guarded by mu_
  int64_t peak_registrations_ = 0;             // guarded by mu_
  int64_t hold_until_registrations_ = 0;       // guarded by mu_
  std::chrono::milliseconds hold_timeout_{0};  // guarded by mu_
  std::condition_variable registered_cv_;      // with mu_: a registration succeeded
  int64_t live_device_bytes_ = 0;              // guarded by mu_
  int64_t peak_device_bytes_ = 0;              // guarded by mu_
};

}  // namespace tensorstream::testing
