#include "pipeline/download.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

#include "common/text.h"
#include "pipeline/streamer.h"

namespace tensorstream {

namespace {

// How much of an object one stream of a download plans at once.
constexpr uint64_t kDownloadWindowBytes = 4ull << 30;

// Closes the descriptor and removes the temporary file unless committed.
class TempFile {
 public:
  TempFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }
  int fd() const { return fd_; }
  Status Commit(const std::string& final_path) {
    int err = ::fsync(fd_) != 0 ? errno : 0;
    if (::close(fd_) != 0 && err == 0) err = errno;
    fd_ = -1;
    if (err != 0) return ErrnoStatus(err, path_ + ": cannot write");
    if (::rename(path_.c_str(), final_path.c_str()) != 0) {
      return ErrnoStatus(errno, final_path + ": cannot rename the download into place");
    }
    committed_ = true;
    return Status::Ok();
  }

 private:
  std::string path_;
  int fd_;
  bool committed_ = false;
};

}  // namespace

Status CheckRelativePath(const std::string& relative) {
  const auto bad = [&](const std::string& why) {
    return InvalidArgument("refusing to write " + Quoted(relative) + ": " + why);
  };
  if (relative.empty()) return bad("empty path");
  if (relative.front() == '/') return bad("absolute path");
  if (relative.find('\0') != std::string::npos || relative.find('\\') != std::string::npos) {
    return bad("NUL or backslash in path");
  }
  size_t start = 0;
  while (start <= relative.size()) {
    const size_t end = std::min(relative.find('/', start), relative.size());
    const std::string segment = relative.substr(start, end - start);
    if (segment.empty() || segment == "." || segment == "..") {
      return bad("'.', '..' or empty path segment would leave the destination");
    }
    start = end + 1;
  }
  return Status::Ok();
}

Result<uint64_t> Download(const std::string& uri, const std::string& dst_dir,
                          const std::string& relative, const StreamOptions& options,
                          const ProgressFn& progress) {
  TS_RETURN_IF_ERROR(CheckRelativePath(relative));
  const std::filesystem::path target = std::filesystem::path(dst_dir) / relative;
  std::error_code ec;
  std::filesystem::create_directories(target.parent_path(), ec);
  if (ec) return ErrnoStatus(ec.value(), target.parent_path().string() + ": cannot create");

  StreamOptions host_options = options;
  host_options.device = -1;  // the bytes go to a file through host memory

  // A name of this download's own (O_EXCL), so that two pulls of one object into one
  // directory never write into each other's partial file.
  std::string temp_path = target.string() + ".tensorstream-partial-XXXXXX";
  const int fd = ::mkostemp(temp_path.data(), O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, Printable(temp_path) + ": cannot create");
  TempFile temp(temp_path, fd);
  uint64_t written = 0;
  uint64_t size = 0;
  // The object in windows, each planned when it starts: a size the server lies about
  // (2^64 - 1, say) costs one window's plan, and the first range that is not there fails.
  for (uint64_t begin = 0; begin == 0 || begin < size; begin += kDownloadWindowBytes) {
    Streamer streamer(host_options);
    TS_ASSIGN_OR_RETURN(const size_t index, streamer.AddFileWindow(uri, begin, kDownloadWindowBytes,
                                                                   options.chunk_bytes));
    const uint64_t now = streamer.file(index).source->Size();
    if (begin > 0 && now != size) {
      return IoError(uri + ": changed size during the download (" + std::to_string(size) +
                     " bytes, then " + std::to_string(now) + ")");
    }
    size = now;
    TS_RETURN_IF_ERROR(streamer.Start());
    while (true) {
      TS_ASSIGN_OR_RETURN(std::unique_ptr<DeliveredTensor> range, streamer.Next());
      if (range == nullptr) break;
      const auto* data = static_cast<const char*>(range->data());
      uint64_t done = 0;
      while (done < range->item().nbytes) {
        const ssize_t n = ::pwrite(fd, data + done, range->item().nbytes - done,
                                   static_cast<off_t>(range->item().offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ErrnoStatus(errno, Printable(temp_path) + ": cannot write");
        done += static_cast<uint64_t>(n);
      }
      written += done;
      if (progress) progress(written);
    }
    if (size == 0) break;
  }
  TS_RETURN_IF_ERROR(temp.Commit(target.string()));
  return written;
}

}  // namespace tensorstream
