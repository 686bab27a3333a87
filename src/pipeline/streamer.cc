#include "pipeline/streamer.h"

#include <unistd.h>

#include <algorithm>

#include "common/text.h"
#include "format/safetensors.h"

namespace tensorstream {

namespace {
constexpr uint64_t kMinBufferAlignment = 64;
constexpr uint64_t kMinReadAheadWindow = 256ull << 20;
// Device memory a GPU stream allocates ahead of its consumer by default.
constexpr uint64_t kDefaultDeviceWindow = 1ull << 30;
// GpuStrategy::kAuto registers when at least this share of the selected bytes is cached.
constexpr double kRegisterResidentShare = 0.9;
}  // namespace

Streamer::Streamer(StreamOptions options)
    : options_(std::move(options)), creator_pid_(::getpid()) {}

bool Streamer::forked() const { return ::getpid() != creator_pid_; }

Status Streamer::CheckProcess() const {
  if (!forked()) return Status::Ok();
  return Status(StatusCode::kFailedPrecondition,
                "this stream was created by process " + std::to_string(creator_pid_) +
                    " and cannot be used in process " + std::to_string(::getpid()) +
                    ", a child made by fork(): create the stream in the child");
}

Streamer::~Streamer() {
  Cancel();
  for (std::thread& reader : readers_) reader.join();
  // Copies may still be in flight from readers that stopped early: the transfers wait
  // for them, and must do so before the destination memory below is freed and before
  // the registry unregisters the windows they copy from.
  transfers_.clear();
  registry_.reset();
}

Result<size_t> Streamer::AddFile(const std::string& uri, std::unique_ptr<Source> source,
                                 std::vector<Item> items, std::string metadata_json) {
  if (started_) return Status(StatusCode::kFailedPrecondition, uri + ": stream already started");
  const size_t index = files_.size();
  StreamFile file;
  file.uri = uri;
  file.source = std::move(source);
  file.items = std::move(items);
  file.metadata_json = std::move(metadata_json);
  file.selection.resize(file.items.size());
  file.destinations.assign(file.items.size(), nullptr);
  for (size_t i = 0; i < file.items.size(); ++i) {
    file.items[i].file_index = index;
    file.items[i].index = i;
    file.selection[i] = i;
  }
  files_.push_back(std::move(file));
  return index;
}

Result<size_t> Streamer::AddSafetensorsFile(const std::string& uri) {
  TS_ASSIGN_OR_RETURN(std::unique_ptr<Source> source, OpenSource(uri, options_.storage));
  TS_ASSIGN_OR_RETURN(SafetensorsHeader header, ReadSafetensorsHeader(*source));
  std::vector<Item> items;
  items.reserve(header.tensors.size());
  for (TensorEntry& t : header.tensors) {
    Item item;
    item.name = std::move(t.name);
    item.dtype = std::move(t.dtype);
    item.shape = std::move(t.shape);
    item.offset = t.offset;
    item.nbytes = t.nbytes;
    items.push_back(std::move(item));
  }
  TS_ASSIGN_OR_RETURN(const size_t index, AddFile(uri, std::move(source), std::move(items),
                                                  std::move(header.metadata_json)));
  files_[index].data_offset = header.data_offset;
  return index;
}

Result<size_t> Streamer::AddRanges(const std::string& uri, const std::vector<uint64_t>& offsets,
                                   const std::vector<uint64_t>& sizes) {
  if (offsets.size() != sizes.size()) {
    return InvalidArgument(uri + ": " + std::to_string(offsets.size()) + " offsets for " +
                           std::to_string(sizes.size()) + " sizes");
  }
  TS_ASSIGN_OR_RETURN(std::unique_ptr<Source> source, OpenSource(uri, options_.storage));
  return AddRangesOf(uri, std::move(source), offsets, sizes);
}

Result<size_t> Streamer::AddFileWindow(const std::string& uri, uint64_t begin, uint64_t max_bytes,
                                       uint64_t piece_bytes) {
  TS_ASSIGN_OR_RETURN(std::unique_ptr<Source> source, OpenSource(uri, options_.storage));
  const uint64_t size = source->Size();
  const uint64_t end = begin + std::min(max_bytes, size - std::min(begin, size));
  const uint64_t piece = piece_bytes != 0 ? piece_bytes : source->PreferredChunkBytes();
  std::vector<uint64_t> offsets;
  std::vector<uint64_t> sizes;
  for (uint64_t at = begin; at < end; at += piece) {
    offsets.push_back(at);
    sizes.push_back(std::min(piece, end - at));
  }
  return AddRangesOf(uri, std::move(source), offsets, sizes);
}

Result<size_t> Streamer::AddRangesOf(const std::string& uri, std::unique_ptr<Source> source,
                                     const std::vector<uint64_t>& offsets,
                                     const std::vector<uint64_t>& sizes) {
  std::vector<Item> items;
  items.reserve(sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    uint64_t end = 0;
    if (__builtin_add_overflow(offsets[i], sizes[i], &end) || end > source->Size()) {
      return InvalidArgument(uri + ": range " + std::to_string(i) + " [" +
                             std::to_string(offsets[i]) + ", +" + std::to_string(sizes[i]) +
                             ") reaches beyond the " + std::to_string(source->Size()) +
                             "-byte file");
    }
    Item item;
    item.name = std::to_string(i);
    item.dtype = "U8";
    item.shape = {static_cast<int64_t>(sizes[i])};
    item.offset = offsets[i];
    item.nbytes = sizes[i];
    items.push_back(std::move(item));
  }
  std::stable_sort(items.begin(), items.end(),
                   [](const Item& a, const Item& b) { return a.offset < b.offset; });
  return AddFile(uri, std::move(source), std::move(items), "{}");
}

Status Streamer::Select(size_t file_index, const std::vector<std::string>& names) {
  if (started_) return Status(StatusCode::kFailedPrecondition, "stream already started");
  if (file_index >= files_.size()) {
    return InvalidArgument("file index " + std::to_string(file_index) + " out of range");
  }
  StreamFile& file = files_[file_index];
  std::unordered_map<std::string_view, size_t> by_name;
  by_name.reserve(file.items.size());
  for (const Item& item : file.items) by_name.emplace(item.name, item.index);
  std::vector<size_t> selection;
  selection.reserve(names.size());
  for (const std::string& name : names) {
    const auto it = by_name.find(name);
    if (it == by_name.end()) return NotFound(file.uri + ": no tensor named " + Quoted(name));
    selection.push_back(it->second);
  }
  std::sort(selection.begin(), selection.end());
  selection.erase(std::unique(selection.begin(), selection.end()), selection.end());
  file.selection = std::move(selection);
  return Status::Ok();
}

Status Streamer::SetDestination(size_t file_index, size_t tensor_index, void* device_ptr) {
  if (started_) return Status(StatusCode::kFailedPrecondition, "stream already started");
  if (options_.device < 0) {
    return Status(StatusCode::kFailedPrecondition, "destinations need a CUDA device stream");
  }
  if (file_index >= files_.size() || tensor_index >= files_[file_index].items.size()) {
    return InvalidArgument("file " + std::to_string(file_index) + " tensor " +
                           std::to_string(tensor_index) + " out of range");
  }
  files_[file_index].destinations[tensor_index] = device_ptr;
  return Status::Ok();
}

Status Streamer::Start() {
  TS_RETURN_IF_ERROR(CheckProcess());
  if (started_) return Status(StatusCode::kFailedPrecondition, "stream already started");
  started_ = true;
  // A stream that failed to start reports that failure from Next() too, never waits.
  Status status = PlanAndLaunch();
  if (!status.ok()) Fail(status);
  return status;
}

Status Streamer::PlanAndLaunch() {
  // Reading into buffers of our own (private memory, or a memory limit): a cold local file
  // is better read with O_DIRECT, straight into them.
  const bool mapping = options_.memory_limit < 0 && options_.map_files;
  if (options_.device < 0 && !mapping) {
    for (StreamFile& file : files_) file.source->PreferDirectIfCold();
  }
  // The largest single item decides the smallest workable memory limit.
  uint64_t largest = 0;
  const Item* largest_item = nullptr;
  std::vector<Item> items;
  std::vector<FilePlanInput> inputs(files_.size());
  for (size_t f = 0; f < files_.size(); ++f) {
    const StreamFile& file = files_[f];
    FilePlanInput& input = inputs[f];
    input.alignment = file.source->RequiredAlignment();
    input.chunk_bytes =
        options_.chunk_bytes != 0 ? options_.chunk_bytes : file.source->PreferredChunkBytes();
    for (const size_t i : file.selection) {
      const Item& item = file.items[i];
      const uint64_t span =
          HostMemory::Footprint(AlignedSpan(item.offset, item.nbytes, input.alignment));
      if (span > largest || largest_item == nullptr) {
        largest = std::max(largest, span);
        largest_item = &item;
      }
      input.items.push_back(items.size());
      items.push_back(item);
    }
  }
  PlanLimits limits;
  total_items_ = items.size();
  size_t readers = static_cast<size_t>(options_.concurrency);
  if (options_.device >= 0) return StartDevice(std::move(items), inputs);
  int64_t limit = options_.memory_limit;
  if (limit == kLargestTensorMemory) limit = static_cast<int64_t>(largest);
  if (limit > 0 && largest > static_cast<uint64_t>(limit)) {
    return Status(StatusCode::kMemoryLimit,
                  "Memory limit supplied: " + std::to_string(limit) + " cannot be smaller than: " +
                      std::to_string(largest) + ", the bytes that tensor " +
                      Quoted(largest_item->name) + " of " + files_[largest_item->file_index].uri +
                      " needs; raise RUNAI_STREAMER_MEMORY_LIMIT or use 0 (the largest tensor)");
  }
  uint64_t largest_chunk = 0;
  for (const FilePlanInput& input : inputs)
    largest_chunk = std::max(largest_chunk, input.chunk_bytes);
  if (limit >= 0) {
    // Coalesced groups must keep their footprint under the limit too (see Footprint).
    const auto cap = static_cast<uint64_t>(limit);
    limits.max_group_bytes = std::max<uint64_t>(cap >= (1u << 20) ? cap / 4096 * 4096 : cap, 1);
  }
  const uint64_t in_flight = static_cast<uint64_t>(options_.concurrency) * largest_chunk;
  if (limit < 0) read_ahead_window_ = std::max({kMinReadAheadWindow, 4 * in_flight, largest});
  SetMemory(std::make_shared<HostMemory>(limit, std::max(read_ahead_window_, 2 * in_flight)));
  if (limit < 0 && options_.map_files) {
    // Without a limit, tensors of mappable (local, buffered) files are views of the page
    // cache: readers only make the pages resident, and nothing is copied.
    // A file that cannot be mapped (object store, O_DIRECT, mmap refused) is read.
    for (StreamFile& file : files_) {
      auto mapping = file.source->Map();
      if (mapping.ok()) file.mapping = std::move(mapping).value();
    }
  }
  plan_ = std::make_shared<const Plan>(MakePlan(std::move(items), inputs, limits));
  return LaunchReaders(readers);
}

Result<size_t> Streamer::PlanDeviceStaging(std::vector<FilePlanInput>& inputs) {
  // Host memory is the pinned staging alone: readers × kSlots slots of one chunk each.
  size_t readers = static_cast<size_t>(options_.concurrency);
  uint64_t slot = 0;
  uint64_t alignment = 1;
  for (const FilePlanInput& input : inputs) {
    slot = std::max(slot, input.chunk_bytes);
    alignment = std::max(alignment, input.alignment);
  }
  slot = std::max<uint64_t>(slot, 4096);
  const int64_t limit = options_.memory_limit;
  if (limit > 0) {
    const uint64_t per_slot = static_cast<uint64_t>(limit) / (DeviceStaging::kSlots * readers);
    slot = std::min(slot, std::max<uint64_t>(per_slot / 4096 * 4096, 64 << 10));
    readers = std::clamp<size_t>(static_cast<uint64_t>(limit) / (DeviceStaging::kSlots * slot), 1,
                                 readers);
    if (DeviceStaging::kSlots * slot > static_cast<uint64_t>(limit)) {
      return Status(StatusCode::kMemoryLimit,
                    "Memory limit supplied: " + std::to_string(limit) +
                        " cannot be smaller than: " + std::to_string(DeviceStaging::kSlots * slot) +
                        ", the bytes of pinned staging a GPU stream needs at least");
    }
  }
  slot = (slot + alignment - 1) / alignment * alignment;
  for (FilePlanInput& input : inputs) input.chunk_bytes = std::min(input.chunk_bytes, slot);
  staging_bytes_ = DeviceStaging::kSlots * slot * readers;
  staging_slot_bytes_ = slot;
  return readers;
}

Result<size_t> Streamer::PlanMappedCopies(std::vector<FilePlanInput>& inputs) {
  const auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  uint64_t window = (options_.gpu_window_bytes + page - 1) / page * page;
  const int64_t limit = options_.memory_limit;
  if (limit > 0) {
    // Registered windows pin page-cache pages: they count as the stream's host memory.
    window = std::min(window,
                      static_cast<uint64_t>(limit) / WindowRegistry::kMaxRegistered / page * page);
    if (window == 0) {
      return Status(
          StatusCode::kMemoryLimit,
          "Memory limit supplied: " + std::to_string(limit) +
              " cannot be smaller than: " + std::to_string(WindowRegistry::kMaxRegistered * page) +
              ", the bytes of registered windows a GPU stream needs at least");
    }
  }
  // A chunk spans at most two windows (see mapped_copy.h).
  for (FilePlanInput& input : inputs) input.chunk_bytes = std::min(input.chunk_bytes, window);
  window_bytes_ = window;
  staging_bytes_ = WindowRegistry::kMaxRegistered * window;
  return static_cast<size_t>(options_.concurrency);
}

std::vector<std::shared_ptr<const FileMapping>> Streamer::ChooseGpuStrategy() {
  const auto staging = [&](std::string reason) {
    gpu_strategy_ = GpuStrategy::kStaging;
    gpu_strategy_reason_ = std::move(reason);
    return std::vector<std::shared_ptr<const FileMapping>>();
  };
  const GpuStrategy asked = options_.gpu_strategy;
  const std::string setting = std::string(GpuStrategyName(asked)) + ": ";
  if (asked == GpuStrategy::kStaging) return staging("staging: as set");
  std::vector<std::shared_ptr<const FileMapping>> mappings;
  uint64_t selected = 0;
  double resident = 0;  // selected bytes in the page cache
  for (const StreamFile& file : files_) {
    auto mapping = file.source->MapShared();
    if (!mapping.ok() || *mapping == nullptr) {
      return staging(
          setting + file.uri + " cannot be mapped (" +
          (mapping.ok() ? "not a local file, or read with O_DIRECT" : mapping.status().message()) +
          "): staging");
    }
    // Selected items sorted by offset; neighbours are measured as one range.
    uint64_t begin = 0;
    uint64_t end = 0;
    const auto measure = [&] {
      if (end > begin) resident += (*mapping)->ResidentFraction(begin, end - begin) * (end - begin);
      selected += end - begin;
    };
    for (const size_t i : file.selection) {
      const Item& item = file.items[i];
      if (item.offset < end) {
        return staging(setting + file.uri + " has overlapping ranges: staging");
      }
      if (item.offset > end) {
        measure();
        begin = item.offset;
      }
      end = item.offset + item.nbytes;
    }
    measure();
    mappings.push_back(std::move(mapping).value());
  }
  const int percent = selected == 0 ? 100 : static_cast<int>(100 * resident / selected);
  const std::string cached =
      std::to_string(percent) + " % of the selected bytes are in the page cache";
  if (asked == GpuStrategy::kAuto && percent < 100 * kRegisterResidentShare) {
    return staging(setting + "only " + cached + ": staging");
  }
  // Ask the runtime once, on one page, whether it registers read-only file mappings.
  for (const auto& mapping : mappings) {
    if (mapping->size() == 0) continue;
    const auto page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    const Status probe = cuda_->HostRegisterReadOnly(mapping->data(), page);
    if (!probe.ok()) {
      return staging(setting + "the CUDA runtime does not register a read-only file mapping (" +
                     probe.message() + "): staging");
    }
    (void)cuda_->HostUnregister(mapping->data());
    break;
  }
  gpu_strategy_ = GpuStrategy::kRegister;
  gpu_strategy_reason_ = setting + cached + ": register";
  return mappings;
}

Status Streamer::StartDevice(std::vector<Item> items, std::vector<FilePlanInput>& inputs) {
  if (options_.cuda != nullptr) {
    cuda_ = options_.cuda;
  } else {
    TS_ASSIGN_OR_RETURN(cuda_, LoadCudaRuntime());
  }
  TS_ASSIGN_OR_RETURN(const int count, cuda_->DeviceCount());
  if (options_.device >= count) {
    return Unavailable("CUDA device " + std::to_string(options_.device) + " does not exist (" +
                       std::to_string(count) + " devices)");
  }
  // The caller's thread keeps its current device (torch's, say) once Start returns.
  TS_ASSIGN_OR_RETURN(const int callers_device, cuda_->GetDevice());
  struct RestoreDevice {
    CudaApi& cuda;
    int device;
    ~RestoreDevice() { (void)cuda.SetDevice(device); }
  } restore{*cuda_, callers_device};
  TS_RETURN_IF_ERROR(cuda_->SetDevice(options_.device));
  std::vector<std::shared_ptr<const FileMapping>> mappings = ChooseGpuStrategy();
  size_t readers = 0;
  if (gpu_strategy_ == GpuStrategy::kRegister) {
    TS_ASSIGN_OR_RETURN(readers, PlanMappedCopies(inputs));
  } else {
    TS_ASSIGN_OR_RETURN(readers, PlanDeviceStaging(inputs));
  }
  // A read group's device memory is allocated at once: coalescing must not make a group
  // larger than the device memory limit (one tensor alone may reach it).
  PlanLimits limits;
  if (options_.device_memory_limit > 0) {
    limits.max_group_bytes = static_cast<uint64_t>(options_.device_memory_limit);
  }
  plan_ = std::make_shared<const Plan>(MakePlan(std::move(items), inputs, limits));
  // Destinations: the caller's now; device memory of our own (freed with the tensor) is
  // allocated group by group as the readers reach it (EnsureDeviceMemory).
  item_destinations_.resize(plan_->items.size());
  item_owners_.resize(plan_->items.size());
  const Item* largest = nullptr;
  for (size_t i = 0; i < plan_->items.size(); ++i) {
    const Item& item = plan_->items[i];
    item_destinations_[i] = files_[item.file_index].destinations[item.index];
    if (item_destinations_[i] == nullptr && (largest == nullptr || item.nbytes > largest->nbytes)) {
      largest = &item;
    }
  }
  const uint64_t largest_bytes = largest != nullptr ? largest->nbytes : 0;
  const int64_t limit = options_.device_memory_limit;
  if (limit > 0 && static_cast<uint64_t>(limit) < largest_bytes) {
    return Status(StatusCode::kMemoryLimit,
                  "Device memory limit supplied: " + std::to_string(limit) +
                      " cannot be smaller than: " + std::to_string(largest_bytes) +
                      ", the bytes that tensor " + Quoted(largest->name) + " of " +
                      files_[largest->file_index].uri + " needs");
  }
  device_window_ =
      limit > 0 ? static_cast<uint64_t>(limit) : std::max(kDefaultDeviceWindow, largest_bytes);
  if (gpu_strategy_ == GpuStrategy::kRegister) {
    TS_RETURN_IF_ERROR(CreateMappedCopies(std::move(mappings), readers));
  } else {
    TS_RETURN_IF_ERROR(CreateStaging(readers));
  }
  SetMemory(std::make_shared<HostMemory>(kUnlimitedMemory, 0));
  return LaunchReaders(readers);
}

Status Streamer::CreateStaging(size_t readers) {
  std::shared_ptr<PinnedCache> pinned = options_.pinned_cache;
  if (pinned == nullptr && options_.cuda == nullptr) {
    TS_ASSIGN_OR_RETURN(pinned, PinnedCache::ForRuntime(cuda_));
  } else if (pinned == nullptr) {
    pinned = std::make_shared<PinnedCache>(cuda_, 0);
  }
  for (size_t r = 0; r < readers; ++r) {
    TS_ASSIGN_OR_RETURN(auto staging, DeviceStaging::Create(cuda_, pinned, options_.device,
                                                            staging_slot_bytes_, cancelled_));
    transfers_.push_back(std::move(staging));
  }
  return Status::Ok();
}

Status Streamer::CreateMappedCopies(std::vector<std::shared_ptr<const FileMapping>> mappings,
                                    size_t readers) {
  std::vector<std::string> uris;
  for (const StreamFile& file : files_) uris.push_back(file.uri);
  auto registry = std::make_shared<WindowRegistry>(cuda_, options_.device, std::move(mappings),
                                                   std::move(uris), *plan_, window_bytes_);
  {
    std::lock_guard lock(queue_mu_);  // Fail() may run concurrently, from Cancel()
    registry_ = registry;
    if (cancelled_.load(std::memory_order_acquire)) registry_->Cancel();
  }
  for (size_t r = 0; r < readers; ++r) {
    TS_ASSIGN_OR_RETURN(auto copy, MappedCopy::Create(cuda_, options_.device, registry));
    transfers_.push_back(std::move(copy));
  }
  return Status::Ok();
}

Status Streamer::LaunchReaders(size_t readers) {
  groups_ = std::make_unique<GroupState[]>(plan_->groups.size());
  if (plan_->groups.empty()) return Status::Ok();
  readers = std::clamp<size_t>(std::min(readers, plan_->chunks.size()), 1, readers);
  readers_.reserve(readers);
  for (size_t i = 0; i < readers; ++i) {
    readers_.emplace_back([this, i] {
      if (cuda_ != nullptr) {
        DeviceReaderLoop(*transfers_[i]);
      } else {
        HostReaderLoop();
      }
    });
  }
  return Status::Ok();
}

void Streamer::DeviceReaderLoop(DeviceTransfer& transfer) {
  std::vector<uint32_t> finished;
  const auto finish = [&] {
    for (const uint32_t chunk : finished) FinishChunk(chunk);
    finished.clear();
  };
  const auto describe = [&](const Status& status) {
    return status.WithContext(DescribeChunk(transfer.failed_chunk()));
  };
  // Reports every chunk in flight; the error of a failed copy as it is (`drain`, for
  // Load, whose errors are described below) or naming the chunk's tensors (`flush`).
  const auto drain = [&]() -> Status {
    TS_RETURN_IF_ERROR(transfer.Drain(&finished));
    finish();
    return Status::Ok();
  };
  const auto flush = [&] { return describe(drain()); };
  Status status = cuda_->SetDevice(options_.device);
  ChunkTask task;
  while (status.ok() && TakeChunk(&task)) {
    const Chunk& chunk = plan_->chunks[task.chunk];
    const ReadGroup& group = plan_->groups[chunk.group];
    const StreamFile& file = files_[group.file_index];
    status = EnsureDeviceMemory(chunk.group, flush);
    if (!status.ok()) break;
    status = transfer.Load(task.chunk, chunk, group.file_index, *file.source, &finished, drain);
    finish();
    if (!status.ok()) {  // this chunk's read, or the copies of an earlier one, failed
      status = describe(status);
      break;
    }
    bytes_read_.fetch_add(chunk.length, std::memory_order_relaxed);
    // Copy the part of every item this chunk holds (holes between items stay behind).
    const uint64_t chunk_end = chunk.offset + chunk.length;
    for (const size_t i : group.items) {
      const Item& item = plan_->items[i];
      const uint64_t begin = std::max(chunk.offset, item.offset);
      const uint64_t end = std::min(chunk_end, item.offset + item.nbytes);
      if (begin >= end) continue;
      status = transfer.Copy(static_cast<char*>(item_destinations_[i]) + (begin - item.offset),
                             begin, end - begin);
      if (!status.ok()) {
        status = status.WithContext(file.uri + ": tensor " + Quoted(item.name));
        break;
      }
    }
    if (status.ok()) {
      status = transfer.Submit(task.chunk).WithContext(DescribeChunk(task.chunk));
    }
  }
  if (status.ok()) status = flush();
  if (!status.ok()) Fail(status);
}

Status Streamer::EnsureDeviceMemory(uint32_t g, const std::function<Status()>& flush) {
  GroupState& state = groups_[g];
  if (state.device_ready.load(std::memory_order_acquire)) return Status::Ok();
  const ReadGroup& group = plan_->groups[g];
  // From the files' destinations, which never change once started (item_destinations_
  // is being written by the reader that allocates).
  const auto ours = [&](size_t i) {
    const Item& item = plan_->items[i];
    return item.nbytes > 0 && files_[item.file_index].destinations[item.index] == nullptr;
  };
  uint64_t need = 0;
  for (const size_t i : group.items) need += ours(i) ? plan_->items[i].nbytes : 0;
  std::unique_lock lock(queue_mu_);
  const bool allocates = !state.device_claimed;
  state.device_claimed = true;
  const auto can_go = [&] {
    if (!allocates) return state.device_ready.load(std::memory_order_acquire);
    return device_ahead_bytes_ == 0 || device_ahead_bytes_ + need <= device_window_;
  };
  if (!can_go()) {
    lock.unlock();
    TS_RETURN_IF_ERROR(flush());
    lock.lock();
    taken_cv_.wait(lock, [&] { return cancelled_.load(std::memory_order_acquire) || can_go(); });
  }
  if (cancelled_.load(std::memory_order_acquire)) return Cancelled("stream cancelled");
  if (!allocates) return Status::Ok();
  device_ahead_bytes_ += need;
  state.device_bytes = need;
  lock.unlock();
  for (const size_t i : group.items) {
    if (!ours(i)) continue;
    const Item& item = plan_->items[i];
    auto memory = cuda_->DeviceAlloc(item.nbytes);
    if (!memory.ok()) {
      return memory.status().WithContext(files_[item.file_index].uri + ": tensor " +
                                         Quoted(item.name));
    }
    item_destinations_[i] = *memory;
    item_owners_[i] =
        std::shared_ptr<void>(*memory, [cuda = cuda_](void* p) { cuda->DeviceFree(p); });
  }
  {
    std::lock_guard relock(queue_mu_);
    state.device_ready.store(true, std::memory_order_release);
  }
  taken_cv_.notify_all();
  return Status::Ok();
}

std::string Streamer::DescribeChunk(uint32_t chunk) const {
  const ReadGroup& group = plan_->groups[plan_->chunks[chunk].group];
  std::string text =
      files_[group.file_index].uri + ": tensor " + Quoted(plan_->items[group.items.front()].name);
  if (group.items.size() > 1) {
    text += " (and " + std::to_string(group.items.size() - 1) + " more in the same read)";
  }
  return text;
}

void Streamer::HostReaderLoop() {
  ChunkTask task;
  while (TakeChunk(&task)) {
    const Chunk& chunk = plan_->chunks[task.chunk];
    const ReadGroup& group = plan_->groups[chunk.group];
    const StreamFile& file = files_[group.file_index];
    const Status status =
        file.mapping != nullptr
            ? file.mapping->Populate(chunk.offset, chunk.length).WithContext(file.uri)
            : file.source->ReadAt(chunk.offset, chunk.length, task.dst, cancelled_);
    if (!status.ok()) {
      Fail(status);
      return;
    }
    bytes_read_.fetch_add(chunk.length, std::memory_order_relaxed);
    FinishChunk(task.chunk);
  }
}

bool Streamer::TakeChunk(ChunkTask* task) {
  std::lock_guard lock(schedule_mu_);
  while (true) {
    if (cancelled_.load(std::memory_order_acquire)) return false;
    if (next_group_ == plan_->groups.size()) return false;
    const uint32_t g = next_group_;
    const ReadGroup& group = plan_->groups[g];
    GroupState& state = groups_[g];
    if (next_chunk_in_group_ == 0 && cuda_ != nullptr) {
      // Device mode: chunks go through the readers' staging slots, not a group buffer.
      {
        std::lock_guard lock(queue_mu_);
        state.items_untaken = static_cast<uint32_t>(group.items.size());
      }
      state.chunks_left.store(group.chunk_count, std::memory_order_relaxed);
      if (group.chunk_count == 0) {  // only zero-size tensors
        ++next_group_;
        DeliverGroup(g);
        continue;
      }
    } else if (next_chunk_in_group_ == 0 && files_[group.file_index].mapping != nullptr) {
      // Mapped file: the group's bytes are already in memory once populated.
      if (!WaitForReadAhead(g)) return false;
      state.chunks_left.store(group.chunk_count, std::memory_order_relaxed);
      if (group.chunk_count == 0) {
        ++next_group_;
        DeliverGroup(g);
        continue;
      }
    } else if (next_chunk_in_group_ == 0) {
      // First chunk of the group: wait until its buffer fits under the limit. Holding
      // schedule_mu_ while waiting is deliberate: groups start in plan order, and the
      // other readers have nothing to take until this one fits.
      if (!WaitForReadAhead(g)) return false;
      const uint64_t alignment =
          std::max(kMinBufferAlignment, files_[group.file_index].source->RequiredAlignment());
      auto buffer =
          memory_->Acquire(group.bytes(), alignment, static_cast<uint32_t>(group.items.size()));
      if (!buffer.ok()) {
        if (buffer.status().code() != StatusCode::kCancelled) {
          Fail(buffer.status().WithContext(files_[group.file_index].uri));
        }
        return false;
      }
      state.buffer = std::move(buffer).value();
      state.chunks_left.store(group.chunk_count, std::memory_order_relaxed);
      if (group.chunk_count == 0) {  // only zero-size tensors
        ++next_group_;
        DeliverGroup(g);
        continue;
      }
    }
    const Chunk& chunk = plan_->chunks[group.first_chunk + next_chunk_in_group_];
    task->chunk = group.first_chunk + next_chunk_in_group_;
    task->dst =
        state.buffer == nullptr ? nullptr : state.buffer->data() + (chunk.offset - group.begin);
    if (++next_chunk_in_group_ == group.chunk_count) {
      ++next_group_;
      next_chunk_in_group_ = 0;
    }
    return true;
  }
}

bool Streamer::WaitForReadAhead(uint32_t g) {
  const uint64_t bytes = plan_->groups[g].bytes();
  std::unique_lock lock(queue_mu_);
  taken_cv_.wait(lock, [&] {
    return cancelled_.load(std::memory_order_acquire) || read_ahead_window_ == 0 ||
           ahead_bytes_ + bytes <= read_ahead_window_;
  });
  if (cancelled_.load(std::memory_order_acquire)) return false;
  ahead_bytes_ += bytes;
  groups_[g].items_untaken = static_cast<uint32_t>(plan_->groups[g].items.size());
  return true;
}

void Streamer::FinishChunk(uint32_t chunk) {
  const uint32_t g = plan_->chunks[chunk].group;
  if (groups_[g].chunks_left.fetch_sub(1, std::memory_order_acq_rel) == 1) DeliverGroup(g);
}

void Streamer::DeliverGroup(uint32_t g) {
  const ReadGroup& group = plan_->groups[g];
  std::shared_ptr<HostBuffer> buffer = std::move(groups_[g].buffer);
  {
    std::lock_guard lock(queue_mu_);
    for (const size_t i : group.items) {
      const std::shared_ptr<const FileMapping>& mapping = files_[group.file_index].mapping;
      if (cuda_ != nullptr) {
        completed_.push_back(std::make_unique<DeliveredTensor>(
            plan_, i, nullptr, item_destinations_[i], DeliveredTensor::Block{},
            std::move(item_owners_[i]), options_.device));
      } else if (mapping != nullptr) {
        completed_.push_back(std::make_unique<DeliveredTensor>(
            plan_, i, nullptr, mapping->data() + plan_->items[i].offset,
            DeliveredTensor::Block{mapping->data(), mapping->size()}, mapping));
      } else {
        const char* data = buffer->data() + (plan_->items[i].offset - group.begin);
        completed_.push_back(std::make_unique<DeliveredTensor>(
            plan_, i, buffer, data, DeliveredTensor::Block{buffer->data(), buffer->size()}));
      }
    }
  }
  queue_cv_.notify_one();
}

void Streamer::SetMemory(std::shared_ptr<HostMemory> memory) {
  std::lock_guard lock(queue_mu_);  // Fail() may run concurrently, from Cancel()
  memory_ = std::move(memory);
  if (cancelled_.load(std::memory_order_acquire)) memory_->Cancel();
}

void Streamer::Fail(const Status& status) {
  std::shared_ptr<HostMemory> memory;
  std::shared_ptr<WindowRegistry> registry;
  {
    // Set under queue_mu_ so that a reader between checking and waiting on taken_cv_
    // cannot miss it.
    std::lock_guard lock(queue_mu_);
    if (error_.ok()) error_ = status;
    cancelled_.store(true, std::memory_order_release);
    memory = memory_;
    registry = registry_;
  }
  if (memory) memory->Cancel();
  if (registry) registry->Cancel();
  queue_cv_.notify_all();
  taken_cv_.notify_all();
}

void Streamer::Cancel() { Fail(Cancelled("stream cancelled")); }

Result<std::unique_ptr<DeliveredTensor>> Streamer::Next() {
  std::vector<std::unique_ptr<DeliveredTensor>> one;
  TS_ASSIGN_OR_RETURN(const size_t count, NextBatch(1, &one));
  if (count == 0) return std::unique_ptr<DeliveredTensor>();
  return std::move(one.front());
}

bool Streamer::ended() const {
  std::lock_guard lock(queue_mu_);
  return started_ && delivered_ == total_items_;
}

Result<size_t> Streamer::NextBatch(size_t max, std::vector<std::unique_ptr<DeliveredTensor>>* out,
                                   int64_t timeout_ms) {
  TS_RETURN_IF_ERROR(CheckProcess());  // before any lock: a reader may have held it at fork
  if (!started_) return Status(StatusCode::kFailedPrecondition, "stream not started");
  std::unique_lock lock(queue_mu_);
  const auto ready = [&] {
    return !completed_.empty() || !error_.ok() || delivered_ == total_items_;
  };
  if (timeout_ms < 0) {
    queue_cv_.wait(lock, ready);
  } else if (!queue_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), ready)) {
    return size_t{0};
  }
  if (!error_.ok() && error_.code() != StatusCode::kCancelled && delivered_ < total_items_) {
    return error_;
  }
  size_t taken = 0;
  bool window_moved = false;
  for (; taken < max && !completed_.empty(); ++taken) {
    std::unique_ptr<DeliveredTensor> tensor = std::move(completed_.front());
    completed_.pop_front();
    ++delivered_;
    const uint32_t g = plan_->item_group[tensor->plan_index()];
    if (--groups_[g].items_untaken == 0) {
      // The group no longer counts as ahead of the consumer: its host bytes (host mode)
      // or the device memory the stream allocated for it (device mode).
      if (cuda_ == nullptr) {
        ahead_bytes_ -= plan_->groups[g].bytes();
      } else {
        device_ahead_bytes_ -= groups_[g].device_bytes;
      }
      window_moved = true;
    }
    out->push_back(std::move(tensor));
  }
  if (window_moved) taken_cv_.notify_all();
  if (taken > 0) return taken;
  // After the last tensor, the stream has ended well whatever happens later (a Cancel).
  if (!error_.ok() && delivered_ < total_items_) return error_;
  return size_t{0};
}

}  // namespace tensorstream
