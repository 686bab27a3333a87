// The SafeTensors dtype table: name ↔ element width in bits.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace tensorstream {

struct DtypeInfo {
  std::string_view name;  // as written in SafeTensors headers, e.g. "BF16"
  uint32_t bits;          // width of one element; F4 packs two elements per byte
};

// The dtype named `name`, or nullopt when SafeTensors defines no such dtype.
std::optional<DtypeInfo> LookupDtype(std::string_view name);

}  // namespace tensorstream
