#include "pipeline/host_buffer.h"

#include <sys/mman.h>

#include <cstdlib>

namespace tensorstream {

namespace {
constexpr uint64_t kMmapThreshold = 1ull << 20;
}

HostBuffer::HostBuffer(char* data, uint64_t bytes, bool mapped,
                       std::shared_ptr<MemoryBudget> budget, uint32_t holders)
    : data_(data), bytes_(bytes), mapped_(mapped), budget_(std::move(budget)),
      budget_holders_(holders) {}

Result<std::shared_ptr<HostBuffer>> HostBuffer::Allocate(uint64_t bytes, uint64_t alignment,
                                                         std::shared_ptr<MemoryBudget> budget,
                                                         uint32_t budget_holders) {
  char* data = nullptr;
  const bool mapped = bytes >= kMmapThreshold && alignment <= 4096;
  if (mapped) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) {
      ::madvise(p, bytes, MADV_HUGEPAGE);  // advisory: failure only costs speed
      data = static_cast<char*>(p);
    }
  } else {
    const uint64_t rounded = (std::max<uint64_t>(bytes, 1) + alignment - 1) / alignment * alignment;
    data = static_cast<char*>(std::aligned_alloc(alignment, rounded));
  }
  if (data == nullptr) {
    return Status(StatusCode::kOutOfMemory,
                  "cannot allocate a host buffer of " + std::to_string(bytes) + " bytes");
  }
  return std::shared_ptr<HostBuffer>(
      new HostBuffer(data, bytes, mapped, std::move(budget), budget_holders));
}

HostBuffer::~HostBuffer() {
  // A buffer that dies before every holder finished (its group failed or was cancelled
  // before delivery) returns its reservation here.
  if (budget_holders_.load(std::memory_order_acquire) > 0) budget_->Release(bytes_);
  if (mapped_) {
    ::munmap(data_, bytes_);
  } else {
    std::free(data_);
  }
}

void HostBuffer::ReleaseBudget() {
  if (budget_holders_.fetch_sub(1, std::memory_order_acq_rel) == 1) budget_->Release(bytes_);
}

}  // namespace tensorstream
