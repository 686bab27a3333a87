// DeviceTransfer: how one reader thread of a GPU stream moves its chunks into device
// memory. Two strategies implement it (see GpuStrategy in options.h):
//   DeviceStaging (device_staging.h)  reads each chunk into a pinned slot, copies from it;
//   MappedCopy (mapped_copy.h)        copies straight from registered windows of a
//                                     read-only mapping of the file.
// The reader loop (Streamer::DeviceReaderLoop) is the same for both:
//
//   Load(chunk) ─► Copy(part of item) … Copy ─► Submit(chunk) ─► … ─► Drain
//
// Copies are asynchronous. A chunk is reported finished (appended to `finished` by Load
// or Drain) only once its copies completed on the device, so a tensor is delivered only
// when its bytes are there, and host memory a copy reads from is reused or unregistered
// only after that copy.
//
// Threading: one DeviceTransfer belongs to one reader thread.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "common/status.h"
#include "pipeline/plan.h"
#include "storage/source.h"

namespace tensorstream {

class DeviceTransfer {
 public:
  virtual ~DeviceTransfer() = default;

  // Makes chunk `index` (`chunk`, of `file` read through `source`) ready to copy from, and
  // appends chunks whose copies completed meanwhile to `finished`. Before blocking on
  // something that other readers free, calls `flush` (which drains this transfer and
  // reports what finished): a chunk held back while its reader waits could be the one
  // whose completion the wait needs.
  virtual Status Load(uint32_t index, const Chunk& chunk, size_t file, Source& source,
                      std::vector<uint32_t>* finished, const std::function<Status()>& flush) = 0;

  // Queues the copy of the loaded chunk's file bytes [offset, offset + bytes) to
  // `device_dst`. REQUIRES: the range lies within the chunk.
  virtual Status Copy(void* device_dst, uint64_t offset, uint64_t bytes) = 0;

  // Marks the copies queued since Load as chunk `index`'s.
  virtual Status Submit(uint32_t index) = 0;

  // Waits for every chunk in flight and appends them to `finished`.
  virtual Status Drain(std::vector<uint32_t>* finished) = 0;

  // The chunk that the error of the last failed Load or Drain concerns (the current one,
  // or an earlier one whose copies failed), for the error message.
  virtual uint32_t failed_chunk() const = 0;
};

}  // namespace tensorstream
