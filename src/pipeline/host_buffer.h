// HostBuffer: the memory one read group is read into, shared by the tensors delivered
// from it. The group's reservation in the MemoryBudget is returned once every one of
// those tensors was released or kept (see tensorstream_tensor_keep); the memory itself
// is freed when the last tensor referencing it is gone (and an unreturned reservation
// with it).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "common/status.h"
#include "pipeline/memory_budget.h"

namespace tensorstream {

class HostBuffer {
 public:
  // Allocates `bytes` aligned to `alignment` (a power of two). Large buffers come from
  // mmap with transparent huge pages advised, which halves page-fault work on big reads.
  static Result<std::shared_ptr<HostBuffer>> Allocate(uint64_t bytes, uint64_t alignment,
                                                      std::shared_ptr<MemoryBudget> budget,
                                                      uint32_t budget_holders);
  ~HostBuffer();
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  char* data() const { return data_; }
  uint64_t size() const { return bytes_; }

  // One of the `budget_holders` given at allocation is done with the budget; the last one
  // returns the bytes to the MemoryBudget. Thread-safe; each holder calls it exactly once.
  void ReleaseBudget();

 private:
  HostBuffer(char* data, uint64_t bytes, bool mapped, std::shared_ptr<MemoryBudget> budget,
             uint32_t holders);

  char* const data_;
  const uint64_t bytes_;
  const bool mapped_;
  const std::shared_ptr<MemoryBudget> budget_;
  std::atomic<uint32_t> budget_holders_;
};

}  // namespace tensorstream
