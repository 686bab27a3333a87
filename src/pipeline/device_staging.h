// DeviceStaging: how one reader thread moves chunks into GPU memory.
//
// Each reader owns two pinned host slots and one CUDA stream. It reads a chunk into a
// free slot, queues the asynchronous copies from the slot to the tensors' device
// memory, and records an event; while the copy runs it reads the next chunk into the
// other slot. A slot is reused only after its event completed, and only then is its
// chunk reported finished — so a tensor is complete only when its bytes are on the GPU.
// The slots are borrowed from a PinnedCache at Start and given back when the staging is
// destroyed, so pinned memory is allocated once per process and device, not per stream.
//
// Threading: one DeviceStaging belongs to one reader thread.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "cuda/cuda_api.h"
#include "pipeline/pinned_cache.h"

namespace tensorstream {

class DeviceStaging {
 public:
  static constexpr int kSlots = 2;

  // Borrows the slots (pinned, `slot_bytes` each) from `pinned`; creates the stream and
  // the events.
  static Result<std::unique_ptr<DeviceStaging>> Create(std::shared_ptr<CudaApi> cuda,
                                                       std::shared_ptr<PinnedCache> pinned,
                                                       int device, uint64_t slot_bytes);
  ~DeviceStaging();

  // A slot to read the next chunk into. If the slot still held a chunk in flight, waits
  // for its copies and appends that chunk to `finished`.
  Result<char*> NextSlot(std::vector<uint32_t>* finished);

  // Queues a copy of `bytes` at `offset` of the current slot to `device_dst`.
  Status Copy(void* device_dst, uint64_t offset, uint64_t bytes);

  // Marks the current slot's copies as the chunk `chunk`; the next NextSlot uses the other.
  Status Submit(uint32_t chunk);

  // Waits for every chunk in flight and appends them to `finished`.
  Status Drain(std::vector<uint32_t>* finished);

  // The chunk whose copies failed, after NextSlot or Drain returned an error.
  uint32_t failed_chunk() const { return failed_chunk_; }

 private:
  struct Slot {
    char* host = nullptr;
    CudaApi::EventHandle event = nullptr;
    bool busy = false;
    uint32_t chunk = 0;
  };
  DeviceStaging(std::shared_ptr<CudaApi> cuda, std::shared_ptr<PinnedCache> pinned, int device,
                uint64_t slot_bytes)
      : cuda_(std::move(cuda)),
        pinned_(std::move(pinned)),
        device_(device),
        slot_bytes_(slot_bytes) {}
  Status Wait(Slot& slot, std::vector<uint32_t>* finished);

  const std::shared_ptr<CudaApi> cuda_;
  const std::shared_ptr<PinnedCache> pinned_;
  const int device_;
  const uint64_t slot_bytes_;
  CudaApi::StreamHandle stream_ = nullptr;
  Slot slots_[kSlots];
  int current_ = 0;
  uint32_t failed_chunk_ = 0;
};

}  // namespace tensorstream
