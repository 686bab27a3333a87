// Downloading one object (or file) to a local path through the streaming pipeline, so a
// download gets the same concurrency, chunking, retries and memory limit as streaming.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"
#include "pipeline/options.h"

namespace tensorstream {

// Checks that `relative` (a '/'-separated key below a listed prefix) names a path inside
// the destination directory: not empty, not absolute, no "." / ".." / empty segments, no
// NUL or backslash. Object keys are untrusted: this is what keeps pull from writing
// outside its destination whatever the keys hold.
Status CheckRelativePath(const std::string& relative);

// Called with the bytes written so far, from the calling thread.
using ProgressFn = std::function<void(uint64_t done)>;

// Downloads `uri` to `dst_dir`/`relative` (creating parent directories): the bytes go to
// a temporary file in the same directory, renamed into place only once complete, so an
// interrupted download never leaves a truncated file under the final name.
// Returns the bytes written.
Result<uint64_t> Download(const std::string& uri, const std::string& dst_dir,
                          const std::string& relative, const StreamOptions& options,
                          const ProgressFn& progress);

}  // namespace tensorstream
