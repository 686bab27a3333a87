// PinnedCache: page-locked host slots kept between streams, so that a process pins its
// staging memory once per device instead of once per stream.
//
// Pinning is slow (cudaHostAlloc maps and locks every page: tens of milliseconds per
// hundred MiB) and serving code creates many streams, one per load or per request.
// Each GPU stream borrows its readers' slots here at Start and gives them back when it
// is destroyed; a slot given back is kept for the next stream that asks for the same
// size on the same device, up to `retain_bytes` in all, and freed beyond that.
// A stream's staging is still planned within its memory limit (Streamer::
// PlanDeviceStaging); what the cache keeps between streams is the largest staging the
// process used at once, capped by `retain_bytes`.
//
// The process's cache for the real CUDA runtime (ForRuntime) lives as long as the
// process: its slots are released by the process's exit, never by a destructor that
// could run after the runtime shut down. Caches of tests' fake runtimes are ordinary
// objects.
//
// Threading: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "cuda/cuda_api.h"

namespace tensorstream {

class PinnedCache {
 public:
  PinnedCache(std::shared_ptr<CudaApi> cuda, uint64_t retain_bytes);
  // Frees the slots it keeps; every slot lent out must have been given back.
  ~PinnedCache();
  PinnedCache(const PinnedCache&) = delete;
  PinnedCache& operator=(const PinnedCache&) = delete;

  // A slot of `bytes` for `device`: a kept one, or a new allocation (made with `device`
  // current on the calling thread).
  Result<void*> Acquire(int device, uint64_t bytes);
  // Gives a slot back. No copy may still be reading from it.
  void Release(int device, uint64_t bytes, void* slot);

  uint64_t kept_bytes() const;

  // The process's cache for `runtime`, the one LoadCudaRuntime returns; keeps up to
  // TENSORSTREAM_PINNED_CACHE_BYTES (read when it is first needed; default 1 GiB, 0 keeps
  // nothing). InvalidArgument naming the variable for a value that is not a byte count.
  static Result<std::shared_ptr<PinnedCache>> ForRuntime(const std::shared_ptr<CudaApi>& runtime);

 private:
  const std::shared_ptr<CudaApi> cuda_;
  const uint64_t retain_bytes_;
  mutable std::mutex mu_;
  std::map<std::pair<int, uint64_t>, std::vector<void*>> kept_;  // (device, bytes) → slots
  uint64_t kept_bytes_ = 0;
};

}  // namespace tensorstream
