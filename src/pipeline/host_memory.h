// HostMemory: the host memory of one stream — the memory limit and a small cache of
// buffers for reuse — and HostBuffer, one read group's memory.
//
// Accounting: every byte the stream holds counts against the limit, whether it is in use
// (a group being read, or delivered tensors the consumer has not released) or cached for
// reuse. Acquire() blocks while a new buffer would not fit, evicting cached buffers first,
// so the stream never holds more than the limit and readers never wait for a whole batch:
// each release lets the next group start.
//
// Why a cache: a consumer that releases tensors right away (the CLI, C users copying into
// their own memory) would otherwise pay page faults and kernel zeroing for every fresh
// buffer, which costs as much as the read itself when the data is in the page cache.
// Buffers of tensors the caller *keeps* leave the accounting at keep time; when the caller
// drops them they return to the cache if it has room under the limit, else are freed.
//
// Thread-safe. Shared (shared_ptr) by the stream and every HostBuffer, since delivered
// tensors may outlive the stream.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "common/status.h"

namespace tensorstream {

class HostMemory;

// The memory of one read group, shared by the tensors delivered from it.
class HostBuffer {
 public:
  ~HostBuffer();  // returns the memory to HostMemory (cache) or frees it
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  char* data() const { return data_; }
  uint64_t size() const { return capacity_; }  // usable bytes from data(), at least requested

  // One of the `holders` given at Acquire is done: `kept` says it keeps its bytes beyond
  // the stream. When the last holder is done, the bytes stop counting against the limit
  // if any holder kept them (the memory is then freed when the last reference goes).
  // Each holder calls this exactly once; thread-safe.
  void HolderDone(bool kept);

 private:
  friend class HostMemory;
  HostBuffer(std::shared_ptr<HostMemory> memory, char* data, uint64_t capacity, bool mapped,
             uint32_t holders);

  const std::shared_ptr<HostMemory> memory_;
  char* const data_;
  const uint64_t capacity_;  // bytes counted against the limit
  const bool mapped_;        // from mmap (cacheable) or from aligned_alloc
  std::mutex mu_;
  uint32_t holders_;
  bool kept_ = false;
  bool accounted_ = true;  // still counted as in use by HostMemory
};

class HostMemory : public std::enable_shared_from_this<HostMemory> {
 public:
  // limit < 0: unlimited (the cache is then capped at `cache_cap` bytes).
  HostMemory(int64_t limit, uint64_t cache_cap) : limit_(limit), cache_cap_(cache_cap) {}
  ~HostMemory();

  // The bytes a buffer of `bytes` counts for (mapped buffers are rounded to 2 MiB pages).
  static uint64_t Footprint(uint64_t bytes);

  // Blocks until a buffer of `bytes` fits under the limit, then returns it (reused from
  // the cache or freshly allocated, aligned to `alignment` <= 4096), shared by `holders`.
  // Cancelled status once Cancel() was called.
  // REQUIRES: Footprint(bytes) <= limit (the planner guarantees it).
  Result<std::shared_ptr<HostBuffer>> Acquire(uint64_t bytes, uint64_t alignment, uint32_t holders);

  // Wakes every Acquire() for good; later calls fail at once. Frees the cache.
  void Cancel();

  uint64_t peak() const;  // the most bytes ever held (in use + cached)

 private:
  friend class HostBuffer;
  struct CachedRegion {
    char* data;
    uint64_t capacity;
  };
  void Return(char* data, uint64_t capacity, bool mapped, bool accounted);
  void UnaccountLocked(uint64_t capacity);

  const int64_t limit_;
  const uint64_t cache_cap_;
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::vector<CachedRegion> cache_;
  uint64_t in_use_ = 0;
  uint64_t cached_ = 0;
  uint64_t peak_ = 0;
  bool cancelled_ = false;
};

}  // namespace tensorstream
