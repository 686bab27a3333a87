// LocalSource: a regular file on a local filesystem, read with pread(2), or with O_DIRECT
// when StorageOptions::direct_io is set (then reads must be 4 KiB aligned; see Source).
// Descriptors are shared by all local sources of the process and at most a few hundred
// are open at once (least recently used closed first, reopened when needed, checked to be
// the same file), so streams of thousands of files stay under the descriptor limit.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "storage/backend.h"
#include "storage/listing.h"
#include "storage/source.h"

namespace tensorstream {

// Opens a local path or file:// URI. Fails with kNotFound / kPermissionDenied /
// kInvalidArgument (a directory, FIFO, device or socket: not a regular file) naming the
// path; never blocks on a FIFO.
Result<std::unique_ptr<Source>> OpenLocalSource(const std::string& uri,
                                                const StorageOptions& options);

// Lists a local directory or file:// URI (see ListUri).
Result<std::vector<ObjectInfo>> ListLocalDirectory(const std::string& uri,
                                                   const StorageOptions& options, bool recursive);

// Local paths and file:// URIs. Reads the StorageOptions::direct_io flag; no settings.
extern const Backend kLocalBackend;

// The alignment O_DIRECT reads use here (logical block sizes are at most 4 KiB on the
// devices we target; 4096 is valid for all of them).
inline constexpr uint64_t kDirectIoAlignment = 4096;

}  // namespace tensorstream
