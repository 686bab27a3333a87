// Source: random-access reads of one file or object, whatever the storage.
//
// Every storage backend (local disk, S3, …) implements Source; the pipeline knows
// nothing else about storage. OpenSource() picks the backend from the URI's scheme
// through the registry in registry.cc.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace tensorstream {

// Options that travel from the caller to whichever backend opens a URI.
struct StorageOptions {
  bool direct_io = false;  // local files: read with O_DIRECT (page cache bypassed)
  // Per-backend settings by key, "<scheme>.<name>" ("s3.region", "gcs.credential_file"),
  // as the caller gave them (tensorstream_options_set); each backend declares the keys it
  // reads (storage/backend.h) and falls back to the environment for the others. Values
  // may be secrets: never logged, never part of an error message.
  std::map<std::string, std::string, std::less<>> settings;

  // The setting `key`, or nullopt when the caller gave none (an empty value counts as
  // none, so that "" can clear a setting from Python or C).
  std::optional<std::string> Setting(std::string_view key) const {
    const auto it = settings.find(key);
    if (it == settings.end() || it->second.empty()) return std::nullopt;
    return it->second;
  }
};

class FileMapping;

class Source {
 public:
  virtual ~Source() = default;

  // The URI this source was opened with (for error messages).
  virtual const std::string& uri() const = 0;

  // Size of the file/object in bytes, known once the source is open.
  virtual uint64_t Size() const = 0;

  // Reads exactly `length` bytes at `offset` into `dst`.
  // REQUIRES: offset + length <= Size(); dst, offset and length are multiples of
  //           RequiredAlignment().
  // Thread-safe: any number of calls may run concurrently on one Source.
  // Returns early with kCancelled once `cancelled` becomes true (backends check it
  // between network reads / retries; a local pread of one chunk just completes).
  // Errors name uri(), the byte range and the cause.
  virtual Status ReadAt(uint64_t offset, uint64_t length, void* dst,
                        const std::atomic<bool>& cancelled) = 0;

  // Alignment required of ReadAt's buffer, offset and length; 1 when there is none.
  virtual uint64_t RequiredAlignment() const { return 1; }

  // A good read size for this storage when the caller has no preference.
  virtual uint64_t PreferredChunkBytes() const { return 2u << 20; }

  // The whole file mapped into memory (copy-on-write: writes through the mapping never
  // reach the file), or null when this source cannot be mapped (object stores, O_DIRECT).
  // The mapping stays valid as long as the returned pointer, also beyond the Source.
  virtual Result<std::shared_ptr<const FileMapping>> Map() { return {nullptr}; }

  // The whole file mapped read-only and shared (PROT_READ, MAP_SHARED): the page cache's
  // own pages, which a GPU stream registers with the CUDA runtime and copies from
  // (pipeline/mapped_copy.h). Null when this source cannot be mapped, as for Map().
  virtual Result<std::shared_ptr<const FileMapping>> MapShared() { return {nullptr}; }

  // Reading into buffers of the caller's (not mapping): a local file whose pages are
  // mostly not in the page cache switches to O_DIRECT, so that a cold read is one DMA
  // into the buffer rather than a read into the page cache plus a copy out of it.
  // REQUIRES: no ReadAt in progress (called while planning); RequiredAlignment() may
  // change. Other sources do nothing.
  virtual void PreferDirectIfCold() {}
};

// A file's bytes mapped into memory (see Source::Map).
class FileMapping {
 public:
  FileMapping(const char* data, uint64_t size) : data_(data), size_(size) {}
  ~FileMapping();
  FileMapping(const FileMapping&) = delete;
  FileMapping& operator=(const FileMapping&) = delete;

  const char* data() const { return data_; }
  uint64_t size() const { return size_; }

  // Makes [offset, offset + length) resident (reading from storage what is not in the
  // page cache), so that later accesses do not fault. Thread-safe.
  Status Populate(uint64_t offset, uint64_t length) const;

  // The share of the pages of [offset, offset + length) that are in the page cache
  // (mincore); 1 when the kernel cannot tell. Thread-safe.
  double ResidentFraction(uint64_t offset, uint64_t length) const;

 private:
  const char* const data_;
  const uint64_t size_;
};

// ReadAt for callers with arbitrary offsets and lengths (headers, tests): when the source
// needs alignment, reads the covering aligned window into a temporary buffer and copies.
// OK when [offset, offset + length) lies within an object of `size` bytes; otherwise
// kInvalidArgument naming `uri` and the range (what an object store's ReadAt checks first).
Status CheckReadWithinObject(const std::string& uri, uint64_t size, uint64_t offset,
                             uint64_t length);

Status ReadUnaligned(Source& source, uint64_t offset, uint64_t length, void* dst,
                     const std::atomic<bool>& cancelled);

// Opens `uri` through the backend of its scheme (storage/backend.h): a local path,
// file://path, s3://, gs://… Errors: kNotFound, kPermissionDenied, kInvalidArgument for an
// unknown scheme, each naming the URI.
Result<std::unique_ptr<Source>> OpenSource(const std::string& uri, const StorageOptions& options);

// "s3" for "s3://b/k", "" for a local path (including "file://").
std::string UriScheme(const std::string& uri);

}  // namespace tensorstream
