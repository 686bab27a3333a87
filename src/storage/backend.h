// Storage backends: one descriptor per URI scheme, which opens, sizes, reads and lists
// that scheme's files. The pipeline and the C API know nothing else about storage.
//
// A backend reads its settings from StorageOptions::settings under "<scheme>.<name>" keys
// that it declares here (so a key no backend reads is refused where it is set), and from
// the environment. Backends that talk to a server keep their clients, credentials and
// tokens per process (see each backend), so opening the next file or stream costs no new
// credential lookup.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "storage/listing.h"
#include "storage/source.h"

namespace tensorstream {

struct Backend {
  std::string_view scheme;  // "s3" for s3://…; "" for local paths and file://
  std::string_view name;    // for messages: "local files", "S3", "Google Cloud Storage"
  // The settings keys it reads (each "<scheme>.<name>").
  std::span<const std::string_view> settings;
  Result<std::unique_ptr<Source>> (*open)(const std::string& uri, const StorageOptions& options);
  // See ListUri (storage/listing.h) for the contract.
  Result<std::vector<ObjectInfo>> (*list)(const std::string& uri, const StorageOptions& options,
                                          bool recursive);
};

// The backend of `scheme`, or null when none is built in.
const Backend* FindBackend(std::string_view scheme);

// OK when some backend reads the setting `key`; otherwise kInvalidArgument naming the
// known keys.
Status CheckSettingKey(std::string_view key);

}  // namespace tensorstream
