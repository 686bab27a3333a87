// Listing a "directory": a local folder or an object-store prefix, for `ls`,
// list_safetensors and pull_files.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "storage/source.h"

namespace tensorstream {

struct ObjectInfo {
  // What OpenSource() accepts: "s3://bucket/dir/a.bin", or the local path
  // ("/models/x/a.bin"; a "file://" prefix given to ListUri is kept).
  std::string uri;
  // The path below the listed directory, '/'-separated ("a.bin", "sub/b.bin"). For an
  // object store this is the key with the prefix removed; it is NOT sanitised: keys may
  // hold "..", so a caller writing files from it must check it stays inside its target.
  std::string relative;
  uint64_t size = 0;          // bytes; 0 for directories
  // Only in non-recursive listings (subfolders, common prefixes), whose uri and relative
  // end with '/' for every backend ("sub/").
  bool is_directory = false;
};

// How long an object-store listing may go on: a server whose listing never ends (truncated
// forever, with ever new tokens) fails with an error saying so, rather than running forever.
struct ListLimits {
  size_t max_pages = 100'000;  // 100 million keys at 1,000 per page
  std::chrono::seconds max_time{600};
};

// Lists the files under `uri` through the backend of its scheme (storage/backend.h),
// sorted by uri:
//   * local path or file:// URI of a directory: its regular files (symbolic links to files
//     are followed, so Hugging Face cache snapshots list fine) and, unless `recursive`, its
//     subdirectories as is_directory entries. Recursive listings descend into
//     subdirectories (not through symbolic links to directories) and list files only.
//   * object stores (s3://BUCKET[/PREFIX], gs://BUCKET[/PREFIX]): the objects under PREFIX
//     taken as a folder ('/' appended when missing), page by page. Non-recursive listings
//     use the '/' delimiter and report common prefixes as is_directory entries. Zero-byte
//     "folder marker" objects (keys ending in '/') are skipped. A listing that never ends
//     fails after a bounded number of pages and time.
// Errors: kNotFound (no such directory or bucket), kInvalidArgument (a local path that is
// not a directory; a scheme that cannot be listed), kPermissionDenied, kUnavailable.
Result<std::vector<ObjectInfo>> ListUri(const std::string& uri, const StorageOptions& options,
                                        bool recursive);

// For backends: `entries` sorted by uri, each uri once (a common prefix may come back on
// several pages of one listing).
std::vector<ObjectInfo> SortedListing(std::vector<ObjectInfo> entries);

}  // namespace tensorstream
