#include "pipeline/pinned_cache.h"

#include <cstdlib>
#include <string>

#include "common/text.h"

namespace tensorstream {

PinnedCache::PinnedCache(std::shared_ptr<CudaApi> cuda, uint64_t retain_bytes)
    : cuda_(std::move(cuda)), retain_bytes_(retain_bytes) {}

PinnedCache::~PinnedCache() {
  for (auto& [key, slots] : kept_) {
    for (void* slot : slots) cuda_->HostFreePinned(slot);
  }
}

Result<void*> PinnedCache::Acquire(int device, uint64_t bytes) {
  {
    std::lock_guard lock(mu_);
    auto found = kept_.find({device, bytes});
    if (found != kept_.end() && !found->second.empty()) {
      void* slot = found->second.back();
      found->second.pop_back();
      kept_bytes_ -= bytes;
      return slot;
    }
  }
  // Outside the lock: pinning takes long, and other streams may be giving slots back.
  TS_RETURN_IF_ERROR(cuda_->SetDevice(device));
  return cuda_->HostAllocPinned(bytes);
}

void PinnedCache::Release(int device, uint64_t bytes, void* slot) {
  {
    std::lock_guard lock(mu_);
    if (kept_bytes_ + bytes <= retain_bytes_) {
      kept_[{device, bytes}].push_back(slot);
      kept_bytes_ += bytes;
      return;
    }
  }
  cuda_->HostFreePinned(slot);
}

uint64_t PinnedCache::kept_bytes() const {
  std::lock_guard lock(mu_);
  return kept_bytes_;
}

Result<std::shared_ptr<PinnedCache>> PinnedCache::ForRuntime(
    const std::shared_ptr<CudaApi>& runtime) {
  static std::mutex mu;
  // Never destroyed (see the header): a leaked pointer, not a static object.
  static auto* caches = new std::map<const CudaApi*, std::shared_ptr<PinnedCache>>();
  std::lock_guard lock(mu);
  std::shared_ptr<PinnedCache>& cache = (*caches)[runtime.get()];
  if (cache == nullptr) {
    int64_t retain = int64_t{1} << 30;
    if (const char* text = std::getenv("TENSORSTREAM_PINNED_CACHE_BYTES");
        text != nullptr && *text != '\0' && (!ParseInt64(text, &retain) || retain < 0)) {
      return InvalidArgument(std::string("TENSORSTREAM_PINNED_CACHE_BYTES=") + Quoted(text) +
                             ": use a number of bytes (0 keeps no pinned memory between streams)");
    }
    cache = std::make_shared<PinnedCache>(runtime, static_cast<uint64_t>(retain));
  }
  return cache;
}

}  // namespace tensorstream
