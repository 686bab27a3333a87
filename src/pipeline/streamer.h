// Streamer: the pipeline that turns a list of files into completed tensors.
//
//   AddSafetensorsFile/AddRanges ─► Select ─► Start ─► Next … Next ─► (end)
//        parse headers              filter     plan + reader threads   completion order
//
// Threading: one consumer thread calls every method except Cancel(), which any thread
// may call. A stream belongs to the process that created it: after fork() the child's
// copy has no reader threads, so its Start/Next fail at once (see forked()). Start() launches
// `concurrency` reader threads that take chunks in plan order, acquire each group's buffer from
// HostMemory (within the limit) before its first read, read, and push a group's tensors to the
// completion queue when its last chunk lands. Destruction cancels and joins the readers; it returns
// once in-progress reads finish.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cuda/cuda_api.h"
#include "pipeline/device_staging.h"
#include "pipeline/device_transfer.h"
#include "pipeline/host_memory.h"
#include "pipeline/mapped_copy.h"
#include "pipeline/options.h"
#include "pipeline/plan.h"
#include "storage/source.h"

namespace tensorstream {

// A tensor whose bytes are complete in host memory (a share of its group's HostBuffer, or
// a view of a file mapping that `owner` keeps alive) or in device memory (the caller's
// destination, or memory the stream allocated, which `owner` frees). The data pointer is
// valid as long as this object. The host bytes lie in a block of memory (the group's
// buffer, or the file's mapping) that bindings may wrap once for many tensors.
class DeliveredTensor {
 public:
  struct Block {
    const char* data = nullptr;  // null for device tensors
    uint64_t bytes = 0;
  };

  DeliveredTensor(std::shared_ptr<const Plan> plan, size_t item, std::shared_ptr<HostBuffer> buffer,
                  const void* data, Block block, std::shared_ptr<const void> owner = nullptr,
                  int device = -1)
      : plan_(std::move(plan)),
        item_(item),
        buffer_(std::move(buffer)),
        data_(data),
        block_(block),
        owner_(std::move(owner)),
        device_(device) {}
  ~DeliveredTensor() {
    if (!done_ && buffer_) buffer_->HolderDone(/*kept=*/false);
  }
  DeliveredTensor(const DeliveredTensor&) = delete;
  DeliveredTensor& operator=(const DeliveredTensor&) = delete;

  const Item& item() const { return plan_->items[item_]; }
  size_t plan_index() const { return item_; }
  int device() const { return device_; }  // -1: host memory
  const void* data() const { return data_; }
  const Block& block() const { return block_; }

  // The caller keeps these bytes beyond the stream: they stop counting against the
  // memory limit once the group's other tensors are done too (idempotent).
  void Keep() {
    if (!done_ && buffer_) buffer_->HolderDone(/*kept=*/true);
    done_ = true;
  }

 private:
  std::shared_ptr<const Plan> plan_;
  size_t item_;
  std::shared_ptr<HostBuffer> buffer_;  // null for mapped and device tensors
  const void* data_;
  Block block_;
  std::shared_ptr<const void> owner_;
  int device_;
  bool done_ = false;
};

struct StreamFile {
  std::string uri;
  std::unique_ptr<Source> source;
  std::vector<Item> items;   // every tensor / range of the file, sorted by offset
  uint64_t data_offset = 0;  // SafeTensors: where the data section starts (8 + header)
  std::string metadata_json = "{}";
  std::vector<size_t> selection;    // indices into items; all of them unless Select()ed
  std::vector<void*> destinations;  // device mode: caller's device memory per item, or null
  std::shared_ptr<const FileMapping> mapping;  // set by Start() when tensors are views of it
};

class Streamer {
 public:
  explicit Streamer(StreamOptions options);
  ~Streamer();
  Streamer(const Streamer&) = delete;
  Streamer& operator=(const Streamer&) = delete;

  // Opens the file and parses its SafeTensors header; returns the file index.
  Result<size_t> AddSafetensorsFile(const std::string& uri);
  // Raw ranges of any file: range i is [offsets[i], offsets[i] + sizes[i]), delivered as a
  // U8 item named by its position i ("0", "1", …). Ranges may overlap and come in any
  // order (items are kept sorted by offset, so an item's index is not its position).
  Result<size_t> AddRanges(const std::string& uri, const std::vector<uint64_t>& offsets,
                           const std::vector<uint64_t>& sizes);
  // Bytes [begin, min(begin + max_bytes, file size)) of a file as consecutive ranges of
  // `piece_bytes` (0: the storage's preferred read size), opening it once; the file's
  // size is then file(index).source->Size().
  Result<size_t> AddFileWindow(const std::string& uri, uint64_t begin, uint64_t max_bytes,
                               uint64_t piece_bytes);
  // Only the named tensors of a file are read. NotFound for an unknown name.
  Status Select(size_t file_index, const std::vector<std::string>& names);

  // Device mode: the bytes of tensor `tensor_index` go to `device_ptr` (caller-owned
  // device memory of the tensor's size, on the stream's device). Tensors without one get
  // memory the stream allocates, freed when the delivered tensor is released.
  Status SetDestination(size_t file_index, size_t tensor_index, void* device_ptr);

  size_t file_count() const { return files_.size(); }
  const StreamFile& file(size_t index) const { return files_[index]; }

  // Plans and starts reading. MemoryLimit error (before any read) if the limit is below
  // the largest selected tensor.
  Status Start();
  // The next completed tensor; nullptr once all were delivered; the stream's error.
  Result<std::unique_ptr<DeliveredTensor>> Next();
  // Blocks until some tensor is complete (or `timeout_ms` passed, when >= 0), then appends
  // to `out` up to `max` completed tensors without waiting for more. Returns how many: 0
  // once all were delivered (see ended()) or when the timeout passed; the stream's error
  // as Next() does. REQUIRES: max > 0.
  Result<size_t> NextBatch(size_t max, std::vector<std::unique_ptr<DeliveredTensor>>* out,
                           int64_t timeout_ms = -1);
  // Every tensor was handed out.
  bool ended() const;
  void Cancel();

  // This object was copied into a child by fork(): its threads and locks belong to the
  // parent, so nothing may be done with it but leaking it.
  bool forked() const;

  // GPU streams, once started: the strategy in use (kStaging or kRegister, never kAuto)
  // and why, e.g. "auto: 97 % of the selected bytes are in the page cache".
  GpuStrategy gpu_strategy() const { return gpu_strategy_; }
  const std::string& gpu_strategy_reason() const { return gpu_strategy_reason_; }

  uint64_t bytes_read() const { return bytes_read_.load(std::memory_order_relaxed); }
  uint64_t peak_reserved_bytes() const { return (memory_ ? memory_->peak() : 0) + staging_bytes_; }

 private:
  struct GroupState {
    std::shared_ptr<HostBuffer> buffer;
    std::atomic<uint32_t> chunks_left{0};
    uint32_t items_untaken = 0;  // guarded by queue_mu_
    // Device mode: whether the group's stream-allocated device memory exists, and how
    // many bytes of it count as ahead of the consumer (both guarded by queue_mu_).
    bool device_claimed = false;
    std::atomic<bool> device_ready{false};
    uint64_t device_bytes = 0;
  };
  struct ChunkTask {
    uint32_t chunk = 0;
    char* dst = nullptr;
  };

  Result<size_t> AddRangesOf(const std::string& uri, std::unique_ptr<Source> source,
                             const std::vector<uint64_t>& offsets,
                             const std::vector<uint64_t>& sizes);
  Result<size_t> AddFile(const std::string& uri, std::unique_ptr<Source> source,
                         std::vector<Item> items, std::string metadata_json);
  Status PlanAndLaunch();
  // Device mode: loads CUDA, chooses the strategy, plans, prepares destinations and each
  // reader's DeviceTransfer.
  Status StartDevice(std::vector<Item> items, std::vector<FilePlanInput>& inputs);
  // Sets gpu_strategy_ and its reason from the option, the files and the runtime (see
  // GpuStrategy). For kRegister, returns every file's shared mapping; empty for kStaging.
  std::vector<std::shared_ptr<const FileMapping>> ChooseGpuStrategy();
  // Device mode: sizes the staging to the memory limit (adjusting the files' chunk sizes);
  // returns the number of readers.
  Result<size_t> PlanDeviceStaging(std::vector<FilePlanInput>& inputs);
  // The same for the register strategy: chunks of at most one window, windows within the
  // memory limit. Returns the number of readers.
  Result<size_t> PlanMappedCopies(std::vector<FilePlanInput>& inputs);
  // Device mode: each reader's transfer, for the chosen strategy.
  Status CreateStaging(size_t readers);
  Status CreateMappedCopies(std::vector<std::shared_ptr<const FileMapping>> mappings,
                            size_t readers);
  Status LaunchReaders(size_t readers);
  void HostReaderLoop();
  void DeviceReaderLoop(DeviceTransfer& transfer);
  // Device mode: makes sure group `g` has device memory for the tensors that have no
  // caller destination, allocating it (within device_window_) if this reader is the
  // first to need it, waiting for the reader that is otherwise. Before waiting, the
  // reader reports every chunk in its staging (`flush`): a chunk held back while its
  // reader waits could be what completes the group the window waits for.
  Status EnsureDeviceMemory(uint32_t g, const std::function<Status()>& flush);
  // "uri: tensor 'name'" for the tensors that chunk `chunk` carries, for error messages.
  std::string DescribeChunk(uint32_t chunk) const;
  // Hands out the next chunk in plan order, reserving and allocating its group's buffer
  // first when it is the group's first chunk. False when nothing is left or stopping.
  bool TakeChunk(ChunkTask* task);
  // Blocks while group `g` would put the readers more than the window ahead of the
  // consumer, then counts it as ahead. False when cancelled.
  bool WaitForReadAhead(uint32_t g);
  void FinishChunk(uint32_t chunk);
  void DeliverGroup(uint32_t group);
  void Fail(const Status& status);
  void SetMemory(std::shared_ptr<HostMemory> memory);

  // A failure naming this process and the one that created the stream, when they differ.
  Status CheckProcess() const;

  const StreamOptions options_;
  const pid_t creator_pid_;
  std::vector<StreamFile> files_;
  bool started_ = false;

  std::shared_ptr<const Plan> plan_;
  std::unique_ptr<GroupState[]> groups_;
  std::shared_ptr<HostMemory> memory_;  // created by Start()
  // Device mode only: the runtime, the strategy, one transfer per reader (and, for the
  // register strategy, the windows they copy from; set under queue_mu_), and the
  // destination of every plan item (with its owner when the stream allocated it).
  std::shared_ptr<CudaApi> cuda_;
  GpuStrategy gpu_strategy_ = GpuStrategy::kStaging;
  std::string gpu_strategy_reason_;
  std::vector<std::unique_ptr<DeviceTransfer>> transfers_;
  std::shared_ptr<WindowRegistry> registry_;
  std::vector<void*> item_destinations_;
  std::vector<std::shared_ptr<void>> item_owners_;
  // Device memory the stream allocated and has not delivered yet, and its limit
  // (StreamOptions::device_memory_limit); guarded by queue_mu_, waited for on taken_cv_.
  uint64_t device_ahead_bytes_ = 0;
  uint64_t device_window_ = 0;
  uint64_t staging_slot_bytes_ = 0;
  uint64_t window_bytes_ = 0;  // register strategy: bytes of one window
  // Pinned host memory: the readers' staging slots, or the windows registered at most.
  uint64_t staging_bytes_ = 0;
  std::atomic<bool> cancelled_{false};
  std::atomic<uint64_t> bytes_read_{0};
  std::vector<std::thread> readers_;

  // Plan cursor, guarded by schedule_mu_.
  std::mutex schedule_mu_;
  uint32_t next_group_ = 0;
  uint32_t next_chunk_in_group_ = 0;

  // Completion queue, guarded by queue_mu_.
  mutable std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<std::unique_ptr<DeliveredTensor>> completed_;
  Status error_;  // first error, or Cancelled
  // Without a memory limit, readers still stay at most read_ahead_window_ bytes of groups
  // ahead of what the consumer has taken (0: no window): reading further ahead cannot
  // speed the consumer up, and staying close lets released buffers be reused.
  uint64_t read_ahead_window_ = 0;
  uint64_t ahead_bytes_ = 0;  // bytes of groups acquired with tensors not all taken
  std::condition_variable taken_cv_;
  size_t delivered_ = 0;
  size_t total_items_ = 0;
};

}  // namespace tensorstream
