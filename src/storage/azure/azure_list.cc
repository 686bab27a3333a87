#include <chrono>
#include <set>

#include "common/text.h"
#include "storage/azure/azure_backend.h"
#include "storage/azure/azure_client.h"
#include "storage/http/xml.h"

namespace tensorstream::azure {

namespace {

// A blob's <Name>: plain, or percent-encoded when Azure marks it Encoded="true" (names with
// characters XML cannot carry).
std::optional<std::string> BlobName(std::string_view element) {
  if (auto plain = http::XmlTagText(element, "Name")) return plain;
  constexpr std::string_view kEncoded = "<Name Encoded=\"true\">";
  const size_t start = element.find(kEncoded);
  if (start == std::string_view::npos) return std::nullopt;
  const size_t body = start + kEncoded.size();
  const size_t end = element.find("</Name>", body);
  if (end == std::string_view::npos) return std::nullopt;
  return http::UriDecode(http::XmlUnescape(element.substr(body, end - body)));
}

}  // namespace

Result<std::vector<ObjectInfo>> ListAzureBlobs(const std::string& uri_prefix,
                                               const StorageOptions& options, bool recursive,
                                               const ListLimits& limits) {
  TS_ASSIGN_OR_RETURN(const AzureLocation location, ParseAzureUri(uri_prefix));
  std::string prefix = location.blob;
  if (!prefix.empty() && prefix.back() != '/') prefix.push_back('/');
  auto client_or = SharedAzureClient(options);
  if (!client_or.ok()) return client_or.status().WithContext(Printable(uri_prefix));
  const std::shared_ptr<AzureClient> client = std::move(client_or).value();

  std::vector<ObjectInfo> out;
  std::set<std::string> seen_markers;
  std::string marker;
  const std::string base = "az://" + location.container + "/";
  const auto start = std::chrono::steady_clock::now();
  for (size_t pages = 1;; ++pages) {
    // Pages of 1,000 (Azure allows 5,000) as for S3 and GCS: a model folder fits in one,
    // and the conformance suite's 1,050 keys make Azurite page too.
    std::string url =
        client->ContainerUrl(location.container) + "?restype=container&comp=list&maxresults=1000";
    if (!prefix.empty()) url += "&prefix=" + http::UriEncode(prefix, true);
    if (!recursive) url += "&delimiter=%2F";
    if (!marker.empty()) url += "&marker=" + http::UriEncode(marker, true);
    const std::string what = "GET " + http::RedactUrl(url);
    TS_ASSIGN_OR_RETURN(const http::Response reply, client->Send("GET", url));
    if (reply.status != 200) {
      Status s = AzureErrorStatus(reply, what);
      if (reply.status == 404)
        s = Status(s.code(), s.message() + " (not found: no such container)");
      return s.WithContext(Printable(uri_prefix));
    }
    if (reply.body.find("<EnumerationResults") == std::string::npos) {
      return IoError(Printable(uri_prefix) + ": " + what + ": the reply is not a blob listing");
    }
    Status item_error = Status::Ok();
    http::ForEachXmlElement(reply.body, "Blob", [&](std::string_view item) {
      const std::optional<std::string> name = BlobName(item);
      // Folder markers ("dir/") are not files; a server ignoring prefix is.
      if (!name || name->empty() || name->back() == '/' || name->rfind(prefix, 0) != 0) return;
      int64_t size = 0;
      const std::optional<std::string> length = http::XmlTagText(item, "Content-Length");
      if (!length || !ParseInt64(*length, &size) || size < 0) {
        if (item_error.ok()) {
          item_error = IoError(Printable(uri_prefix) + ": " + what + ": blob " + Quoted(*name) +
                               " has no valid Content-Length");
        }
        return;
      }
      out.push_back(
          {base + *name, name->substr(prefix.size()), static_cast<uint64_t>(size), false});
    });
    TS_RETURN_IF_ERROR(item_error);
    http::ForEachXmlElement(reply.body, "BlobPrefix", [&](std::string_view item) {
      const std::optional<std::string> name = BlobName(item);
      if (!name || name->rfind(prefix, 0) != 0 || name->size() == prefix.size()) return;
      out.push_back({base + *name, name->substr(prefix.size()), 0, true});
    });
    marker = http::XmlTagText(reply.body, "NextMarker").value_or("");
    if (marker.empty()) break;
    if (!seen_markers.insert(marker).second) {
      return IoError(Printable(uri_prefix) + ": " + what + ": a listing page repeats its marker");
    }
    if (pages >= limits.max_pages || std::chrono::steady_clock::now() - start > limits.max_time) {
      return IoError(Printable(uri_prefix) + ": the listing did not end after " +
                     std::to_string(pages) + " pages (" + std::to_string(out.size()) +
                     " entries): the server keeps answering a NextMarker");
    }
  }
  return SortedListing(std::move(out));
}

}  // namespace tensorstream::azure
