// The backends, listed here explicitly (rather than self-registering from static
// initialisers) so that a static link can never silently drop one.
#include <array>

#include "common/text.h"
#include "storage/backend.h"
#include "storage/local/local_source.h"
#ifdef TENSORSTREAM_WITH_HTTP
#include "storage/azure/azure_backend.h"
#include "storage/gcs/gcs_backend.h"
#include "storage/s3/s3_backend.h"
#endif

namespace tensorstream {

namespace {

const std::array kBackends = {
    &kLocalBackend,
#ifdef TENSORSTREAM_WITH_HTTP
    &s3::kS3Backend,
    &gcs::kGcsBackend,
    &azure::kAzureBackend,
#endif
};

}  // namespace

const Backend* FindBackend(std::string_view scheme) {
  for (const Backend* backend : kBackends) {
    if (backend->scheme == scheme) return backend;
  }
  return nullptr;
}

Status CheckSettingKey(std::string_view key) {
  std::string known;
  for (const Backend* backend : kBackends) {
    for (const std::string_view setting : backend->settings) {
      if (setting == key) return Status::Ok();
      known += (known.empty() ? "" : ", ") + std::string(setting);
    }
  }
  return InvalidArgument("unknown setting " + Quoted(key) + " (known: " + known + ")");
}

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
  const Backend* backend = FindBackend(scheme);
  if (backend == nullptr) {
    return InvalidArgument(Printable(uri) + ": unsupported URI scheme '" + scheme + "://'");
  }
  return backend->open(uri, options);
}

Result<std::vector<ObjectInfo>> ListUri(const std::string& uri, const StorageOptions& options,
                                        bool recursive) {
  if (uri.empty()) return InvalidArgument("empty path");
  const std::string scheme = UriScheme(uri);
  const Backend* backend = FindBackend(scheme);
  if (backend == nullptr || backend->list == nullptr) {
    return InvalidArgument(Printable(uri) + ": listing is not supported for '" + scheme +
                           "://' URIs");
  }
  return backend->list(uri, options, recursive);
}

}  // namespace tensorstream
