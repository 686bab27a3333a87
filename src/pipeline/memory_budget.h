// MemoryBudget: the host-memory limit of one stream.
//
// Readers Reserve() a read group's bytes before reading into it; the bytes are released
// when the consumer is done with every tensor of the group (released or kept). Reserve
// blocks while the limit would be exceeded, so at most `limit` bytes are ever held, and
// never waits for a whole batch: each release lets the next group start.
// Thread-safe. Shared (shared_ptr) by the stream and every buffer it handed out, since
// delivered tensors may outlive the stream.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace tensorstream {

class MemoryBudget {
 public:
  // limit < 0: unlimited (reservations are still counted for the peak statistic).
  explicit MemoryBudget(int64_t limit) : limit_(limit) {}

  // Blocks until `bytes` fit under the limit or Cancel() was called; false if cancelled.
  // REQUIRES: bytes <= limit (the planner guarantees it), or the call could never return.
  bool Reserve(uint64_t bytes);
  void Release(uint64_t bytes);
  // Wakes every Reserve() for good; later Reserve() calls return false at once.
  void Cancel();

  uint64_t reserved() const;
  uint64_t peak() const;

 private:
  const int64_t limit_;
  mutable std::mutex mu_;
  std::condition_variable released_;
  uint64_t reserved_ = 0;
  uint64_t peak_ = 0;
  bool cancelled_ = false;
};

}  // namespace tensorstream
