#include <cstdlib>
#include <cstring>
#include <memory>

#include "storage/source.h"

namespace tensorstream {

Status ReadUnaligned(Source& source, uint64_t offset, uint64_t length, void* dst,
                     const std::atomic<bool>& cancelled) {
  const uint64_t align = source.RequiredAlignment();
  if (align <= 1) return source.ReadAt(offset, length, dst, cancelled);
  const uint64_t begin = offset / align * align;
  const uint64_t end = (offset + length + align - 1) / align * align;
  void* raw = std::aligned_alloc(align, end - begin);
  if (raw == nullptr) return Status(StatusCode::kOutOfMemory, source.uri() + ": out of memory");
  std::unique_ptr<void, decltype(&std::free)> window(raw, &std::free);
  TS_RETURN_IF_ERROR(source.ReadAt(begin, end - begin, raw, cancelled));
  std::memcpy(dst, static_cast<char*>(raw) + (offset - begin), length);
  return Status::Ok();
}

}  // namespace tensorstream
