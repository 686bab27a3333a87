// Listing S3 prefixes with ListObjectsV2. ListUri (storage/listing.h) dispatches here.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "storage/listing.h"
#include "storage/source.h"

namespace tensorstream::s3 {

// See ListUri for the contract. `uri_prefix` is "s3://BUCKET[/PREFIX]".
Result<std::vector<ObjectInfo>> ListObjects(const std::string& uri_prefix,
                                            const StorageOptions& options, bool recursive,
                                            const ListLimits& limits);
inline Result<std::vector<ObjectInfo>> ListObjects(const std::string& uri_prefix,
                                                   const StorageOptions& options, bool recursive) {
  return ListObjects(uri_prefix, options, recursive, ListLimits{});
}

// One parsed ListObjectsV2 page (exposed for tests).
struct ListPage {
  struct Object {
    std::string key;
    uint64_t size = 0;
  };
  std::vector<Object> objects;
  std::vector<std::string> common_prefixes;
  bool truncated = false;
  std::string next_token;
};
// Parses a ListBucketResult document; keys are URL-decoded when it says
// <EncodingType>url</EncodingType>. Errors: kIoError on a document without ListBucketResult
// or with a non-numeric Size.
Result<ListPage> ParseListPage(std::string_view xml);

}  // namespace tensorstream::s3
