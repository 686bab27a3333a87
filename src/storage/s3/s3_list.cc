#include "storage/s3/s3_list.h"

#include <algorithm>
#include <set>

#include "storage/http/xml.h"
#include "storage/s3/s3_client.h"

namespace tensorstream::s3 {

Result<ListPage> ParseListPage(std::string_view xml) {
  if (xml.find("<ListBucketResult") == std::string_view::npos) {
    return IoError("ListObjectsV2 reply is not a ListBucketResult document");
  }
  ListPage page;
  const bool url_encoded = http::XmlTagText(xml, "EncodingType").value_or("") == "url";
  auto decode = [url_encoded](std::string s) {
    // Form encoding ('+' for space), as AWS and botocore do for encoding-type=url.
    return url_encoded ? http::UriDecode(s, /*plus_is_space=*/true) : s;
  };
  Status bad;
  http::ForEachXmlElement(xml, "Contents", [&](std::string_view item) {
    ListPage::Object obj;
    obj.key = decode(http::XmlTagText(item, "Key").value_or(""));
    const std::string size = http::XmlTagText(item, "Size").value_or("0");
    char* end = nullptr;
    obj.size = std::strtoull(size.c_str(), &end, 10);
    if (size.empty() || *end != '\0') bad = IoError("ListObjectsV2: bad <Size> '" + size + "'");
    page.objects.push_back(std::move(obj));
  });
  TS_RETURN_IF_ERROR(bad);
  http::ForEachXmlElement(xml, "CommonPrefixes", [&](std::string_view item) {
    if (auto p = http::XmlTagText(item, "Prefix")) page.common_prefixes.push_back(decode(*p));
  });
  page.truncated = http::XmlTagText(xml, "IsTruncated").value_or("false") == "true";
  page.next_token = http::XmlTagText(xml, "NextContinuationToken").value_or("");
  return page;
}

Result<std::vector<ObjectInfo>> ListObjects(const std::string& uri_prefix,
                                            const StorageOptions& options, bool recursive,
                                            const ListLimits& limits) {
  TS_ASSIGN_OR_RETURN(S3Location loc, ParseS3Uri(uri_prefix));
  std::string prefix = loc.key;
  if (!prefix.empty() && prefix.back() != '/') prefix.push_back('/');
  auto client_or = SharedS3Client(options);
  if (!client_or.ok()) return client_or.status().WithContext(uri_prefix);
  const std::shared_ptr<S3Client> client = std::move(client_or).value();

  std::vector<ObjectInfo> out;
  std::set<std::string> seen_tokens;
  std::string token;
  const std::string base = "s3://" + loc.bucket + "/";
  const auto start = std::chrono::steady_clock::now();
  for (size_t pages = 1;; ++pages) {
    std::vector<std::pair<std::string, std::string>> query = {
        {"list-type", "2"}, {"encoding-type", "url"}, {"max-keys", "1000"}};
    if (!prefix.empty()) query.emplace_back("prefix", prefix);
    if (!recursive) query.emplace_back("delimiter", "/");
    if (!token.empty()) query.emplace_back("continuation-token", token);
    const Target target = client->MakeTarget(loc.bucket, "", std::move(query));
    const std::string what = "GET " + http::RedactUrl(target.url) + " (ListObjectsV2)";
    auto reply = client->Send("GET", target, nullptr);
    if (!reply.ok()) return reply.status().WithContext(uri_prefix);
    if (reply->status != 200) {
      return S3ErrorStatus(*reply, what).WithContext(uri_prefix);
    }
    auto page = ParseListPage(reply->body);
    if (!page.ok()) return page.status().WithContext(uri_prefix + ": " + what);
    for (const ListPage::Object& obj : page->objects) {
      // Folder markers ("dir/", zero bytes) are not files.
      if (obj.key.empty() || obj.key.back() == '/') continue;
      if (obj.key.rfind(prefix, 0) != 0) continue;  // a server ignoring prefix
      out.push_back({base + obj.key, obj.key.substr(prefix.size()), obj.size, false});
    }
    for (const std::string& p : page->common_prefixes) {
      if (p.rfind(prefix, 0) != 0 || p.size() == prefix.size()) continue;
      out.push_back({base + p, p.substr(prefix.size()), 0, true});
    }
    if (!page->truncated) break;
    if (page->next_token.empty() || !seen_tokens.insert(page->next_token).second) {
      return IoError(uri_prefix + ": " + what +
                     ": truncated listing without a new continuation token");
    }
    if (pages >= limits.max_pages || std::chrono::steady_clock::now() - start > limits.max_time) {
      return IoError(uri_prefix + ": the listing did not end after " + std::to_string(pages) +
                     " pages (" + std::to_string(out.size()) +
                     " entries): the server keeps answering IsTruncated");
    }
    token = page->next_token;
  }
  return SortedListing(std::move(out));
}

}  // namespace tensorstream::s3
