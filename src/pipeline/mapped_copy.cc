#include "pipeline/mapped_copy.h"

#include <unistd.h>

#include <algorithm>

namespace tensorstream {

WindowRegistry::WindowRegistry(std::shared_ptr<CudaApi> cuda, int device,
                               std::vector<std::shared_ptr<const FileMapping>> mappings,
                               std::vector<std::string> uris, const Plan& plan,
                               uint64_t window_bytes)
    : cuda_(std::move(cuda)),
      device_(device),
      mappings_(std::move(mappings)),
      uris_(std::move(uris)),
      page_(static_cast<uint64_t>(::sysconf(_SC_PAGESIZE))) {
  const uint64_t size = (window_bytes + page_ - 1) / page_ * page_;
  chunk_windows_.resize(plan.chunks.size());
  for (size_t c = 0; c < plan.chunks.size(); ++c) {
    const Chunk& chunk = plan.chunks[c];
    const size_t file = plan.groups[chunk.group].file_index;
    const uint64_t first = chunk.offset / size;
    const uint64_t last = (chunk.offset + chunk.length - 1) / size;
    for (uint64_t k = first; k <= last; ++k) {
      // Chunks come in file order and, within a file, in offset order: a window already
      // used by the previous chunk is the last one listed.
      if (windows_.empty() || windows_.back().file != file || windows_.back().begin != k * size) {
        const uint64_t end = std::min((k + 1) * size, mappings_[file]->size());
        windows_.push_back({file, k * size, end});
        uses_left_.push_back(0);
      }
      ++uses_left_.back();
      if (k == first) chunk_windows_[c].first = static_cast<uint32_t>(windows_.size() - 1);
      ++chunk_windows_[c].count;
    }
  }
  states_.assign(windows_.size(), State::kWaiting);
  registrar_ = std::thread([this] { Register(); });
}

WindowRegistry::~WindowRegistry() {
  Cancel();
  registrar_.join();
  for (size_t p = 0; p < windows_.size(); ++p) {
    // Unregistering fails only for a range that is not registered: nothing to undo then.
    if (states_[p] == State::kRegistered)
      (void)cuda_->HostUnregister(Address(p, windows_[p].begin));
  }
}

void WindowRegistry::Cancel() {
  {
    std::lock_guard lock(mu_);
    cancelled_ = true;
  }
  cv_.notify_all();
}

void WindowRegistry::Register() {
  Status status = cuda_->SetDevice(device_);
  for (uint32_t p = 0; p < windows_.size() && status.ok(); ++p) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return cancelled_ || registered_ < kMaxRegistered; });
      if (cancelled_) return;
      ++registered_;
    }
    const Window& w = windows_[p];
    // The last window of a file ends with the file; registration covers its whole last
    // page, which the mapping includes.
    const uint64_t bytes = (w.end - w.begin + page_ - 1) / page_ * page_;
    status =
        cuda_->HostRegisterReadOnly(Address(p, w.begin), bytes)
            .WithContext(uris_[w.file] + ": cannot register bytes [" + std::to_string(w.begin) +
                         ", " + std::to_string(w.end) + ") of its mapping");
    {
      std::lock_guard lock(mu_);
      if (status.ok()) {
        states_[p] = State::kRegistered;
      } else {
        --registered_;
      }
    }
    cv_.notify_all();
  }
  std::lock_guard lock(mu_);
  error_ = status;
  cv_.notify_all();
}

bool WindowRegistry::Registered(uint32_t position) const {
  std::lock_guard lock(mu_);
  return states_[position] == State::kRegistered;
}

Status WindowRegistry::Acquire(uint32_t position) {
  std::unique_lock lock(mu_);
  cv_.wait(lock,
           [&] { return cancelled_ || !error_.ok() || states_[position] != State::kWaiting; });
  if (states_[position] == State::kRegistered) return Status::Ok();
  if (!error_.ok()) return error_;
  return Cancelled("stream cancelled");
}

void WindowRegistry::Release(uint32_t position) {
  {
    std::lock_guard lock(mu_);
    if (--uses_left_[position] > 0) return;
    states_[position] = State::kDone;
  }
  // Every copy from the window completed (the callers waited for their events).
  (void)cuda_->HostUnregister(Address(position, windows_[position].begin));
  {
    std::lock_guard lock(mu_);
    --registered_;
  }
  cv_.notify_all();
}

Result<std::unique_ptr<MappedCopy>> MappedCopy::Create(std::shared_ptr<CudaApi> cuda, int device,
                                                       std::shared_ptr<WindowRegistry> windows) {
  std::unique_ptr<MappedCopy> copy(new MappedCopy(std::move(cuda), std::move(windows)));
  CudaApi& api = *copy->cuda_;
  TS_RETURN_IF_ERROR(api.SetDevice(device));
  TS_ASSIGN_OR_RETURN(copy->stream_, api.StreamCreate());
  for (InFlight& entry : copy->in_flight_) {
    TS_ASSIGN_OR_RETURN(entry.event, api.EventCreate());
  }
  return copy;
}

MappedCopy::~MappedCopy() {
  CudaApi::EventHandle last = in_flight_[0].event;
  if (stream_ != nullptr && last != nullptr && cuda_->EventRecord(last, stream_).ok()) {
    (void)cuda_->EventSynchronize(last);
  }
  for (InFlight& entry : in_flight_) {
    if (entry.event != nullptr) cuda_->EventDestroy(entry.event);
  }
  if (stream_ != nullptr) cuda_->StreamDestroy(stream_);
}

Status MappedCopy::Wait(InFlight& entry, std::vector<uint32_t>* finished) {
  if (!entry.busy) return Status::Ok();
  entry.busy = false;
  const Status status = cuda_->EventSynchronize(entry.event);
  if (!status.ok()) {
    failed_chunk_ = entry.chunk;
    return status;
  }
  for (uint32_t i = 0; i < entry.windows.count; ++i) windows_->Release(entry.windows.first + i);
  finished->push_back(entry.chunk);
  return Status::Ok();
}

Status MappedCopy::Load(uint32_t index, const Chunk& /*chunk*/, size_t /*file*/, Source& /*source*/,
                        std::vector<uint32_t>* finished, const std::function<Status()>& flush) {
  TS_RETURN_IF_ERROR(Wait(in_flight_[current_], finished));
  failed_chunk_ = index;
  loaded_ = windows_->WindowsOf(index);
  for (uint32_t i = 0; i < loaded_.count; ++i) {
    const uint32_t position = loaded_.first + i;
    if (windows_->Registered(position)) continue;
    // Waiting for the registrar, which may wait for a window that this reader's chunks
    // in flight still use: report them first.
    TS_RETURN_IF_ERROR(flush());
    TS_RETURN_IF_ERROR(windows_->Acquire(position));
  }
  return Status::Ok();
}

Status MappedCopy::Copy(void* device_dst, uint64_t offset, uint64_t bytes) {
  const uint64_t end = offset + bytes;
  for (uint32_t i = 0; i < loaded_.count; ++i) {
    const uint32_t position = loaded_.first + i;
    const WindowRegistry::Window& w = windows_->window(position);
    const uint64_t begin = std::max(offset, w.begin);
    const uint64_t stop = std::min(end, w.end);
    if (begin >= stop) continue;
    TS_RETURN_IF_ERROR(cuda_->CopyToDeviceAsync(static_cast<char*>(device_dst) + (begin - offset),
                                                windows_->Address(position, begin), stop - begin,
                                                stream_));
  }
  return Status::Ok();
}

Status MappedCopy::Submit(uint32_t index) {
  InFlight& entry = in_flight_[current_];
  TS_RETURN_IF_ERROR(cuda_->EventRecord(entry.event, stream_));
  entry.busy = true;
  entry.chunk = index;
  entry.windows = loaded_;
  current_ = (current_ + 1) % kInFlight;
  return Status::Ok();
}

Status MappedCopy::Drain(std::vector<uint32_t>* finished) {
  for (int i = 0; i < kInFlight; ++i) {
    TS_RETURN_IF_ERROR(Wait(in_flight_[(current_ + i) % kInFlight], finished));
  }
  return Status::Ok();
}

}  // namespace tensorstream
