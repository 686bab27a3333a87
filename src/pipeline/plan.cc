#include "pipeline/plan.h"

#include <algorithm>

namespace tensorstream {

namespace {

uint64_t AlignDown(uint64_t x, uint64_t a) { return x / a * a; }
uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

void CutIntoChunks(Plan& plan, ReadGroup& group, uint32_t group_index, uint64_t chunk_bytes) {
  group.first_chunk = static_cast<uint32_t>(plan.chunks.size());
  for (uint64_t at = group.begin; at < group.end; at += chunk_bytes) {
    plan.chunks.push_back({group_index, at, std::min(chunk_bytes, group.end - at)});
  }
  group.chunk_count = static_cast<uint32_t>(plan.chunks.size()) - group.first_chunk;
}

}  // namespace

uint64_t AlignedSpan(uint64_t offset, uint64_t nbytes, uint64_t alignment) {
  return AlignUp(offset + nbytes, alignment) - AlignDown(offset, alignment);
}

Plan MakePlan(std::vector<Item> items, const std::vector<FilePlanInput>& files,
              const PlanLimits& limits) {
  Plan plan;
  plan.items = std::move(items);
  plan.item_group.assign(plan.items.size(), 0);
  for (size_t f = 0; f < files.size(); ++f) {
    const FilePlanInput& file = files[f];
    const uint64_t align = std::max<uint64_t>(1, file.alignment);
    // Chunks must stay aligned too, so round the chunk size up to the alignment.
    const uint64_t chunk_bytes = AlignUp(std::max<uint64_t>(file.chunk_bytes, 1), align);
    const uint64_t max_group_bytes = std::min(chunk_bytes, limits.max_group_bytes);
    ReadGroup open;
    bool has_open = false;
    auto close_open = [&] {
      if (!has_open) return;
      open.begin = AlignDown(open.begin, align);
      open.end = AlignUp(open.end, align);
      const auto index = static_cast<uint32_t>(plan.groups.size());
      CutIntoChunks(plan, open, index, chunk_bytes);
      for (const size_t i : open.items) plan.item_group[i] = index;
      plan.groups.push_back(std::move(open));
      open = ReadGroup();
      has_open = false;
    };
    for (const size_t i : file.items) {
      const Item& item = plan.items[i];
      const uint64_t item_end = item.offset + item.nbytes;
      if (has_open) {
        const bool near = item.offset <= open.end + limits.max_hole_bytes;
        const uint64_t merged = AlignUp(std::max(open.end, item_end), align) -
                                AlignDown(std::min(open.begin, item.offset), align);
        if (near && item.offset >= open.begin && merged <= max_group_bytes) {
          open.end = std::max(open.end, item_end);
          open.items.push_back(i);
          continue;
        }
        close_open();
      }
      open.file_index = f;
      open.begin = item.offset;
      open.end = item_end;
      open.items.push_back(i);
      has_open = true;
    }
    close_open();
  }
  return plan;
}

}  // namespace tensorstream
