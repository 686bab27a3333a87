#include "pipeline/plan.h"

#include <gtest/gtest.h>

namespace tensorstream {
namespace {

std::vector<Item> Items(const std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
  std::vector<Item> items;
  for (const auto& [offset, nbytes] : ranges) {
    Item item;
    item.name = std::to_string(items.size());
    item.offset = offset;
    item.nbytes = nbytes;
    items.push_back(item);
  }
  return items;
}

TEST(Plan, CoalescesNeighboursAndSplitsLargeItems) {
  // Three small neighbours, then one item of 10 units that must be split into chunks.
  auto items = Items({{100, 10}, {110, 20}, {130, 5}, {135, 1000}});
  FilePlanInput file{{0, 1, 2, 3}, 1, 300};
  const Plan plan = MakePlan(std::move(items), {file}, PlanLimits{});
  ASSERT_EQ(plan.groups.size(), 2u);
  EXPECT_EQ(plan.groups[0].items, (std::vector<size_t>{0, 1, 2}));
  EXPECT_EQ(plan.groups[0].begin, 100u);
  EXPECT_EQ(plan.groups[0].end, 135u);
  EXPECT_EQ(plan.groups[1].chunk_count, 4u);  // 1000 bytes in 300-byte chunks
  uint64_t covered = 0;
  for (uint32_t c = 0; c < plan.groups[1].chunk_count; ++c) {
    covered += plan.chunks[plan.groups[1].first_chunk + c].length;
  }
  EXPECT_EQ(covered, 1000u);
}

TEST(Plan, AlignedGroupsForDirectIo) {
  auto items = Items({{8 + 100, 5000}});
  FilePlanInput file{{0}, 4096, 4096};
  const Plan plan = MakePlan(std::move(items), {file}, PlanLimits{});
  ASSERT_EQ(plan.groups.size(), 1u);
  EXPECT_EQ(plan.groups[0].begin, 0u);
  EXPECT_EQ(plan.groups[0].end, 8192u);
  for (const Chunk& c : plan.chunks) {
    EXPECT_EQ(c.offset % 4096, 0u);
    EXPECT_EQ(c.length % 4096, 0u);
  }
}

TEST(Plan, HolesAndMemoryCapLimitCoalescing) {
  auto items = Items({{0, 10}, {10 + (1 << 20), 10}, {2 << 20, 100}, {(2 << 20) + 100, 100}});
  FilePlanInput file{{0, 1, 2, 3}, 1, 4 << 20};
  PlanLimits limits;
  limits.max_group_bytes = 150;
  const Plan plan = MakePlan(std::move(items), {file}, limits);
  // The 1 MiB hole splits the first two; the 150-byte cap splits the last two.
  EXPECT_EQ(plan.groups.size(), 4u);
}

}  // namespace
}  // namespace tensorstream
