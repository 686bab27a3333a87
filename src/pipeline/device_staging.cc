#include "pipeline/device_staging.h"

namespace tensorstream {

Result<std::unique_ptr<DeviceStaging>> DeviceStaging::Create(std::shared_ptr<CudaApi> cuda,
                                                             std::shared_ptr<PinnedCache> pinned,
                                                             int device, uint64_t slot_bytes,
                                                             const std::atomic<bool>& cancelled) {
  std::unique_ptr<DeviceStaging> staging(
      new DeviceStaging(std::move(cuda), std::move(pinned), device, slot_bytes, cancelled));
  CudaApi& api = *staging->cuda_;
  TS_RETURN_IF_ERROR(api.SetDevice(device));
  TS_ASSIGN_OR_RETURN(staging->stream_, api.StreamCreate());
  for (Slot& slot : staging->slots_) {
    TS_ASSIGN_OR_RETURN(void* host, staging->pinned_->Acquire(device, slot_bytes));
    slot.host = static_cast<char*>(host);
    TS_ASSIGN_OR_RETURN(slot.event, api.EventCreate());
  }
  return staging;
}

DeviceStaging::~DeviceStaging() {
  // Copies still in flight (also after an error) read from the slots: wait for all the
  // stream's work before giving them back.
  if (stream_ != nullptr && slots_[0].event != nullptr &&
      cuda_->EventRecord(slots_[0].event, stream_).ok()) {
    (void)cuda_->EventSynchronize(slots_[0].event);
  }
  for (Slot& slot : slots_) {
    if (slot.event != nullptr) cuda_->EventDestroy(slot.event);
    if (slot.host != nullptr) pinned_->Release(device_, slot_bytes_, slot.host);
  }
  if (stream_ != nullptr) cuda_->StreamDestroy(stream_);
}

Status DeviceStaging::Wait(Slot& slot, std::vector<uint32_t>* finished) {
  if (!slot.busy) return Status::Ok();
  slot.busy = false;
  const Status status = cuda_->EventSynchronize(slot.event);
  if (!status.ok()) {
    failed_chunk_ = slot.chunk;
    return status;
  }
  finished->push_back(slot.chunk);
  return Status::Ok();
}

Status DeviceStaging::Load(uint32_t index, const Chunk& chunk, size_t /*file*/, Source& source,
                           std::vector<uint32_t>* finished,
                           const std::function<Status()>& /*flush*/) {
  Slot& slot = slots_[current_];
  TS_RETURN_IF_ERROR(Wait(slot, finished));  // an earlier chunk's copies failed
  failed_chunk_ = index;
  chunk_offset_ = chunk.offset;
  return source.ReadAt(chunk.offset, chunk.length, slot.host, cancelled_);
}

Status DeviceStaging::Copy(void* device_dst, uint64_t offset, uint64_t bytes) {
  return cuda_->CopyToDeviceAsync(device_dst, slots_[current_].host + (offset - chunk_offset_),
                                  bytes, stream_);
}

Status DeviceStaging::Submit(uint32_t index) {
  Slot& slot = slots_[current_];
  TS_RETURN_IF_ERROR(cuda_->EventRecord(slot.event, stream_));
  slot.busy = true;
  slot.chunk = index;
  current_ = (current_ + 1) % kSlots;
  return Status::Ok();
}

Status DeviceStaging::Drain(std::vector<uint32_t>* finished) {
  for (int i = 0; i < kSlots; ++i) {
    TS_RETURN_IF_ERROR(Wait(slots_[(current_ + i) % kSlots], finished));
  }
  return Status::Ok();
}

}  // namespace tensorstream
