#include <nlohmann/json.hpp>

#include "common/text.h"
#include "storage/gcs/gcs_backend.h"
#include "storage/gcs/gcs_client.h"

namespace tensorstream::gcs {

namespace {

using nlohmann::json;

class GcsSource final : public Source {
 public:
  GcsSource(std::string uri, std::shared_ptr<GcsClient> client, std::string object_url,
            uint64_t size, std::string generation)
      : uri_(std::move(uri)),
        client_(std::move(client)),
        object_url_(std::move(object_url)),
        size_(size),
        generation_(std::move(generation)) {}

  const std::string& uri() const override { return uri_; }
  uint64_t Size() const override { return size_; }
  uint64_t PreferredChunkBytes() const override { return kGcsPreferredChunkBytes; }

  Status ReadAt(uint64_t offset, uint64_t length, void* dst,
                const std::atomic<bool>& cancelled) override {
    TS_RETURN_IF_ERROR(CheckReadWithinObject(uri_, size_, offset, length));
    return client_->GetRange(object_url_, generation_, offset, length, dst, cancelled)
        .WithContext(uri_);
  }

 private:
  const std::string uri_;
  const std::shared_ptr<GcsClient> client_;
  const std::string object_url_;
  const uint64_t size_;
  const std::string generation_;  // of the version the header was read from
};

// A JSON field that GCS sends as a string of digits ("size", "generation").
Result<uint64_t> NumberField(const json& doc, const char* name, const std::string& where) {
  if (doc.is_object() && doc.contains(name)) {
    const json& value = doc[name];
    uint64_t number = 0;
    if (value.is_string()) {
      int64_t parsed = 0;
      if (ParseInt64(value.get<std::string>(), &parsed) && parsed >= 0) {
        return static_cast<uint64_t>(parsed);
      }
    } else if (value.is_number_unsigned()) {
      number = value.get<uint64_t>();
      return number;
    }
  }
  return IoError(where + ": the object's metadata has no valid '" + name + "'");
}

}  // namespace

Result<std::unique_ptr<Source>> OpenGcsSource(const std::string& uri,
                                              const StorageOptions& options) {
  TS_ASSIGN_OR_RETURN(const GcsLocation location, ParseGcsUri(uri));
  if (location.object.empty() || location.object.back() == '/') {
    return InvalidArgument(Printable(uri) + ": names a bucket or prefix, not an object");
  }
  auto client_or = SharedGcsClient(options);
  if (!client_or.ok()) return client_or.status().WithContext(Printable(uri));
  std::shared_ptr<GcsClient> client = std::move(client_or).value();
  const std::string url = client->ObjectUrl(location);
  const std::string what = "GET " + http::RedactUrl(url);
  auto reply_or = client->Get(url, nullptr);
  if (!reply_or.ok()) return reply_or.status().WithContext(Printable(uri));
  const http::Response reply = std::move(reply_or).value();
  if (reply.status != 200) {
    Status s = GcsErrorStatus(reply, what);
    if (reply.status == 404)
      s = Status(s.code(), s.message() + " (object or bucket does not exist)");
    return s.WithContext(Printable(uri));
  }
  const json doc = json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
  TS_ASSIGN_OR_RETURN(const uint64_t size, NumberField(doc, "size", Printable(uri) + ": " + what));
  const auto generation = NumberField(doc, "generation", "");
  return std::unique_ptr<Source>(
      new GcsSource(uri, std::move(client), url, size,
                    generation.ok() ? std::to_string(*generation) : std::string()));
}

namespace {
constexpr std::string_view kSettings[] = {"gcs.credential_file", "gcs.endpoint", "gcs.anonymous"};
Result<std::vector<ObjectInfo>> List(const std::string& uri, const StorageOptions& options,
                                     bool recursive) {
  return ListGcsObjects(uri, options, recursive);
}
}  // namespace

const Backend kGcsBackend = {"gs", "Google Cloud Storage", kSettings, &OpenGcsSource, &List};

}  // namespace tensorstream::gcs
