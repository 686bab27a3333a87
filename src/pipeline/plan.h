// The read plan: which bytes to read, in which buffers, in which pieces.
//
// Items (tensors, or raw byte ranges) are grouped into ReadGroups: one group is one host
// buffer covering a contiguous file range that holds whole items. Neighbouring small
// items are coalesced into one group (up to `max_group_bytes`, crossing holes of at most
// `max_hole_bytes` between selected items), so 100,000 tiny tensors cost a few hundred
// reads. A large item gets a group of its own. Each group is read as one or more chunks
// of at most `chunk_bytes`, which separate reader threads may read concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace tensorstream {

// One thing to deliver: a tensor of a SafeTensors file or a raw byte range.
struct Item {
  size_t file_index = 0;
  size_t index = 0;  // position within its file (header order sorted by offset)
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t offset = 0;  // absolute, in the file
  uint64_t nbytes = 0;
};

struct ReadGroup {
  size_t file_index = 0;
  uint64_t begin = 0;  // file range read into the buffer; aligned for the source
  uint64_t end = 0;
  std::vector<size_t> items;  // indices into Plan::items
  uint32_t first_chunk = 0;   // chunks [first_chunk, first_chunk + chunk_count)
  uint32_t chunk_count = 0;
  uint64_t bytes() const { return end - begin; }
};

struct Chunk {
  uint32_t group = 0;
  uint64_t offset = 0;  // absolute file offset
  uint64_t length = 0;
};

struct PlanLimits {
  uint64_t max_group_bytes = UINT64_MAX;  // cap from the memory limit (coalescing only)
  uint64_t max_hole_bytes = 64ull << 10;  // unselected bytes a coalesced read may cross
};

struct FilePlanInput {
  std::vector<size_t> items;          // indices into the items vector, sorted by offset
  uint64_t alignment = 1;             // the source's RequiredAlignment()
  uint64_t chunk_bytes = 2ull << 20;  // read size; also the coalescing target
};

struct Plan {
  std::vector<Item> items;
  std::vector<ReadGroup> groups;     // in file order, then offset order
  std::vector<Chunk> chunks;         // group by group
  std::vector<uint32_t> item_group;  // the group of each item
};

// Builds groups and chunks for `items` (consumed) of the given files.
Plan MakePlan(std::vector<Item> items, const std::vector<FilePlanInput>& files,
              const PlanLimits& limits);

// The bytes one item alone occupies in a buffer once its range is aligned.
uint64_t AlignedSpan(uint64_t offset, uint64_t nbytes, uint64_t alignment);

}  // namespace tensorstream
