// AzureClient: Azure Blob Storage over its REST API.
//   properties  HEAD {endpoint}/CONTAINER/BLOB                   Content-Length and ETag
//   read        GET  …/CONTAINER/BLOB  Range, If-Match: ETag      pinned to the version
//   list        GET  {endpoint}/CONTAINER?restype=container&comp=list&prefix=…&delimiter=/
//                    &marker=…
// The account: the azure.account_name setting, AZURE_STORAGE_ACCOUNT_NAME or the connection
// string. The endpoint: the azure.endpoint setting, the connection string's BlobEndpoint (or
// its protocol and EndpointSuffix), else https://ACCOUNT.blob.core.windows.net
// (AZURE_STORAGE_ENDPOINT_SUFFIX replaces blob.core.windows.net). An endpoint with a path
// (Azurite: http://127.0.0.1:10000/ACCOUNT) is used as given. Credentials:
// azure_credentials.h.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "common/environment.h"
#include "common/status.h"
#include "storage/azure/azure_credentials.h"
#include "storage/http/http_client.h"
#include "storage/source.h"

namespace tensorstream::azure {

struct AzureLocation {
  std::string container;
  std::string blob;  // may be empty (the container root) or end with '/'
};

// Parses "az://CONTAINER[/BLOB]". Errors: kInvalidArgument naming the URI.
Result<AzureLocation> ParseAzureUri(const std::string& uri);

// A failed reply as a Status: 404 → kNotFound, 401/403 → kPermissionDenied, 400/416 →
// kInvalidArgument, 412 → replaced since opened, 429/5xx → kUnavailable; the message has the
// HTTP status and Azure's error code and message (x-ms-error-code, the XML body).
Status AzureErrorStatus(const http::Response& response, const std::string& what);

class AzureClient {
 public:
  static Result<std::shared_ptr<AzureClient>> Create(const StorageOptions& options,
                                                     const Environment& env);

  // {endpoint}/CONTAINER/BLOB, encoded ('/' kept).
  std::string BlobUrl(const AzureLocation& location) const;
  // {endpoint}/CONTAINER
  std::string ContainerUrl(const std::string& container) const;

  // A request with authorisation and retries; the final response whatever its status.
  Result<http::Response> Send(const std::string& method, const std::string& url) const;
  // Ranged GET into dst, pinned to `etag` (a replaced blob fails with 412, reported so).
  Status GetRange(const std::string& blob_url, const std::string& etag, uint64_t offset,
                  uint64_t length, void* dst, const std::atomic<bool>& cancelled) const;

  const std::string& endpoint() const { return endpoint_; }

 private:
  AzureClient() = default;
  http::PrepareFn Authorizer() const;

  std::string endpoint_;  // scheme://host[:port][/path], no trailing '/'
  http::HttpOptions http_options_;
  std::shared_ptr<Credentials> credentials_;
};

// The client for `options`' azure.* settings and the current environment, shared by every
// file and stream of the process that resolves the same way (tokens included). Thread-safe.
Result<std::shared_ptr<AzureClient>> SharedAzureClient(const StorageOptions& options);

}  // namespace tensorstream::azure
