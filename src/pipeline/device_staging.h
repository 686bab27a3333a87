// DeviceStaging: the staging strategy of a GPU stream's reader (a DeviceTransfer).
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

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "cuda/cuda_api.h"
#include "pipeline/device_transfer.h"
#include "pipeline/pinned_cache.h"

namespace tensorstream {

class DeviceStaging final : public DeviceTransfer {
 public:
  static constexpr int kSlots = 2;

  // Borrows the slots (pinned, `slot_bytes` each) from `pinned`; creates the stream and
  // the events. Reads stop early once `cancelled` (the stream's flag, which outlives
  // this object) becomes true.
  static Result<std::unique_ptr<DeviceStaging>> Create(std::shared_ptr<CudaApi> cuda,
                                                       std::shared_ptr<PinnedCache> pinned,
                                                       int device, uint64_t slot_bytes,
                                                       const std::atomic<bool>& cancelled);
  // Waits for the copies still in flight (also after an error), then gives the slots back.
  ~DeviceStaging() override;

  // Reads the chunk into the next slot, first waiting for that slot's earlier copies
  // (which no other reader holds up: `flush` is not needed).
  Status Load(uint32_t index, const Chunk& chunk, size_t file, Source& source,
              std::vector<uint32_t>* finished, const std::function<Status()>& flush) override;
  Status Copy(void* device_dst, uint64_t offset, uint64_t bytes) override;
  Status Submit(uint32_t index) override;
  Status Drain(std::vector<uint32_t>* finished) override;
  uint32_t failed_chunk() const override { return failed_chunk_; }

 private:
  struct Slot {
    char* host = nullptr;
    CudaApi::EventHandle event = nullptr;
    bool busy = false;
    uint32_t chunk = 0;
  };
  DeviceStaging(std::shared_ptr<CudaApi> cuda, std::shared_ptr<PinnedCache> pinned, int device,
                uint64_t slot_bytes, const std::atomic<bool>& cancelled)
      : cuda_(std::move(cuda)),
        pinned_(std::move(pinned)),
        device_(device),
        slot_bytes_(slot_bytes),
        cancelled_(cancelled) {}
  Status Wait(Slot& slot, std::vector<uint32_t>* finished);

  const std::shared_ptr<CudaApi> cuda_;
  const std::shared_ptr<PinnedCache> pinned_;
  const int device_;
  const uint64_t slot_bytes_;
  const std::atomic<bool>& cancelled_;
  CudaApi::StreamHandle stream_ = nullptr;
  Slot slots_[kSlots];
  int current_ = 0;
  uint64_t chunk_offset_ = 0;  // file offset of the current slot's first byte
  uint32_t failed_chunk_ = 0;
};

}  // namespace tensorstream
