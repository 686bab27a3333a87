// The register strategy of a GPU stream (GpuStrategy::kRegister): copies go straight from
// the page cache to device memory, with no read into a pinned slot.
//
// Each file is mapped read-only and shared (Source::MapShared), and the mapping is
// registered with the CUDA runtime piece by piece, in windows: copies from a registered
// range run at bus speed (55 GB/s on an H200, against 38 GB/s for 16 threads of pread
// into pinned slots), but registering costs ~23 ms per GiB, so it must overlap the copies.
//
// WindowRegistry (one per stream) owns the windows. A window is a fixed, page-aligned
// slice [k × window_bytes, (k + 1) × window_bytes) of one file's mapping, so no two
// registrations ever overlap (CUDA refuses overlapping ones). Only windows that selected
// bytes fall in exist. From the plan it knows, before any read, the order in which the
// readers will need the windows (chunks are taken in plan order, and within a file their
// offsets only grow: the Streamer uses this strategy only for files without overlapping
// ranges) and how many chunks use each one. A registrar thread registers the windows in
// that order, at most kMaxRegistered at once, so window k + 1 is registered while the
// readers copy from window k. Each chunk's completed copies count one use off the
// windows it spans; the window is unregistered after its last use, which frees a place
// for the next one.
//
// A chunk may cross a window boundary (tensors are not aligned to windows): its copies
// are split at the boundary, each part copied from its own window, because one copy
// should not span two registrations. Chunks are at most one window long, so a chunk spans
// at most two windows; with kMaxRegistered >= 2 the window a reader waits for is always
// registered eventually: every chunk taken before it needs only windows at or before its
// own, which are registered or done.
//
// MappedCopy (one per reader) is the DeviceTransfer: it waits for the chunk's windows,
// queues the copies on its own CUDA stream and records an event per chunk; once the
// event completed, it returns the chunk's uses of its windows to the registry. So a
// window is unregistered only after every copy from it completed.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cuda/cuda_api.h"
#include "pipeline/device_transfer.h"
#include "pipeline/plan.h"
#include "storage/source.h"

namespace tensorstream {

class WindowRegistry {
 public:
  // Windows registered at once, at most (registering included).
  static constexpr size_t kMaxRegistered = 4;

  struct Window {
    size_t file = 0;
    uint64_t begin = 0;  // file offsets; begin is a multiple of the window size
    uint64_t end = 0;
  };

  // The windows of `plan`'s chunks over `mappings` (file index → its shared mapping, which
  // the registry keeps alive), `window_bytes` each (rounded up to the page size), and
  // starts registering them, on `device`, in the order the chunks need them.
  // REQUIRES: every chunk is at most `window_bytes` long; within each file, a chunk
  // never starts before the previous chunk ends. `uris` name the files in errors.
  WindowRegistry(std::shared_ptr<CudaApi> cuda, int device,
                 std::vector<std::shared_ptr<const FileMapping>> mappings,
                 std::vector<std::string> uris, const Plan& plan, uint64_t window_bytes);
  // Stops registering and unregisters the windows still registered.
  // REQUIRES: no copy from a window is still pending (the MappedCopy objects, which
  // keep the registry alive, waited for theirs).
  ~WindowRegistry();
  WindowRegistry(const WindowRegistry&) = delete;
  WindowRegistry& operator=(const WindowRegistry&) = delete;

  // Wakes every Acquire with Cancelled and stops registering. Any thread.
  void Cancel();

  // The windows chunk `chunk` spans: positions first, first + 1, … first + count - 1.
  struct Span {
    uint32_t first = 0;
    uint32_t count = 0;
  };
  Span WindowsOf(uint32_t chunk) const { return chunk_windows_[chunk]; }
  const Window& window(uint32_t position) const { return windows_[position]; }
  // The address of file offset `offset` of window `position`'s file in its mapping.
  const char* Address(uint32_t position, uint64_t offset) const {
    return mappings_[windows_[position].file]->data() + offset;
  }

  // Whether window `position` is registered (an Acquire of it would not block).
  bool Registered(uint32_t position) const;
  // Blocks until window `position` is registered; the error that stopped registration
  // (naming the file and the byte range), or Cancelled.
  Status Acquire(uint32_t position);
  // One chunk's copies from window `position` completed: after its last use, the window
  // is unregistered (on the calling thread) and the next one can be registered.
  void Release(uint32_t position);

  size_t window_count() const { return windows_.size(); }

 private:
  enum class State { kWaiting, kRegistered, kDone };
  void Register();  // the registrar thread

  const std::shared_ptr<CudaApi> cuda_;
  const int device_;
  const std::vector<std::shared_ptr<const FileMapping>> mappings_;
  const std::vector<std::string> uris_;
  const uint64_t page_;
  std::vector<Window> windows_;      // in the order the chunks need them
  std::vector<Span> chunk_windows_;  // by chunk index
  std::vector<uint32_t> uses_left_;  // by position: chunks not yet done with it; mu_
  std::vector<State> states_;        // by position; guarded by mu_
  mutable std::mutex mu_;
  std::condition_variable cv_;
  size_t registered_ = 0;   // windows registered or being registered; guarded by mu_
  Status error_;            // the registration failure that stopped the registrar; mu_
  bool cancelled_ = false;  // guarded by mu_
  std::thread registrar_;
};

class MappedCopy final : public DeviceTransfer {
 public:
  // Chunks in flight per reader: they cost no host memory, so more than staging's two.
  static constexpr int kInFlight = 4;

  // Creates the reader's CUDA stream and events on `device`.
  static Result<std::unique_ptr<MappedCopy>> Create(std::shared_ptr<CudaApi> cuda, int device,
                                                    std::shared_ptr<WindowRegistry> windows);
  // Waits for the copies still in flight (also after an error). Their windows' uses are
  // not returned: the registry unregisters whatever is left when it is destroyed.
  ~MappedCopy() override;

  // Waits until the chunk's windows are registered (calling `flush` first if it must wait).
  Status Load(uint32_t index, const Chunk& chunk, size_t file, Source& source,
              std::vector<uint32_t>* finished, const std::function<Status()>& flush) override;
  // Split at window boundaries: one asynchronous copy per window the range falls in.
  Status Copy(void* device_dst, uint64_t offset, uint64_t bytes) override;
  Status Submit(uint32_t index) override;
  Status Drain(std::vector<uint32_t>* finished) override;
  uint32_t failed_chunk() const override { return failed_chunk_; }

 private:
  struct InFlight {
    CudaApi::EventHandle event = nullptr;
    bool busy = false;
    uint32_t chunk = 0;
    WindowRegistry::Span windows;
  };
  MappedCopy(std::shared_ptr<CudaApi> cuda, std::shared_ptr<WindowRegistry> windows)
      : cuda_(std::move(cuda)), windows_(std::move(windows)) {}
  // Waits for `entry`'s copies; then its chunk is finished and its windows' uses returned.
  Status Wait(InFlight& entry, std::vector<uint32_t>* finished);

  const std::shared_ptr<CudaApi> cuda_;
  const std::shared_ptr<WindowRegistry> windows_;
  CudaApi::StreamHandle stream_ = nullptr;
  InFlight in_flight_[kInFlight];
  int current_ = 0;
  WindowRegistry::Span loaded_;  // the windows of the chunk being copied
  uint32_t failed_chunk_ = 0;
};

}  // namespace tensorstream
