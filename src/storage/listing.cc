#include "storage/listing.h"

#include <algorithm>

namespace tensorstream {

std::vector<ObjectInfo> SortedListing(std::vector<ObjectInfo> entries) {
  std::sort(entries.begin(), entries.end(),
            [](const ObjectInfo& a, const ObjectInfo& b) { return a.uri < b.uri; });
  entries.erase(std::unique(entries.begin(), entries.end(),
                            [](const ObjectInfo& a, const ObjectInfo& b) { return a.uri == b.uri; }),
                entries.end());
  return entries;
}

}  // namespace tensorstream
