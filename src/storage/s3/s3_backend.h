// The S3 backend (s3://BUCKET/KEY): objects read with ranged GETs pinned to the ETag seen
// when opened, listed with ListObjectsV2 (s3_list.h); addressing and credentials in
// s3_client.h. Clients are shared per process (SharedS3Client).
#pragma once

#include <memory>
#include <string>

#include "storage/backend.h"
#include "storage/source.h"

namespace tensorstream {

// Opens s3://BUCKET/KEY. Errors name the URI: kInvalidArgument (malformed URI, bad endpoint,
// wrong region), kNotFound (no such object or bucket), kPermissionDenied (no or rejected
// credentials), kUnavailable (server unreachable or failing past the retry budget).
Result<std::unique_ptr<Source>> OpenS3Source(const std::string& uri, const StorageOptions& options);

// The read size S3Source suggests: large enough that per-request latency (~tens of ms to
// AWS) is amortised, small enough that a retry or resume loses little.
inline constexpr uint64_t kS3PreferredChunkBytes = 8u << 20;

namespace s3 {
// Settings: s3.access_key_id, s3.secret_access_key, s3.session_token, s3.region,
// s3.endpoint (each falls back to the environment, see s3_client.h and credentials.h).
extern const Backend kS3Backend;
}  // namespace s3

}  // namespace tensorstream
