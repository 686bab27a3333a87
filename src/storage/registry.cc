// The scheme registry: maps a URI's scheme to the backend that opens it. Backends are
// listed here explicitly (rather than self-registering from static initialisers) so a
// static link can never silently drop one.
#include <string_view>

#include "storage/local/local_source.h"
#ifdef TENSORSTREAM_WITH_S3
#include "storage/s3/s3_source.h"
#endif
#include "storage/source.h"

namespace tensorstream {

namespace {

using Opener = Result<std::unique_ptr<Source>> (*)(const std::string& uri,
                                                   const StorageOptions& options);

struct SchemeEntry {
  std::string_view scheme;
  Opener open;
};

constexpr SchemeEntry kSchemes[] = {
    {"", &OpenLocalSource},
#ifdef TENSORSTREAM_WITH_S3
    {"s3", &OpenS3Source},
#endif
};

}  // namespace

std::string UriScheme(const std::string& uri) {
  const size_t colon = uri.find("://");
  if (colon == std::string::npos) return "";
  std::string scheme = uri.substr(0, colon);
  if (scheme == "file") return "";
  return scheme;
}

Result<std::unique_ptr<Source>> OpenSource(const std::string& uri, const StorageOptions& options) {
  if (uri.empty()) return InvalidArgument("empty path");
  const std::string scheme = UriScheme(uri);
  for (const SchemeEntry& entry : kSchemes) {
    if (entry.scheme == scheme) return entry.open(uri, options);
  }
  return InvalidArgument(uri + ": unsupported URI scheme '" + scheme + "://'");
}

}  // namespace tensorstream
