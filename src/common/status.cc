#include "common/status.h"

#include <cerrno>
#include <cstring>

namespace tensorstream {

Status ErrnoStatus(int err, const std::string& what) {
  std::string message = what + ": " + std::strerror(err);
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return Status(StatusCode::kNotFound, message);
    case EACCES:
    case EPERM:
      return Status(StatusCode::kPermissionDenied, message);
    case ENOMEM:
      return Status(StatusCode::kOutOfMemory, message);
    case EINVAL:
    case EISDIR:
      return Status(StatusCode::kInvalidArgument, message);
    default:
      return Status(StatusCode::kIoError, message);
  }
}

}  // namespace tensorstream
