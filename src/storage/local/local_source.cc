#include "storage/local/local_source.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace tensorstream {

namespace {

std::string StripFileScheme(const std::string& uri) {
  constexpr std::string_view kPrefix = "file://";
  if (uri.rfind(kPrefix, 0) == 0) return uri.substr(kPrefix.size());
  return uri;
}

class LocalSource final : public Source {
 public:
  LocalSource(std::string uri, int fd, uint64_t size, bool direct)
      : uri_(std::move(uri)), fd_(fd), size_(size), direct_(direct) {}
  ~LocalSource() override { ::close(fd_); }

  const std::string& uri() const override { return uri_; }
  uint64_t Size() const override { return size_; }
  uint64_t RequiredAlignment() const override { return direct_ ? kDirectIoAlignment : 1; }

  Result<std::shared_ptr<const FileMapping>> Map() override {
    if (direct_) return {nullptr};  // O_DIRECT asks to bypass the page cache
    if (size_ == 0) return std::make_shared<const FileMapping>(nullptr, 0);
    // MAP_PRIVATE + PROT_WRITE: callers may modify their tensors (copy-on-write) while
    // the file stays untouched.
    void* data = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd_, 0);
    if (data == MAP_FAILED) return ErrnoStatus(errno, uri_ + ": cannot map");
    return std::make_shared<const FileMapping>(static_cast<const char*>(data), size_);
  }

  Status ReadAt(uint64_t offset, uint64_t length, void* dst,
                const std::atomic<bool>& /*cancelled*/) override {
    auto* out = static_cast<char*>(dst);
    uint64_t done = 0;
    while (done < length) {
      const ssize_t n = ::pread(fd_, out + done, length - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, uri_ + ": read of " + std::to_string(length) +
                                      " bytes at offset " + std::to_string(offset) + " failed");
      }
      if (n == 0) {
        // O_DIRECT reads of the file's last block legitimately stop at end of file; the
        // caller asked for bytes past it only to keep the length aligned.
        if (direct_ && offset + done >= size_) {
          std::fill(out + done, out + length, 0);
          return Status::Ok();
        }
        return IoError(uri_ + ": file shrank while reading: end of file at offset " +
                       std::to_string(offset + done) + ", expected " + std::to_string(size_) +
                       " bytes");
      }
      done += static_cast<uint64_t>(n);
      if (direct_ && done < length && offset + done >= size_) {
        // The aligned read passed the end of the file: the rest is zeros (retrying at an
        // unaligned offset would be refused by some filesystems).
        std::fill(out + done, out + length, 0);
        return Status::Ok();
      }
    }
    return Status::Ok();
  }

 private:
  const std::string uri_;
  const int fd_;
  const uint64_t size_;
  const bool direct_;
};

}  // namespace

Result<std::unique_ptr<Source>> OpenLocalSource(const std::string& uri,
                                                const StorageOptions& options) {
  const std::string path = StripFileScheme(uri);
  bool direct = options.direct_io;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
  if (fd < 0 && direct && errno == EINVAL) {
    // The filesystem (tmpfs, some overlays) refuses O_DIRECT: fall back to buffered reads.
    direct = false;
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) return ErrnoStatus(errno, path + ": cannot open");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoStatus(err, path + ": cannot stat");
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return InvalidArgument(path + ": is a directory, not a file");
  }
  return std::unique_ptr<Source>(
      new LocalSource(uri, fd, static_cast<uint64_t>(st.st_size), direct));
}

}  // namespace tensorstream
