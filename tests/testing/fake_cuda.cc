#include "fake_cuda.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

namespace tensorstream::testing {

struct FakeCuda::Event {
  std::mutex mu;
  std::condition_variable cv;
  uint64_t recorded = 0;
  uint64_t reached = 0;
  Status error;
};

struct FakeCuda::Stream {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::function<void()>> work;
  bool stopping = false;
  Status error;  // sticky, as a CUDA stream error is
  std::thread worker;

  Stream() {
    worker = std::thread([this] {
      std::minstd_rand rng(std::hash<std::thread::id>()(std::this_thread::get_id()));
      while (true) {
        std::function<void()> job;
        {
          std::unique_lock lock(mu);
          cv.wait(lock, [&] { return stopping || !work.empty(); });
          if (work.empty()) return;
          job = std::move(work.front());
          work.pop_front();
        }
        if (rng() % 4 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 200));
        job();
      }
    });
  }
  ~Stream() {
    {
      std::lock_guard lock(mu);
      stopping = true;
    }
    cv.notify_all();
    worker.join();
  }
  void Enqueue(std::function<void()> job) {
    {
      std::lock_guard lock(mu);
      work.push_back(std::move(job));
    }
    cv.notify_all();
  }
};

FakeCuda::~FakeCuda() = default;

thread_local int FakeCuda::current_device_ = 0;

Result<int> FakeCuda::GetDevice() { return current_device_; }

Status FakeCuda::SetDevice(int device) {
  if (device < 0 || device >= devices_) return Unavailable("cudaSetDevice: invalid device ordinal");
  current_device_ = device;
  return Status::Ok();
}

Result<void*> FakeCuda::HostAllocPinned(size_t bytes) {
  void* p = std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
  ++pinned_allocations_;
  ++live_pinned_;
  std::lock_guard lock(mu_);
  pinned_[static_cast<const char*>(p)] = bytes;
  return p;
}

void FakeCuda::HostFreePinned(void* ptr) {
  {
    std::lock_guard lock(mu_);
    pinned_.erase(static_cast<const char*>(ptr));
  }
  --live_pinned_;
  std::free(ptr);
}

Result<void*> FakeCuda::DeviceAlloc(size_t bytes) {
  void* p = std::malloc(bytes == 0 ? 1 : bytes);
  ++live_device_;
  std::lock_guard lock(mu_);
  device_[p] = bytes;
  live_device_bytes_ += static_cast<int64_t>(bytes);
  peak_device_bytes_ = std::max<int64_t>(peak_device_bytes_, live_device_bytes_);
  return p;
}

void FakeCuda::DeviceFree(void* ptr) {
  {
    std::lock_guard lock(mu_);
    live_device_bytes_ -= static_cast<int64_t>(device_[ptr]);
    device_.erase(ptr);
  }
  --live_device_;
  std::free(ptr);
}

Result<CudaApi::StreamHandle> FakeCuda::StreamCreate() {
  ++live_streams_;
  return static_cast<StreamHandle>(new Stream());
}

void FakeCuda::StreamDestroy(StreamHandle stream) {
  --live_streams_;
  delete static_cast<Stream*>(stream);
}

namespace {

// Whether [p, p + bytes) lies within one of `ranges` (start → size).
bool WithinOne(const std::map<const char*, size_t>& ranges, const char* p, size_t bytes) {
  auto it = ranges.upper_bound(p);
  return it != ranges.begin() && p + bytes <= std::prev(it)->first + std::prev(it)->second;
}

std::string Hex(const void* p) {
  char text[32];
  std::snprintf(text, sizeof text, "%p", p);
  return text;
}

}  // namespace

Status FakeCuda::HostRegisterReadOnly(const void* ptr, size_t bytes) {
  const int64_t n = ++registration_calls_;
  if (n == fail_registration_.load()) {
    return Unavailable("cudaHostRegister failed: operation not supported (CUDA error 801)");
  }
  const auto* p = static_cast<const char*>(ptr);
  {
    std::lock_guard lock(mu_);
    const auto next = registered_.lower_bound(p);
    const bool overlaps_next = next != registered_.end() && next->first < p + bytes;
    const bool overlaps_previous =
        next != registered_.begin() && std::prev(next)->first + std::prev(next)->second > p;
    if (overlaps_next || overlaps_previous) {
      violations_.push_back("overlapping registration of " + std::to_string(bytes) + " bytes at " +
                            Hex(p));
      return Unavailable(
          "cudaHostRegister failed: part or all of the requested memory range is already "
          "mapped (CUDA error 712)");
    }
    registered_[p] = bytes;
    peak_registrations_ = std::max(peak_registrations_, static_cast<int64_t>(registered_.size()));
    history_.push_back({HistoryEntry::kRegister, p, bytes});
    ++registrations_;
  }
  registered_cv_.notify_all();
  return Status::Ok();
}

Status FakeCuda::HostUnregister(const void* ptr) {
  const auto* p = static_cast<const char*>(ptr);
  std::lock_guard lock(mu_);
  const auto it = registered_.find(p);
  if (it == registered_.end()) {
    violations_.push_back("unregistration of " + Hex(p) + ", which is not registered");
    return Unavailable(
        "cudaHostUnregister failed: pointer does not correspond to a registered memory region "
        "(CUDA error 713)");
  }
  const auto pending = pending_copies_.lower_bound(p);
  if (pending != pending_copies_.end() && pending->first < p + it->second) {
    violations_.push_back("unregistration of " + Hex(p) + " while a copy from " +
                          Hex(pending->first) + " is pending");
  }
  registered_.erase(it);
  history_.push_back({HistoryEntry::kUnregister, p, 0});
  return Status::Ok();
}

Status FakeCuda::CopyToDeviceAsync(void* dst, const void* src, size_t bytes, StreamHandle handle) {
  const int64_t n = ++copies_;
  const auto* s = static_cast<const char*>(src);
  {
    std::lock_guard lock(mu_);
    if (!WithinOne(pinned_, s, bytes) && !WithinOne(registered_, s, bytes)) {
      ++unpinned_copies_;
      violations_.push_back("copy of " + std::to_string(bytes) + " bytes from " + Hex(s) +
                            ", neither pinned nor registered");
    }
    ++pending_copies_[s];
  }
  auto* stream = static_cast<Stream*>(handle);
  const bool fail = n == fail_copy_.load();
  stream->Enqueue([this, stream, dst, s, bytes, fail] {
    {
      std::unique_lock lock(mu_);
      registered_cv_.wait_for(lock, hold_timeout_,
                              [&] { return registrations_ >= hold_until_registrations_; });
    }
    if (fail) {
      std::lock_guard lock(stream->mu);
      stream->error =
          Unavailable("cudaMemcpyAsync failed: an illegal memory access was encountered");
    } else {
      std::memcpy(dst, s, bytes);
    }
    std::lock_guard lock(mu_);
    if (--pending_copies_[s] == 0) pending_copies_.erase(s);
    history_.push_back({HistoryEntry::kCopyDone, s, bytes});
  });
  return Status::Ok();
}

Result<CudaApi::EventHandle> FakeCuda::EventCreate() {
  return static_cast<EventHandle>(new Event());
}

void FakeCuda::EventDestroy(EventHandle event) { delete static_cast<Event*>(event); }

Status FakeCuda::EventRecord(EventHandle handle, StreamHandle stream_handle) {
  auto* event = static_cast<Event*>(handle);
  auto* stream = static_cast<Stream*>(stream_handle);
  uint64_t ticket;
  {
    std::lock_guard lock(event->mu);
    ticket = ++event->recorded;
  }
  stream->Enqueue([event, stream, ticket] {
    Status error;
    {
      std::lock_guard lock(stream->mu);
      error = stream->error;
    }
    std::lock_guard lock(event->mu);
    event->reached = ticket;
    event->error = error;
    event->cv.notify_all();
  });
  return Status::Ok();
}

Status FakeCuda::EventSynchronize(EventHandle handle) {
  auto* event = static_cast<Event*>(handle);
  std::unique_lock lock(event->mu);
  event->cv.wait(lock, [&] { return event->reached == event->recorded; });
  return event->error;
}

}  // namespace tensorstream::testing
