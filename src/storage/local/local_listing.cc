// Listing a local directory (the local backend's `list`).
#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>

#include "storage/local/local_source.h"

namespace tensorstream {

namespace fs = std::filesystem;

Result<std::vector<ObjectInfo>> ListLocalDirectory(const std::string& uri,
                                                   const StorageOptions& /*options*/,
                                                   bool recursive) {
  constexpr std::string_view kFile = "file://";
  const std::string dir = uri.rfind(kFile, 0) == 0 ? uri.substr(kFile.size()) : uri;
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (ec || !fs::exists(st)) {
    return ErrnoStatus(ec ? ec.value() : ENOENT, uri + ": cannot list directory");
  }
  if (!fs::is_directory(st)) return InvalidArgument(uri + ": not a directory");

  // uri + "/" + relative, without doubling a trailing '/'.
  const std::string base = (!uri.empty() && uri.back() == '/') ? uri : uri + "/";
  std::vector<ObjectInfo> out;
  auto add = [&](const fs::directory_entry& entry) -> Status {
    std::error_code e;
    const std::string rel = entry.path().lexically_relative(dir).generic_string();
    const fs::file_status s = entry.status(e);  // follows symbolic links
    if (e) return Status::Ok();                 // dangling link: not a file
    if (fs::is_regular_file(s)) {
      const uintmax_t size = entry.file_size(e);
      if (e) return ErrnoStatus(e.value(), base + rel + ": cannot stat");
      out.push_back({base + rel, rel, static_cast<uint64_t>(size), false});
    } else if (fs::is_directory(s) && !recursive) {
      out.push_back({base + rel + "/", rel + "/", 0, true});  // as object stores name them
    }
    return Status::Ok();
  };
  if (recursive) {
    fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      TS_RETURN_IF_ERROR(add(*it));
    }
  } else {
    fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
      TS_RETURN_IF_ERROR(add(*it));
    }
  }
  if (ec) return ErrnoStatus(ec.value(), uri + ": cannot list directory");
  return SortedListing(std::move(out));
}

}  // namespace tensorstream
