// Feeds arbitrary bytes to what parses S3's replies: ListObjectsV2 pages (XML, entities,
// URL-encoded keys), error documents, and Content-Range values. Each must return a value
// or an error (never crash, hang or over-allocate), and what it returns must hold together.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "storage/http/http_client.h"
#include "storage/s3/s3_client.h"
#include "storage/s3/s3_list.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tensorstream;
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  auto page = s3::ParseListPage(text);
  if (page.ok()) {
    for (const auto& object : page->objects) {
      if (object.key.size() > size * 4 + 16) std::abort();  // decoding never grows past 4x
    }
    if (page->truncated && text.find("<IsTruncated>true</IsTruncated>") == std::string_view::npos) {
      std::abort();
    }
  }

  http::Response response;
  response.status = 400 + static_cast<long>(size % 200);
  response.body = std::string(text);
  const Status status = s3::S3ErrorStatus(response, "GET http://host/bucket/key");
  if (status.ok()) std::abort();

  uint64_t first = 0;
  uint64_t last = 0;
  if (http::ParseContentRange(text, &first, &last) && last < first) std::abort();
  (void)http::UriDecode(text, size % 2 == 0);
  (void)http::RedactUrlsIn(text);
  return 0;
}
