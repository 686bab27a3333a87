// Streaming options and their defaults from the RUNAI_STREAMER_* environment variables.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "common/status.h"
#include "storage/source.h"

namespace tensorstream {
class CudaApi;
class PinnedCache;
}  // namespace tensorstream

namespace tensorstream {

inline constexpr int kDefaultConcurrency = 16;
inline constexpr int kMaxConcurrency = 1024;
inline constexpr uint64_t kDefaultChunkBytes = 2ull << 20;
inline constexpr uint64_t kMinChunkBytes = 4096;
inline constexpr uint64_t kMaxChunkBytes = 1ull << 30;
inline constexpr int64_t kUnlimitedMemory = -1;
inline constexpr int64_t kLargestTensorMemory = 0;

// How a GPU stream moves local files' bytes into device memory (the choice is made at
// Start, once for the whole stream; Streamer::gpu_strategy() tells which and why):
//   kStaging   readers pread chunks into pinned slots and copy from those
//              (pipeline/device_staging.h): right for cold files and object stores.
//   kRegister  each file is mapped read-only, windows of the mapping are registered with
//              the CUDA runtime, and copies go straight from the page cache to the device
//              (pipeline/mapped_copy.h): right for files already in the page cache. A
//              stream with a file that cannot be mapped (object store, O_DIRECT), with
//              overlapping ranges, or whose runtime refuses read-only registration uses
//              staging instead (not an error).
//   kAuto      kRegister when every file can be mapped and at least 90 % of the pages of
//              the selected tensors are in the page cache (mincore), kStaging otherwise.
enum class GpuStrategy { kAuto, kStaging, kRegister };

// "auto", "staging" or "register" → the strategy; InvalidArgument naming `setting` (an
// option key or an environment variable) and the value otherwise.
Result<GpuStrategy> ParseGpuStrategy(std::string_view setting, const char* text);
const char* GpuStrategyName(GpuStrategy strategy);

struct StreamOptions {
  int concurrency = kDefaultConcurrency;    // reader threads
  uint64_t chunk_bytes = 0;                 // bytes per read; 0: the storage's preference
  int64_t memory_limit = kUnlimitedMemory;  // -1 unlimited, 0 largest tensor, N bytes
  StorageOptions storage;
  int device = -1;  // -1: host memory; N: CUDA device N (through pinned staging)
  // Device mode, tensors without a caller destination: the stream allocates each read
  // group's device memory when its first chunk is about to be copied, and keeps at most
  // this many bytes allocated but not yet delivered (readers wait beyond it; delivered
  // tensors belong to the consumer and no longer count). -1: max(1 GiB, the largest
  // tensor); N: bytes, at least the largest tensor's.
  int64_t device_memory_limit = -1;
  GpuStrategy gpu_strategy = GpuStrategy::kAuto;
  // kRegister: the bytes of one registered window of a file mapping (rounded up to the
  // page size; smaller under a memory limit); at most WindowRegistry::kMaxRegistered are
  // registered at once (mapped_copy.h). No option key: a knob for tests and measurements.
  uint64_t gpu_window_bytes = 256ull << 20;
  // Host streams without a memory limit hand out local files' tensors as views of a
  // copy-on-write mapping of the file (no copy at all); off: always read into buffers.
  bool map_files = true;
  // The CUDA runtime to use; null loads the real one at Start (tests inject a fake).
  std::shared_ptr<CudaApi> cuda;
  // Where GPU streams borrow their pinned staging. Null: the process's cache of the real
  // runtime (PinnedCache::ForRuntime), or, with an injected `cuda`, slots of the stream's
  // own, freed with it.
  std::shared_ptr<PinnedCache> pinned_cache;
};

// Sets one option by name from its text (the C API's tensorstream_options_set): keys
// concurrency, chunk_bytes, memory_limit, device_memory_limit, gpu_strategy ("auto" |
// "staging" | "register"), direct_io, host_memory ("mapped" | "private"), and the settings the
// storage backends declare ("s3.region", "gcs.credential_file"…; NULL unsets one). Leaves `options`
// unchanged unless the result validates.
Status SetOption(StreamOptions& options, std::string_view key, const char* value);

// Checks ranges (concurrency 1..1024, chunk 4 KiB..1 GiB or 0, limit >= -1).
Status ValidateOptions(const StreamOptions& options);

// Defaults overridden by RUNAI_STREAMER_CONCURRENCY, RUNAI_STREAMER_CHUNK_BYTESIZE,
// RUNAI_STREAMER_MEMORY_LIMIT, TENSORSTREAM_DIRECT_IO, TENSORSTREAM_MMAP and
// TENSORSTREAM_GPU_STRATEGY. Integers are read
// as Python's int() reads them. A value that does not parse, or that runai-model-streamer
// would refuse, is an error naming the variable (never silently ignored); positive
// concurrency and chunk sizes beyond the supported ranges are brought into them.
Result<StreamOptions> StreamOptionsFromEnvironment();

// Checks one of those variables alone, as StreamOptionsFromEnvironment reads it.
Status CheckEnvironmentVariable(std::string_view name);

}  // namespace tensorstream
