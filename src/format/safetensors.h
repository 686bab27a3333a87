// SafeTensors header parsing and validation.
//
// A SafeTensors file is: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
// mapping tensor names to {dtype, shape, data_offsets}, then the data region, where every
// tensor's [begin, end) offsets are relative. We accept a header only when it is exactly
// one JSON object (trailing spaces allowed, nothing else), nested at most
// kMaxHeaderDepth levels, with unique names, and when the tensors tile the data region
// exactly (no overlap, no gap, nothing after the last one), as safetensors and
// runai-model-streamer do; anything else is a FormatError naming the file and the tensor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace tensorstream {

// Headers larger than this are refused before any allocation.
inline constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
// Deeper nesting is refused as soon as it is seen (a header needs 3 levels; __metadata__
// may use more), so that no walk over the header can exhaust the stack.
inline constexpr int kMaxHeaderDepth = 64;

struct TensorEntry {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t offset = 0;  // absolute offset of the first byte in the file
  uint64_t nbytes = 0;
  uint64_t begin = 0;  // data_offsets[0]: offset relative to the data region
};

struct SafetensorsHeader {
  uint64_t data_offset = 0;          // 8 + N: where the data region starts in the file
  std::vector<TensorEntry> tensors;  // in order of their data offsets
  std::string metadata_json = "{}";  // "__metadata__" re-serialised, "{}" when absent
};

// Reads the 8-byte prefix: the header length N. `file_size` is the whole file's size.
// Errors: file shorter than 8 bytes, N over kMaxHeaderBytes, N beyond the file.
Result<uint64_t> ParseHeaderLength(const std::string& file, const unsigned char prefix[8],
                                   uint64_t file_size);

// Parses and validates the JSON header (the N bytes after the prefix). `file` names the
// file in error messages; `file_size` bounds the offsets.
Result<SafetensorsHeader> ParseHeaderJson(const std::string& file, std::string_view json,
                                          uint64_t file_size);

}  // namespace tensorstream

namespace tensorstream {
class Source;

// Reads and validates the header of the SafeTensors file behind `source` (two reads:
// the 8-byte prefix, then the JSON). Errors name source.uri().
Result<SafetensorsHeader> ReadSafetensorsHeader(Source& source);
}  // namespace tensorstream
