// Feeds arbitrary tensor layouts to the read planner: ranges (any order, overlapping, empty,
// near 2^64), chunk sizes, alignments and memory caps. Every plan must hold together:
// each item lies inside its group, groups are aligned and inside their file, chunks tile
// their group exactly within the chunk size, and each group holds whole items.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "pipeline/plan.h"

namespace {

// Reads integers from the fuzzer's bytes, zeros when they run out.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint64_t Next(uint64_t bound) {
    uint64_t value = 0;
    const size_t n = std::min<size_t>(8, size_ - at_);
    std::memcpy(&value, data_ + at_, n);
    at_ += n;
    return bound == 0 ? value : value % bound;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t at_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tensorstream;
  Input in(data, size);
  const size_t files = 1 + in.Next(3);
  std::vector<Item> items;
  std::vector<FilePlanInput> inputs(files);
  for (size_t f = 0; f < files; ++f) {
    FilePlanInput& file = inputs[f];
    file.alignment = uint64_t{1} << in.Next(13);            // 1 .. 4096
    const uint64_t file_size = in.Next(uint64_t{1} << 40);  // up to 1 TiB
    // Up to 16 MiB, but at most ~1,000 chunks per file, to keep a plan in memory.
    file.chunk_bytes = std::max(1 + in.Next(uint64_t{1} << 24), file_size / 1024 + 1);
    const size_t count = in.Next(64);
    std::vector<Item> file_items;
    for (size_t i = 0; i < count; ++i) {
      Item item;
      item.file_index = f;
      item.offset = in.Next(file_size + 1);
      item.nbytes = in.Next(file_size - item.offset + 1);
      file_items.push_back(item);
    }
    std::stable_sort(file_items.begin(), file_items.end(),
                     [](const Item& a, const Item& b) { return a.offset < b.offset; });
    for (Item& item : file_items) {
      item.index = file.items.size();
      file.items.push_back(items.size());
      items.push_back(item);
    }
  }
  PlanLimits limits;
  limits.max_group_bytes = 1 + in.Next(0);
  limits.max_hole_bytes = in.Next(uint64_t{1} << 20);
  const size_t count = items.size();
  const Plan plan = MakePlan(std::move(items), inputs, limits);

  if (plan.items.size() != count || plan.item_group.size() != count) std::abort();
  std::vector<size_t> seen(count, 0);
  for (size_t g = 0; g < plan.groups.size(); ++g) {
    const ReadGroup& group = plan.groups[g];
    const uint64_t align = inputs[group.file_index].alignment;
    if (group.begin % align != 0 || group.end % align != 0 || group.end < group.begin) std::abort();
    for (const size_t i : group.items) {
      const Item& item = plan.items[i];
      if (item.file_index != group.file_index || plan.item_group[i] != g) std::abort();
      if (item.offset < group.begin || item.offset + item.nbytes > group.end) std::abort();
      ++seen[i];
    }
    uint64_t at = group.begin;
    for (uint32_t c = group.first_chunk; c < group.first_chunk + group.chunk_count; ++c) {
      const Chunk& chunk = plan.chunks[c];
      if (chunk.group != g || chunk.offset != at || chunk.length == 0) std::abort();
      at += chunk.length;
    }
    if (at != group.end && !(group.chunk_count == 0 && group.begin == group.end)) std::abort();
  }
  for (const size_t n : seen) {
    if (n != 1) std::abort();  // every item in exactly one group
  }
  return 0;
}
