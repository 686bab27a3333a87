// GcsClient: Google Cloud Storage over its JSON API. Both APIs were measured against
// fake-gcs-server with parallel ranged GETs of one 1.5 GB object (bench/bench_stores.py):
// equal within noise (JSON media 2.14 GB/s, XML 2.22 GB/s; bench/RESULTS.md). The JSON API
// won on what else it gives: metadata, listing and errors in one format, generation
// pinning by parameter, and every emulator serves it (the XML API only under the host
// name fake-gcs-server is told is public):
//   metadata  GET {endpoint}/storage/v1/b/BUCKET/o/OBJECT           size and generation
//   media     GET …/o/OBJECT?alt=media&generation=G  with Range       pinned to the version
//   list      GET {endpoint}/storage/v1/b/BUCKET/o?prefix=…&delimiter=/&pageToken=…
// The endpoint: the gcs.endpoint setting, CLOUD_STORAGE_EMULATOR_ENDPOINT, STORAGE_EMULATOR_HOST
// (a URL, or host:port taken as http), else https://storage.googleapis.com. Credentials:
// gcs_credentials.h.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "common/environment.h"
#include "common/status.h"
#include "storage/gcs/gcs_credentials.h"
#include "storage/http/http_client.h"
#include "storage/source.h"

namespace tensorstream::gcs {

struct GcsLocation {
  std::string bucket;
  std::string object;  // may be empty (the bucket root) or end with '/'
};

// Parses "gs://BUCKET[/OBJECT]". Errors: kInvalidArgument naming the URI.
Result<GcsLocation> ParseGcsUri(const std::string& uri);

struct GcsEndpoint {
  std::string url;  // scheme://host[:port], no trailing '/'
  bool emulator = false;
};
// Errors: kInvalidArgument for an endpoint that is not http(s)://host[:port].
Result<GcsEndpoint> ResolveGcsEndpoint(const std::string& setting, const Environment& env);

// A failed GCS reply as a Status: 404 → kNotFound, 401/403 → kPermissionDenied, 400/416 →
// kInvalidArgument, 412 → replaced since opened, 429/5xx → kUnavailable; the message has the
// HTTP status and the server's JSON error message. `what` says what was attempted.
Status GcsErrorStatus(const http::Response& response, const std::string& what);

class GcsClient {
 public:
  static Result<std::shared_ptr<GcsClient>> Create(const StorageOptions& options,
                                                   const Environment& env);

  // The URL of an object's metadata (…/storage/v1/b/BUCKET/o/OBJECT, encoded).
  std::string ObjectUrl(const GcsLocation& location) const;
  std::string ListUrl(const std::string& bucket) const;

  // GET with authorisation and retries; the final response whatever its status.
  Result<http::Response> Get(const std::string& url, const std::atomic<bool>* cancelled) const;
  // Ranged GET of the object's media into dst, pinned to `generation` (a replaced object
  // reads as 404, reported as replaced).
  Status GetRange(const std::string& object_url, const std::string& generation, uint64_t offset,
                  uint64_t length, void* dst, const std::atomic<bool>& cancelled) const;

  const GcsEndpoint& endpoint() const { return endpoint_; }

 private:
  GcsClient() = default;
  http::PrepareFn Authorizer() const;

  GcsEndpoint endpoint_;
  http::HttpOptions http_options_;
  std::shared_ptr<Credentials> credentials_;
};

// The client for `options`' gcs.* settings and the current environment, shared by every
// file and stream of the process that resolves the same way (credentials and their
// tokens included). Thread-safe.
Result<std::shared_ptr<GcsClient>> SharedGcsClient(const StorageOptions& options);

}  // namespace tensorstream::gcs
