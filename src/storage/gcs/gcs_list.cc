#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <set>

#include "common/text.h"
#include "storage/gcs/gcs_backend.h"
#include "storage/gcs/gcs_client.h"

namespace tensorstream::gcs {

using nlohmann::json;

Result<std::vector<ObjectInfo>> ListGcsObjects(const std::string& uri_prefix,
                                               const StorageOptions& options, bool recursive,
                                               const ListLimits& limits) {
  TS_ASSIGN_OR_RETURN(const GcsLocation location, ParseGcsUri(uri_prefix));
  std::string prefix = location.object;
  if (!prefix.empty() && prefix.back() != '/') prefix.push_back('/');
  auto client_or = SharedGcsClient(options);
  if (!client_or.ok()) return client_or.status().WithContext(Printable(uri_prefix));
  const std::shared_ptr<GcsClient> client = std::move(client_or).value();

  std::vector<ObjectInfo> out;
  std::set<std::string> seen_tokens;
  std::string token;
  const std::string base = "gs://" + location.bucket + "/";
  const auto start = std::chrono::steady_clock::now();
  for (size_t pages = 1;; ++pages) {
    std::string url = client->ListUrl(location.bucket) + "?maxResults=1000";
    if (!prefix.empty()) url += "&prefix=" + http::UriEncode(prefix, true);
    if (!recursive) url += "&delimiter=%2F";
    if (!token.empty()) url += "&pageToken=" + http::UriEncode(token, true);
    const std::string what = "GET " + http::RedactUrl(url);
    TS_ASSIGN_OR_RETURN(const http::Response reply, client->Get(url, nullptr));
    if (reply.status != 200) return GcsErrorStatus(reply, what).WithContext(Printable(uri_prefix));
    const json page = json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
    if (!page.is_object()) {
      return IoError(Printable(uri_prefix) + ": " + what + ": the listing is not a JSON object");
    }
    if (page.contains("items") && page["items"].is_array()) {
      for (const json& item : page["items"]) {
        if (!item.is_object() || !item.contains("name") || !item["name"].is_string()) continue;
        const std::string name = item["name"].get<std::string>();
        // Folder markers ("dir/", zero bytes) are not files; a server ignoring prefix is.
        if (name.empty() || name.back() == '/' || name.rfind(prefix, 0) != 0) continue;
        int64_t size = 0;
        if (!item.contains("size") || !item["size"].is_string() ||
            !ParseInt64(item["size"].get<std::string>(), &size) || size < 0) {
          return IoError(Printable(uri_prefix) + ": " + what + ": object " + Quoted(name) +
                         " has no valid size");
        }
        out.push_back(
            {base + name, name.substr(prefix.size()), static_cast<uint64_t>(size), false});
      }
    }
    if (page.contains("prefixes") && page["prefixes"].is_array()) {
      for (const json& p : page["prefixes"]) {
        if (!p.is_string()) continue;
        const std::string name = p.get<std::string>();
        if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size()) continue;
        out.push_back({base + name, name.substr(prefix.size()), 0, true});
      }
    }
    if (!page.contains("nextPageToken") || !page["nextPageToken"].is_string()) break;
    token = page["nextPageToken"].get<std::string>();
    if (token.empty() || !seen_tokens.insert(token).second) {
      return IoError(Printable(uri_prefix) + ": " + what + ": a listing page repeats its token");
    }
    if (pages >= limits.max_pages || std::chrono::steady_clock::now() - start > limits.max_time) {
      return IoError(Printable(uri_prefix) + ": the listing did not end after " +
                     std::to_string(pages) + " pages (" + std::to_string(out.size()) +
                     " entries): the server keeps answering a nextPageToken");
    }
  }
  return SortedListing(std::move(out));
}

}  // namespace tensorstream::gcs
