// Feeds arbitrary bytes to the SafeTensors header parser as a whole file image: the
// parser must return a Status (never crash, hang, overflow or over-allocate), every
// accepted header must describe tensors that lie inside the file and tile its data, and
// its re-serialised __metadata__ must be a JSON object again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "format/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tensorstream;
  unsigned char prefix[8] = {};
  for (size_t i = 0; i < 8 && i < size; ++i) prefix[i] = data[i];
  auto length = ParseHeaderLength("fuzz.safetensors", prefix, size);
  if (!length.ok()) return 0;
  const std::string_view json(reinterpret_cast<const char*>(data) + 8, *length);
  auto header = ParseHeaderJson("fuzz.safetensors", json, size);
  if (!header.ok()) return 0;
  uint64_t expected = header->data_offset;
  for (const TensorEntry& t : header->tensors) {
    if (t.offset != expected || t.offset + t.nbytes > size) std::abort();
    expected += t.nbytes;
  }
  if (expected != size) std::abort();
  if (!nlohmann::json::accept(header->metadata_json)) std::abort();
  return 0;
}
