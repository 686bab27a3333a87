// The Google Cloud Storage backend (gs://BUCKET/OBJECT): objects read with ranged GETs of
// their media pinned to the generation seen when opened, listed page by page; endpoint and
// API in gcs_client.h, credentials in gcs_credentials.h. Clients are shared per process.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "storage/backend.h"
#include "storage/listing.h"
#include "storage/source.h"

namespace tensorstream::gcs {

// Opens gs://BUCKET/OBJECT. Errors name the URI: kInvalidArgument (malformed URI, bad
// endpoint), kNotFound (no such object or bucket), kPermissionDenied (no or rejected
// credentials), kUnavailable (server unreachable or failing past the retry budget).
Result<std::unique_ptr<Source>> OpenGcsSource(const std::string& uri,
                                              const StorageOptions& options);

// See ListUri for the contract. `uri_prefix` is "gs://BUCKET[/PREFIX]".
Result<std::vector<ObjectInfo>> ListGcsObjects(const std::string& uri_prefix,
                                               const StorageOptions& options, bool recursive,
                                               const ListLimits& limits = {});

// The read size a GCS object suggests (as for S3: per-request latency amortised, little
// lost to a retry).
inline constexpr uint64_t kGcsPreferredChunkBytes = 8u << 20;

// Settings: gcs.credential_file, gcs.endpoint, gcs.anonymous (see gcs_credentials.h and
// gcs_client.h for what each falls back to).
extern const Backend kGcsBackend;

}  // namespace tensorstream::gcs
