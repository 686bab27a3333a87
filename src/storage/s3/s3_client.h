// S3Client: where an S3 request goes (endpoint, addressing style, region) and how it is
// signed and sent. Shared by S3Source (HEAD + ranged GETs) and listing.
//
// Addressing:
//   * Endpoint: S3Config.endpoint_url, else AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL,
//     else AWS's regional endpoint https://s3.REGION.amazonaws.com. A URL without a scheme
//     is taken as https. A path in the endpoint URL ("http://host/prefix") is kept.
//   * Style: RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING (1/true or 0/false) when set;
//     otherwise virtual-hosted (https://BUCKET.s3.REGION.amazonaws.com/KEY) for AWS and
//     path-style (ENDPOINT/BUCKET/KEY) for a custom endpoint, since MinIO, SeaweedFS, Ceph
//     and friends are usually reached by IP or a single host name.
//     Buckets whose names are not valid DNS labels (capitals, underscores, or dots over
//     https, which would break the TLS name check) always go path-style.
//   * Virtual-hosted on loopback: use an endpoint like http://localhost:PORT, so requests go
//     to BUCKET.localhost:PORT, which curl resolves to loopback itself (RFC 6761); or set
//     TENSORSTREAM_HTTP_CONNECT_TO (see HttpOptions::FromEnvironment).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "storage/http/http_client.h"
#include "storage/s3/credentials.h"
#include "storage/source.h"

namespace tensorstream::s3 {

struct S3Location {
  std::string bucket;
  std::string key;  // may be empty (the bucket root) or end with '/'
};

// Parses "s3://BUCKET[/KEY]". Errors: kInvalidArgument naming the URI.
Result<S3Location> ParseS3Uri(const std::string& uri);

// The resolved addressing; exposed so tests can check the rules above.
struct EndpointConfig {
  std::string scheme;     // "http" or "https"
  std::string authority;  // "host" or "host:port", as in the URL
  std::string base_path;  // "" or "/prefix" (no trailing '/')
  bool custom = false;    // an endpoint URL was given
  bool virtual_hosted = false;
  std::string region;
};
Result<EndpointConfig> ResolveEndpoint(const S3Config& config, const Environment& env);

// Whether `bucket` can be a host name label under `scheme` (see the header comment).
bool IsVirtualHostableBucket(const std::string& bucket, const std::string& scheme);

// A request's destination: the URL to send and what goes into the signature.
struct Target {
  std::string url;   // encoded, with the query string
  std::string host;  // Host header
  std::string path;  // unencoded path, as signed
  std::vector<std::pair<std::string, std::string>> query;
};

// The target of an S3 request for `bucket`/`key` (key may be empty: the bucket itself) under
// `endpoint`'s addressing rules, with `query` (unencoded).
Target MakeS3Target(const EndpointConfig& endpoint, const std::string& bucket,
                    const std::string& key,
                    std::vector<std::pair<std::string, std::string>> query = {});

// Signs an S3 request to `target` as S3Client does: host, x-amz-content-sha256 (=
// payload_hash), x-amz-date and x-amz-security-token are signed. The request must carry
// Host: target.host, X-Amz-Content-SHA256: payload_hash, the returned extra_headers and
// Authorization. Pure (the time is an argument); tests compare it with botocore.
Signature SignS3Request(const std::string& method, const Target& target,
                        const std::string& payload_hash, const std::string& region,
                        const Credentials& credentials, std::time_t now);

// Turns a failed S3 response into a Status: 404 → kNotFound, 401/403 → kPermissionDenied,
// 400/416 and redirects (wrong region) → kInvalidArgument, 429/5xx → kUnavailable, others
// kIoError. The message has the HTTP status and S3's <Code> and <Message> when the body has
// them. `what` says what was attempted ("HEAD http://host/bucket/key"); may be empty.
Status S3ErrorStatus(const http::Response& response, const std::string& what);

class S3Client {
 public:
  // Resolves endpoint, region and credentials from `config` and the environment.
  static Result<std::shared_ptr<S3Client>> Create(const S3Config& config, const Environment& env);

  Target MakeTarget(const std::string& bucket, const std::string& key,
                    std::vector<std::pair<std::string, std::string>> query = {}) const {
    return MakeS3Target(endpoint_, bucket, key, std::move(query));
  }

  // One request with retries; returns the final response whatever its status.
  // `headers` are sent unsigned (Range, …).
  Result<http::Response> Send(const std::string& method, const Target& target,
                              const std::atomic<bool>* cancelled,
                              std::vector<http::Header> headers = {}) const;

  // Ranged GET into dst (see http::GetRange); errors are S3ErrorStatus. A non-empty
  // `etag` pins the read to that version of the object (If-Match): an object replaced
  // since is an error, never bytes of the new one at the old one's offsets.
  Status GetRange(const Target& target, uint64_t offset, uint64_t length, void* dst,
                  const std::atomic<bool>& cancelled, const std::string& etag = "") const;

  const EndpointConfig& endpoint() const { return endpoint_; }
  const http::HttpOptions& http_options() const { return http_options_; }
  CredentialsProvider& credentials() const { return *credentials_; }

 private:
  S3Client() = default;
  http::PrepareFn Signer(const Target& target) const;

  EndpointConfig endpoint_;
  http::HttpOptions http_options_;
  std::unique_ptr<CredentialsProvider> credentials_;
};

// The client for `options`' s3.* settings and the current environment, shared by every file
// and stream of the process that resolves the same way: endpoint and credentials are
// resolved once (credentials then refresh before they expire), and requests share the
// process's pooled connections. Thread-safe.
Result<std::shared_ptr<S3Client>> SharedS3Client(const StorageOptions& options);

}  // namespace tensorstream::s3
