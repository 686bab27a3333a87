#include <cstdlib>

#include "storage/s3/s3_backend.h"
#include "storage/s3/s3_client.h"
#include "storage/s3/s3_list.h"

namespace tensorstream {

namespace {

class S3Source final : public Source {
 public:
  S3Source(std::string uri, std::shared_ptr<s3::S3Client> client, s3::Target target, uint64_t size,
           std::string etag)
      : uri_(std::move(uri)),
        client_(std::move(client)),
        target_(std::move(target)),
        size_(size),
        etag_(std::move(etag)) {}

  const std::string& uri() const override { return uri_; }
  uint64_t Size() const override { return size_; }
  uint64_t PreferredChunkBytes() const override { return kS3PreferredChunkBytes; }

  Status ReadAt(uint64_t offset, uint64_t length, void* dst,
                const std::atomic<bool>& cancelled) override {
    TS_RETURN_IF_ERROR(CheckReadWithinObject(uri_, size_, offset, length));
    Status s = client_->GetRange(target_, offset, length, dst, cancelled, etag_);
    if (!s.ok()) return s.WithContext(uri_);
    return s;
  }

 private:
  const std::string uri_;
  const std::shared_ptr<s3::S3Client> client_;
  const s3::Target target_;
  const uint64_t size_;
  const std::string etag_;  // of the version the header was read from; "" if none
};

}  // namespace

Result<std::unique_ptr<Source>> OpenS3Source(const std::string& uri,
                                             const StorageOptions& options) {
  TS_ASSIGN_OR_RETURN(s3::S3Location loc, s3::ParseS3Uri(uri));
  if (loc.key.empty() || loc.key.back() == '/') {
    return InvalidArgument(uri + ": names a bucket or prefix, not an object");
  }
  auto client_or = s3::SharedS3Client(options);
  if (!client_or.ok()) return client_or.status().WithContext(uri);
  std::shared_ptr<s3::S3Client> client = std::move(client_or).value();
  s3::Target target = client->MakeTarget(loc.bucket, loc.key);

  const std::string what = "HEAD " + http::RedactUrl(target.url);
  auto head = client->Send("HEAD", target, nullptr);
  if (!head.ok()) return head.status().WithContext(uri);
  if (head->status != 200) {
    if (!http::IsRetryableHttpStatus(head->status)) {
      // A HEAD reply has no body, so it cannot say why (NoSuchKey or NoSuchBucket,
      // SignatureDoesNotMatch or AccessDenied). A one-byte GET gets the same error with
      // S3's <Code> and <Message>; it costs a request only on this failure path.
      auto get = client->Send("GET", target, nullptr, {{"Range", "bytes=0-0"}});
      if (get.ok() && get->status == head->status) {
        return s3::S3ErrorStatus(*get, "GET " + http::RedactUrl(target.url)).WithContext(uri);
      }
    }
    Status s = s3::S3ErrorStatus(*head, what);
    if (head->status == 404) {
      s = Status(s.code(), s.message() + " (object or bucket does not exist)");
    }
    return s.WithContext(uri);
  }
  const std::string* length = head->FindHeader("content-length");
  if (length == nullptr) return IoError(uri + ": " + what + ": no Content-Length in the reply");
  char* end = nullptr;
  const unsigned long long size = std::strtoull(length->c_str(), &end, 10);
  if (end == length->c_str() || *end != '\0') {
    return IoError(uri + ": " + what + ": bad Content-Length '" + *length + "'");
  }
  const std::string* etag = head->FindHeader("etag");
  return std::unique_ptr<Source>(new S3Source(uri, std::move(client), std::move(target),
                                              static_cast<uint64_t>(size), etag ? *etag : ""));
}

namespace s3 {

namespace {
constexpr std::string_view kSettings[] = {"s3.access_key_id", "s3.secret_access_key",
                                          "s3.session_token", "s3.region", "s3.endpoint"};
}  // namespace

const Backend kS3Backend = {"s3", "S3", kSettings, &OpenS3Source, &ListObjects};

}  // namespace s3

}  // namespace tensorstream
