// The Azure Blob Storage backend (az://CONTAINER/BLOB): blobs read with ranged GETs pinned
// to the ETag seen when opened, listed page by page; endpoint in azure_client.h, credentials
// in azure_credentials.h. Clients are shared per process.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "storage/backend.h"
#include "storage/listing.h"
#include "storage/source.h"

namespace tensorstream::azure {

// Opens az://CONTAINER/BLOB. Errors name the URI: kInvalidArgument (malformed URI, no
// account, bad endpoint), kNotFound (no such blob or container), kPermissionDenied (no or
// rejected credentials), kUnavailable (server unreachable or failing past the retry budget).
Result<std::unique_ptr<Source>> OpenAzureSource(const std::string& uri,
                                                const StorageOptions& options);

// See ListUri for the contract. `uri_prefix` is "az://CONTAINER[/PREFIX]".
Result<std::vector<ObjectInfo>> ListAzureBlobs(const std::string& uri_prefix,
                                               const StorageOptions& options, bool recursive,
                                               const ListLimits& limits = {});

// The read size a blob suggests (as for S3 and GCS).
inline constexpr uint64_t kAzurePreferredChunkBytes = 8u << 20;

// Settings: azure.account_name, azure.account_key, azure.sas_token, azure.connection_string,
// azure.endpoint, azure.anonymous (see azure_credentials.h and azure_client.h).
extern const Backend kAzureBackend;

}  // namespace tensorstream::azure
