#include "storage/source.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

namespace tensorstream {

Status CheckReadWithinObject(const std::string& uri, uint64_t size, uint64_t offset,
                             uint64_t length) {
  if (offset <= size && length <= size - offset) return Status::Ok();
  return InvalidArgument(uri + ": read of " + std::to_string(length) + " bytes at offset " +
                         std::to_string(offset) + " is past the end of the object (" +
                         std::to_string(size) + " bytes)");
}

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

FileMapping::~FileMapping() {
  if (size_ > 0) ::munmap(const_cast<char*>(data_), size_);
}

Status FileMapping::Populate(uint64_t offset, uint64_t length) const {
#ifdef MADV_POPULATE_READ
  // Linux >= 5.14: faults the range in with one call, reading ahead as needed.
  constexpr uint64_t kPage = 4096;
  const uint64_t begin = offset / kPage * kPage;
  if (::madvise(const_cast<char*>(data_) + begin, offset + length - begin, MADV_POPULATE_READ) ==
      0) {
    return Status::Ok();
  }
  if (errno != EINVAL) return ErrnoStatus(errno, "cannot read mapped file range");
#endif
  // Older kernels: touch one byte per page.
  volatile char sink = 0;
  for (uint64_t at = offset; at < offset + length; at += 4096) sink = sink + data_[at];
  if (length > 0) sink = sink + data_[offset + length - 1];
  return Status::Ok();
}

double FileMapping::ResidentFraction(uint64_t offset, uint64_t length) const {
  if (length == 0) return 1;
  const auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t begin = offset / page * page;  // the mapping itself starts on a page
  const uint64_t pages = (offset + length - begin + page - 1) / page;
  std::vector<unsigned char> resident(pages);
  if (::mincore(const_cast<char*>(data_) + begin, pages * page, resident.data()) != 0) return 1;
  uint64_t in_cache = 0;
  for (const unsigned char r : resident) in_cache += r & 1;
  return static_cast<double>(in_cache) / static_cast<double>(pages);
}

}  // namespace tensorstream
