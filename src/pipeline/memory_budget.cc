#include "pipeline/memory_budget.h"

#include <algorithm>

namespace tensorstream {

bool MemoryBudget::Reserve(uint64_t bytes) {
  std::unique_lock lock(mu_);
  released_.wait(lock, [&] {
    return cancelled_ || limit_ < 0 || reserved_ + bytes <= static_cast<uint64_t>(limit_);
  });
  if (cancelled_) return false;
  reserved_ += bytes;
  peak_ = std::max(peak_, reserved_);
  return true;
}

void MemoryBudget::Release(uint64_t bytes) {
  {
    std::lock_guard lock(mu_);
    reserved_ -= bytes;
  }
  released_.notify_all();
}

void MemoryBudget::Cancel() {
  {
    std::lock_guard lock(mu_);
    cancelled_ = true;
  }
  released_.notify_all();
}

uint64_t MemoryBudget::reserved() const {
  std::lock_guard lock(mu_);
  return reserved_;
}

uint64_t MemoryBudget::peak() const {
  std::lock_guard lock(mu_);
  return peak_;
}

}  // namespace tensorstream
