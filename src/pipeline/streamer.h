// Streamer: the pipeline that turns a list of files into completed tensors.
//
//   AddSafetensorsFile/AddRanges ─► Select ─► Start ─► Next … Next ─► (end)
//        parse headers              filter     plan + reader threads   completion order
//
// Threading: one consumer thread calls every method except Cancel(), which any thread
// may call. Start() launches `concurrency` reader threads that take chunks in plan
// order, acquire each group's buffer from HostMemory (within the limit) before its first read, read,
// and push a group's tensors to the completion queue when its last chunk lands.
// Destruction cancels and joins the readers; it returns once in-progress reads finish.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "pipeline/host_memory.h"
#include "pipeline/options.h"
#include "pipeline/plan.h"
#include "storage/source.h"

namespace tensorstream {

// A tensor whose bytes are complete in host memory. Owns a share of the buffer it lives
// in; the data pointer is valid as long as this object.
class DeliveredTensor {
 public:
  DeliveredTensor(std::shared_ptr<const Plan> plan, size_t item,
                  std::shared_ptr<HostBuffer> buffer, const char* data)
      : plan_(std::move(plan)), item_(item), buffer_(std::move(buffer)), data_(data) {}
  ~DeliveredTensor() {
    if (!done_) buffer_->HolderDone(/*kept=*/false);
  }
  DeliveredTensor(const DeliveredTensor&) = delete;
  DeliveredTensor& operator=(const DeliveredTensor&) = delete;

  const Item& item() const { return plan_->items[item_]; }
  const void* data() const { return data_; }

  // The caller keeps these bytes beyond the stream: they stop counting against the
  // memory limit once the group's other tensors are done too (idempotent).
  void Keep() {
    if (!done_) {
      done_ = true;
      buffer_->HolderDone(/*kept=*/true);
    }
  }

 private:
  std::shared_ptr<const Plan> plan_;
  size_t item_;
  std::shared_ptr<HostBuffer> buffer_;
  const char* data_;
  bool done_ = false;
};

struct StreamFile {
  std::string uri;
  std::unique_ptr<Source> source;
  std::vector<Item> items;        // every tensor / range of the file, sorted by offset
  std::string metadata_json = "{}";
  std::vector<size_t> selection;  // indices into items; all of them unless Select()ed
};

class Streamer {
 public:
  explicit Streamer(StreamOptions options);
  ~Streamer();
  Streamer(const Streamer&) = delete;
  Streamer& operator=(const Streamer&) = delete;

  // Opens the file and parses its SafeTensors header; returns the file index.
  Result<size_t> AddSafetensorsFile(const std::string& uri);
  // Raw ranges [offset, offset+sizes[0]), then the next, … delivered as U8 items.
  Result<size_t> AddRanges(const std::string& uri, uint64_t offset,
                           const std::vector<uint64_t>& sizes);
  // Only the named tensors of a file are read. NotFound for an unknown name.
  Status Select(size_t file_index, const std::vector<std::string>& names);

  size_t file_count() const { return files_.size(); }
  const StreamFile& file(size_t index) const { return files_[index]; }

  // Plans and starts reading. MemoryLimit error (before any read) if the limit is below
  // the largest selected tensor.
  Status Start();
  // The next completed tensor; nullptr once all were delivered; the stream's error.
  Result<std::unique_ptr<DeliveredTensor>> Next();
  void Cancel();

  uint64_t bytes_read() const { return bytes_read_.load(std::memory_order_relaxed); }
  uint64_t peak_reserved_bytes() const { return memory_ ? memory_->peak() : 0; }

 private:
  struct GroupState {
    std::shared_ptr<HostBuffer> buffer;
    std::atomic<uint32_t> chunks_left{0};
  };
  struct ChunkTask {
    uint32_t chunk = 0;
    char* dst = nullptr;
  };

  Result<size_t> AddFile(const std::string& uri, std::unique_ptr<Source> source,
                         std::vector<Item> items, std::string metadata_json);
  void ReaderLoop();
  // Hands out the next chunk in plan order, reserving and allocating its group's buffer
  // first when it is the group's first chunk. False when nothing is left or stopping.
  bool TakeChunk(ChunkTask* task);
  void FinishChunk(uint32_t chunk);
  void DeliverGroup(uint32_t group);
  void Fail(const Status& status);

  const StreamOptions options_;
  std::vector<StreamFile> files_;
  bool started_ = false;

  std::shared_ptr<const Plan> plan_;
  std::unique_ptr<GroupState[]> groups_;
  std::shared_ptr<HostMemory> memory_;  // created by Start()
  std::atomic<bool> cancelled_{false};
  std::atomic<uint64_t> bytes_read_{0};
  std::vector<std::thread> readers_;

  // Plan cursor, guarded by schedule_mu_.
  std::mutex schedule_mu_;
  uint32_t next_group_ = 0;
  uint32_t next_chunk_in_group_ = 0;

  // Completion queue, guarded by queue_mu_.
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<std::unique_ptr<DeliveredTensor>> completed_;
  Status error_;  // first error, or Cancelled
  size_t delivered_ = 0;
  size_t total_items_ = 0;
};

}  // namespace tensorstream
