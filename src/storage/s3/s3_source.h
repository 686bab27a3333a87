// S3Source: one S3 object read with ranged GETs (see s3_client.h for addressing and
// credentials). The size comes from a HEAD when the source is opened.
#pragma once

#include <memory>
#include <string>

#include "storage/source.h"

namespace tensorstream {

// Opens s3://BUCKET/KEY. Errors name the URI: kInvalidArgument (malformed URI, bad endpoint,
// wrong region), kNotFound (no such object or bucket), kPermissionDenied (no or rejected
// credentials), kUnavailable (server unreachable or failing past the retry budget).
Result<std::unique_ptr<Source>> OpenS3Source(const std::string& uri, const StorageOptions& options);

// The read size S3Source suggests: large enough that per-request latency (~tens of ms to
// AWS) is amortised, small enough that a retry or resume loses little.
inline constexpr uint64_t kS3PreferredChunkBytes = 8u << 20;

}  // namespace tensorstream
