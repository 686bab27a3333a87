#include "pipeline/host_memory.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>

namespace tensorstream {

namespace {

constexpr uint64_t kMapThreshold = 1ull << 20;  // smaller buffers come from the heap
constexpr uint64_t kPage = 4096;
constexpr uint64_t kHugePage = 2ull << 20;

uint64_t RoundUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// Maps `capacity` bytes starting on a 2 MiB boundary, so transparent huge pages can back
// it (one fault per 2 MiB instead of 512). Returns nullptr on failure.
char* MapAligned(uint64_t capacity) {
  const uint64_t span = capacity + kHugePage;
  void* raw = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto base = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = RoundUp(base, kHugePage);
  if (aligned > base) ::munmap(raw, aligned - base);
  const uintptr_t tail = aligned + capacity;
  if (base + span > tail) ::munmap(reinterpret_cast<void*>(tail), base + span - tail);
  ::madvise(reinterpret_cast<void*>(aligned), capacity, MADV_HUGEPAGE);  // advisory only
  return reinterpret_cast<char*>(aligned);
}

void Free(char* data, uint64_t capacity, bool mapped) {
  if (mapped) {
    ::munmap(data, capacity);
  } else {
    std::free(data);
  }
}

// A cached region serves a request if it wastes at most a quarter of the request.
bool Fits(uint64_t capacity, uint64_t bytes) {
  return capacity >= bytes && capacity - bytes <= bytes / 4;
}

}  // namespace

HostBuffer::HostBuffer(std::shared_ptr<HostMemory> memory, char* data, uint64_t capacity,
                       bool mapped, uint32_t holders)
    : memory_(std::move(memory)),
      data_(data),
      capacity_(capacity),
      mapped_(mapped),
      holders_(holders) {}

HostBuffer::~HostBuffer() { memory_->Return(data_, capacity_, mapped_, accounted_); }

void HostBuffer::HolderDone(bool kept) {
  std::lock_guard lock(mu_);
  kept_ = kept_ || kept;
  if (--holders_ == 0 && kept_ && accounted_) {
    accounted_ = false;
    std::lock_guard memory_lock(memory_->mu_);
    memory_->UnaccountLocked(capacity_);
  }
}

HostMemory::~HostMemory() {
  for (const CachedRegion& region : cache_) Free(region.data, region.capacity, true);
}

uint64_t HostMemory::Footprint(uint64_t bytes) {
  return bytes >= kMapThreshold ? RoundUp(bytes, kPage) : bytes;
}

Result<std::shared_ptr<HostBuffer>> HostMemory::Acquire(uint64_t bytes, uint64_t alignment,
                                                        uint32_t holders) {
  const uint64_t footprint = Footprint(bytes);
  std::unique_lock lock(mu_);
  while (true) {
    if (cancelled_) return Cancelled("stream cancelled");
    // 1. A cached buffer of about the right size: no new memory at all.
    auto reuse = std::find_if(cache_.begin(), cache_.end(),
                              [&](const CachedRegion& r) { return Fits(r.capacity, footprint); });
    if (reuse != cache_.end() && bytes >= kMapThreshold) {
      const CachedRegion region = *reuse;
      cache_.erase(reuse);
      cached_ -= region.capacity;
      in_use_ += region.capacity;
      return std::shared_ptr<HostBuffer>(
          new HostBuffer(shared_from_this(), region.data, region.capacity, true, holders));
    }
    // 2. Room for a new one, after evicting cached buffers if needed.
    const auto fits = [&] {
      return limit_ < 0 || in_use_ + cached_ + footprint <= static_cast<uint64_t>(limit_);
    };
    while (!fits() && !cache_.empty()) {
      Free(cache_.back().data, cache_.back().capacity, true);
      cached_ -= cache_.back().capacity;
      cache_.pop_back();
    }
    if (fits()) break;
    // 3. Wait for the consumer to release something.
    changed_.wait(lock);
  }
  in_use_ += footprint;
  peak_ = std::max(peak_, in_use_ + cached_);
  lock.unlock();

  const bool mapped = bytes >= kMapThreshold;
  char* data = mapped ? MapAligned(footprint)
                      : static_cast<char*>(std::aligned_alloc(
                            alignment, RoundUp(std::max<uint64_t>(bytes, 1), alignment)));
  if (data == nullptr) {
    lock.lock();
    UnaccountLocked(footprint);
    return Status(StatusCode::kOutOfMemory,
                  "cannot allocate a host buffer of " + std::to_string(bytes) + " bytes");
  }
  return std::shared_ptr<HostBuffer>(
      new HostBuffer(shared_from_this(), data, footprint, mapped, holders));
}

void HostMemory::UnaccountLocked(uint64_t capacity) {
  in_use_ -= capacity;
  changed_.notify_all();
}

void HostMemory::Return(char* data, uint64_t capacity, bool mapped, bool accounted) {
  {
    std::lock_guard lock(mu_);
    if (accounted) UnaccountLocked(capacity);
    // Cached only while the total stays under the limit (or, without one, the cache cap).
    // That includes buffers the caller kept: once their tensors die, their memory is as
    // good as any for the next group.
    const bool room = limit_ >= 0 ? in_use_ + cached_ + capacity <= static_cast<uint64_t>(limit_)
                                  : cached_ + capacity <= cache_cap_;
    if (mapped && !cancelled_ && room) {
      cache_.push_back({data, capacity});
      cached_ += capacity;
      peak_ = std::max(peak_, in_use_ + cached_);
      return;
    }
  }
  Free(data, capacity, mapped);
}

void HostMemory::Cancel() {
  std::vector<CachedRegion> cache;
  {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    cache.swap(cache_);
    cached_ = 0;
  }
  changed_.notify_all();
  for (const CachedRegion& region : cache) Free(region.data, region.capacity, true);
}

uint64_t HostMemory::peak() const {
  std::lock_guard lock(mu_);
  return peak_;
}

}  // namespace tensorstream
