#include "common/text.h"
#include "storage/azure/azure_backend.h"
#include "storage/azure/azure_client.h"

namespace tensorstream::azure {

namespace {

class AzureSource final : public Source {
 public:
  AzureSource(std::string uri, std::shared_ptr<AzureClient> client, std::string blob_url,
              uint64_t size, std::string etag)
      : uri_(std::move(uri)),
        client_(std::move(client)),
        blob_url_(std::move(blob_url)),
        size_(size),
        etag_(std::move(etag)) {}

  const std::string& uri() const override { return uri_; }
  uint64_t Size() const override { return size_; }
  uint64_t PreferredChunkBytes() const override { return kAzurePreferredChunkBytes; }

  Status ReadAt(uint64_t offset, uint64_t length, void* dst,
                const std::atomic<bool>& cancelled) override {
    TS_RETURN_IF_ERROR(CheckReadWithinObject(uri_, size_, offset, length));
    return client_->GetRange(blob_url_, etag_, offset, length, dst, cancelled).WithContext(uri_);
  }

 private:
  const std::string uri_;
  const std::shared_ptr<AzureClient> client_;
  const std::string blob_url_;
  const uint64_t size_;
  const std::string etag_;  // of the version the header was read from
};

}  // namespace

Result<std::unique_ptr<Source>> OpenAzureSource(const std::string& uri,
                                                const StorageOptions& options) {
  TS_ASSIGN_OR_RETURN(const AzureLocation location, ParseAzureUri(uri));
  if (location.blob.empty() || location.blob.back() == '/') {
    return InvalidArgument(Printable(uri) + ": names a container or prefix, not a blob");
  }
  auto client_or = SharedAzureClient(options);
  if (!client_or.ok()) return client_or.status().WithContext(Printable(uri));
  std::shared_ptr<AzureClient> client = std::move(client_or).value();
  const std::string url = client->BlobUrl(location);
  const std::string what = "HEAD " + http::RedactUrl(url);
  auto reply_or = client->Send("HEAD", url);
  if (!reply_or.ok()) return reply_or.status().WithContext(Printable(uri));
  const http::Response reply = std::move(reply_or).value();
  if (reply.status != 200) {
    Status s = AzureErrorStatus(reply, what);
    if (reply.status == 404) {
      s = Status(s.code(), s.message() + " (not found: no such blob or container)");
    }
    return s.WithContext(Printable(uri));
  }
  const std::string* length = reply.FindHeader("content-length");
  int64_t size = 0;
  if (length == nullptr || !ParseInt64(*length, &size) || size < 0) {
    return IoError(Printable(uri) + ": " + what + ": the reply has no valid Content-Length");
  }
  const std::string* etag = reply.FindHeader("etag");
  return std::unique_ptr<Source>(new AzureSource(uri, std::move(client), url,
                                                 static_cast<uint64_t>(size),
                                                 etag != nullptr ? *etag : std::string()));
}

namespace {
constexpr std::string_view kSettings[] = {"azure.account_name", "azure.account_key",
                                          "azure.sas_token",    "azure.connection_string",
                                          "azure.endpoint",     "azure.anonymous"};
Result<std::vector<ObjectInfo>> List(const std::string& uri, const StorageOptions& options,
                                     bool recursive) {
  return ListAzureBlobs(uri, options, recursive);
}
}  // namespace

const Backend kAzureBackend = {"az", "Azure Blob Storage", kSettings, &OpenAzureSource, &List};

}  // namespace tensorstream::azure
